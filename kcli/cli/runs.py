"""The commands that read runs: runs (the table), report, compare, plot."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kcli.cli.common import RunArg, RunsDirReadOpt, run_command


def list_runs(runs_dir: RunsDirReadOpt = Path("runs")) -> None:
    """A table of the runs under --runs-dir: status, epochs, best validation value, test metric, age."""
    def action() -> None:
        from kcli.output.display import Display
        from kcli.run import find
        Display().runs(find.overview(runs_dir))
    run_command(action)


def report(
    run: RunArg,
    output: Annotated[Path | None, typer.Option("--output", help="The .html file (default: RUN/report.html).",
                                                show_default=False)] = None,
    runs_dir: RunsDirReadOpt = Path("runs"),
) -> None:
    """One self-contained HTML page about a run (config, summary, curves, metrics, confusion matrix, artifacts)."""
    def action() -> None:
        from kcli.output.display import Display
        from kcli.output.report import report as run_report
        run_report(run, runs_dir, output, Display())
    run_command(action)


def compare(
    first: Annotated[str, typer.Argument(metavar="RUN", help="A run directory (or `latest`).", show_default=False)],
    second: Annotated[str, typer.Argument(metavar="RUN", help="Another run directory.", show_default=False)],
    runs_dir: RunsDirReadOpt = Path("runs"),
) -> None:
    """How two runs differ: config keys, then last/best/test numbers side by side."""
    def action() -> None:
        from kcli.output.compare import compare as run_compare
        from kcli.output.display import Display
        run_compare(first, second, runs_dir, Display())
    run_command(action)


def plot(
    runs_: Annotated[list[str], typer.Argument(metavar="RUN...", help="Run directories (or `latest`), or one sweep "
                                               "folder.", show_default=False)],
    metric: Annotated[str | None, typer.Option("--metric", help="The logged value to draw (default: val_loss, "
                                               "else loss).", show_default=False)] = None,
    output: Annotated[Path | None, typer.Option("--output", help="The .png to write (default: plot-<metric>.png "
                                                "here; a sweep: SWEEP/sweep.png).", show_default=False)] = None,
    runs_dir: RunsDirReadOpt = Path("runs"),
) -> None:
    """Draw runs' curves of one value in one picture, or a sweep's trials and parameters."""
    def action() -> None:
        from kcli.output.compare import plot as run_plot
        from kcli.output.display import Display
        run_plot(runs_, runs_dir, metric, output, Display())
    run_command(action)
