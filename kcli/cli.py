"""The command line: parses arguments and maps errors to exit codes.

TensorFlow is imported inside the commands that need it, so `kcli --help` stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from kcli import __version__

app = typer.Typer(
    name="kcli",
    help="Train TensorFlow/Keras models from YAML files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

T = TypeVar("T")
ConfigArg = Annotated[Path, typer.Argument(help="A kcli YAML config file.", show_default=False)]
RunsDirOpt = Annotated[Path, typer.Option("--runs-dir", help="Where run directories are written.")]


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


def _run(action: Callable[[], T]) -> T:
    """Run a command; a user mistake becomes one red line and exit 2, a failed run exit 1."""
    from kcli.display import Display
    from kcli.errors import KcliError, TrainingFailed

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TensorFlow's C++ start-up chatter
    try:
        return action()
    except KcliError as exc:
        Display().error(str(exc))
        raise typer.Exit(exc.exit_code) from None
    except TrainingFailed as exc:
        Display().error(f"training failed: {exc}")
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        Display().error("interrupted")
        raise typer.Exit(130) from None


@app.command()
def train(config: ConfigArg, runs_dir: RunsDirOpt = Path("runs")) -> None:
    """Build, compile and fit the model a config describes; write a run directory under --runs-dir."""
    def action() -> None:
        from kcli.display import Display
        from kcli.train import train as train_run
        train_run(config, runs_dir, Display())
    _run(action)


@app.command()
def summary(config: ConfigArg) -> None:
    """Build the model without training; show its layers, parameter counts and trainable variables."""
    def action() -> None:
        from kcli.display import Display
        from kcli.train import summary as show_summary
        show_summary(config, Display())
    _run(action)


def main() -> None:
    """Console-script entry point."""
    app()
