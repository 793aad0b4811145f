"""What every command shares: the option types and the error -> exit code mapping around a command's work."""

from __future__ import annotations

import errno
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer

T = TypeVar("T")
ConfigArg = Annotated[Path, typer.Argument(help="A kcli YAML config file.", show_default=False)]
RunsDirOpt = Annotated[Path, typer.Option("--runs-dir", help="Where run directories are written.")]
RunArg = Annotated[str, typer.Argument(help="A run directory, a run name under --runs-dir, or `latest`.",
                                       show_default=False)]
RunsDirReadOpt = Annotated[Path, typer.Option("--runs-dir", help="Where to look for RUN (and `latest`).")]
TrustOpt = Annotated[bool, typer.Option(
    "--trust-code", help="Run the Python files in RUN/code/ even if you did not train this run on this machine "
                         "(they run with your rights: read them first).")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a config value: KEY=VALUE, e.g. fit.epochs=20 or model.layers[0].Dense.units=64 "
                  "(VALUE is read as YAML; repeatable).", show_default=False)]


def run_command(action: Callable[[], T]) -> T:
    """Run a command; a user mistake becomes one red line and exit 2, a failed run exit 1."""
    from kcli.errors import Failure, KcliError
    from kcli.output.display import Display

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TensorFlow's C++ start-up chatter
    # Keras warns on every load_model of a compiled model that its metrics are not built yet: not news to users
    warnings.filterwarnings("ignore", message=r"Compiled the loaded model")
    try:
        return action()
    except KcliError as exc:
        Display().error(str(exc))
        raise typer.Exit(exc.exit_code) from None
    except Failure as exc:
        Display().error(str(exc))
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        Display().error("interrupted")
        raise typer.Exit(130) from None
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            _unexpected(exc)
        where = f" writing in {exc.filename}" if exc.filename else ""
        Display().error(f"the disk is full{where} ({exc.strerror}); free some space, then continue the run "
                        "with `kcli train --resume RUN`")
        raise typer.Exit(1) from None
    except Exception as exc:  # a bug or an environment problem: one line, the traceback on request
        _unexpected(exc)


def _unexpected(exc: Exception) -> NoReturn:
    from kcli.output.display import Display

    if os.environ.get("KCLI_DEBUG"):
        raise exc
    Display().error(f"unexpected {type(exc).__name__}: {exc} (set KCLI_DEBUG=1 for the traceback)")
    raise typer.Exit(1) from None
