"""The commands that build and train from a config: train, summary (through kcli.api)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kcli.cli.common import ConfigArg, RunsDirOpt, RunsDirReadOpt, SetOpt, TrustOpt, run_command


def train(
    config: Annotated[Path | None, typer.Argument(help="A kcli YAML config file (optional with --resume).",
                                                  show_default=False)] = None,
    runs_dir: RunsDirOpt = Path("runs"),
    set_: SetOpt = None,
    resume: Annotated[str | None, typer.Option(
        "--resume", help="Continue an interrupted run (a run directory, or `latest`: the newest run that did not "
                         "complete) from its last completed epoch, in the same directory.",
        show_default=False)] = None,
    keep_best: Annotated[bool, typer.Option(
        "--keep-best", help="Restore the best checkpoint (fit.checkpoint.monitor) before the final artifacts.")]
        = False,
    fast_dev_run: Annotated[bool, typer.Option(
        "--fast-dev-run", help="Check the whole run on one batch of each split (every artifact written and "
                               "verified) in a temporary directory that is removed; prints ok and the time.")]
        = False,
    allow_data_change: Annotated[bool, typer.Option(
        "--allow-data-change", help="With --resume: continue although a data file changed since the run "
                                    "started (refused otherwise).")] = False,
    trust_code: TrustOpt = False,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1, help="Train as a cluster of N local worker processes (distribute: multi_worker on "
                                 "localhost ports); worker 0 is the chief and writes the run.", show_default=False)]
        = None,
    startup_timeout: Annotated[float, typer.Option(
        "--startup-timeout", min=1, envvar="KCLI_STARTUP_TIMEOUT",
        help="Multi-worker: seconds to wait for every worker of the cluster to come up (then exit 2).")]
        = 60.0,
    peer_timeout: Annotated[float, typer.Option(
        "--peer-timeout", min=1, envvar="KCLI_PEER_TIMEOUT",
        help="Multi-worker: seconds without a heartbeat before a worker counts as lost and the others stop.")]
        = 10.0,
) -> None:
    """Build, compile and fit the model a config describes; write a run directory under --runs-dir."""
    def action() -> int:
        from kcli import api
        from kcli.output.display import Display

        run = api.train(config, set_ or [], runs_dir, listener=Display(), resume=resume, keep_best=keep_best,
                        fast_dev_run=fast_dev_run, allow_data_change=allow_data_change, trust_code=trust_code,
                        workers=workers, startup_timeout=startup_timeout, peer_timeout=peer_timeout)
        return run.exit_code
    code = run_command(action)
    if code:
        raise typer.Exit(code)


def summary(
    config: ConfigArg,
    set_: SetOpt = None,
    runs_dir: RunsDirReadOpt = Path("runs"),
    plot: Annotated[Path | None, typer.Option("--plot", help="Also draw the model to this file (.png, .svg, .pdf; "
                                              "needs pydot and Graphviz).", show_default=False)] = None,
) -> None:
    """Build the model without training; show its layers, parameter counts and trainable variables."""
    def action() -> None:
        from kcli import api
        from kcli.output.display import Display

        api.summary(config, set_ or [], runs_dir, plot=plot, listener=Display())
    run_command(action)
