"""The command line: the Typer app and its commands, in the order `kcli --help` lists them.

Each command lives with its group (use.py, runs.py, project.py, sweep.py) as a plain function registered here;
the option types and the error -> exit code mapping are in common.py. TensorFlow is imported inside the commands
that need it, so `kcli --help` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from kcli import __version__
from kcli.cli import project, runs, sweep, use
from kcli.cli.common import ConfigArg, RunsDirOpt, RunsDirReadOpt, SetOpt, TrustOpt, run_command


class _Commands(TyperGroup):
    """kcli's commands: an option's bad value (`--jobs 0`) is one `error:` line and exit 2 like any user mistake,
    not Click's usage box."""

    def invoke(self, ctx: typer.Context) -> object:
        try:
            return super().invoke(ctx)
        except typer.BadParameter as exc:
            from kcli.output.display import Display

            Display().error(exc.format_message())
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=_Commands,
    name="kcli",
    help="Train TensorFlow/Keras models from YAML files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """Train TensorFlow/Keras models from YAML files."""


@app.command()
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
    def action() -> int | None:
        from kcli.errors import KcliError
        from kcli.output.display import Display
        if config is None and resume is None:
            raise KcliError("give a CONFIG file to train, or --resume RUN to continue a run", key="CONFIG")
        if workers is not None:
            if fast_dev_run:
                raise KcliError("--fast-dev-run checks a config in this process; it does not go with --workers",
                                key="--workers")
            from kcli.distributed.workers import launch
            args = [*([str(config)] if config is not None else []), "--runs-dir", str(runs_dir),
                    *(a for s in (set_ or []) for a in ("--set", s)),
                    *(["--set", "distribute=multi_worker"] if resume is None else ["--resume", resume]),
                    *(["--keep-best"] if keep_best else []), *(["--allow-data-change"] if allow_data_change else []),
                    *(["--trust-code"] if trust_code else []),
                    "--startup-timeout", str(startup_timeout), "--peer-timeout", str(peer_timeout)]
            return launch(workers, args, Display(), peer_timeout)
        from kcli.distributed import strategy as distribute
        from kcli.training.train import train as train_run
        distribute.LIMITS = distribute.Limits(startup_timeout, peer_timeout)
        if fast_dev_run:
            if config is None or resume is not None:
                raise KcliError("--fast-dev-run checks a CONFIG; it does not go with --resume", key="--fast-dev-run")
            from kcli.training.train import fast_dev_run as run_fast_dev_run
            run_fast_dev_run(config, Display(), set_, runs_dir)
            return
        train_run(config, runs_dir, Display(), set_, resume, keep_best, allow_data_change,
                  trust_code=trust_code)
    code = run_command(action)
    if code:
        raise typer.Exit(code)


@app.command()
def summary(
    config: ConfigArg,
    set_: SetOpt = None,
    runs_dir: RunsDirReadOpt = Path("runs"),
    plot: Annotated[Path | None, typer.Option("--plot", help="Also draw the model to this file (.png, .svg, .pdf; "
                                              "needs pydot and Graphviz).", show_default=False)] = None,
) -> None:
    """Build the model without training; show its layers, parameter counts and trainable variables."""
    def action() -> None:
        from kcli.output.display import Display
        from kcli.training.train import summary as show_summary
        show_summary(config, Display(), set_, plot, runs_dir)
    run_command(action)


# The commands in the order --help lists them (train and summary are defined above).
app.command()(project.validate)
app.command()(sweep.sweep)
app.command()(runs.plot)
app.command()(runs.report)
app.command()(runs.compare)
app.command()(project.init)
app.command()(project.schema)
app.command("runs")(runs.list_runs)
app.command()(use.evaluate)
app.command()(use.predict)
app.command()(use.export)
app.command()(use.serve)


# Commands that import TensorFlow (and so may get its native stderr chatter); --help never does.
_TF_COMMANDS = {"train", "summary", "evaluate", "predict", "export", "serve"}


def main() -> None:
    """Console-script entry point."""
    import sys

    args = sys.argv[1:]
    imports_tf = args and (args[0] in _TF_COMMANDS or (args[0] == "validate" and "--build" in args))
    if imports_tf and not {"--help", "-h"} & set(args):
        from kcli.output import quiet

        quiet.install()
    launcher = any(a == "--workers" or a.startswith("--workers=") for a in args)   # it supervises its workers
    if args and args[0] == "train" and os.environ.get("TF_CONFIG", "").strip() and not os.environ.get(
            "KCLI_SUPERVISED") and not {"--help", "-h"} & set(args) and not launcher:
        from kcli.distributed.workers import supervise
        from kcli.output.display import Display

        # a worker of a cluster must stop when told to, also while TensorFlow holds the GIL
        raise SystemExit(supervise(args, Display()))
    app()
