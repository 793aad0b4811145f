"""The command line: the Typer app and its commands, in the order `kcli --help` lists them.

Each command lives with its group (use.py, runs.py, project.py, sweep.py) as a plain function registered here;
the option types and the error -> exit code mapping are in common.py. TensorFlow is imported inside the commands
that need it, so `kcli --help` stays fast.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer
from typer.core import TyperGroup

from kcli import __version__
from kcli.cli import project, runs, sweep, use
from kcli.cli import train as train_commands


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


# The commands in the order --help lists them.
app.command()(train_commands.train)
app.command()(train_commands.summary)
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
