"""The command line: parses arguments and maps errors to exit codes.

TensorFlow is imported inside the commands that need it, so `kcli --help` stays fast.
"""

from __future__ import annotations

import errno
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from typer.core import TyperGroup

from kcli import __version__
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


# train and summary (cli/train.py) come first in --help
app.command()(train_commands.train)
app.command()(train_commands.summary)


@app.command()
def validate(
    config: ConfigArg,
    set_: SetOpt = None,
    print_: Annotated[bool, typer.Option("--print", help="Print the resolved config as YAML.")] = False,
    origin: Annotated[bool, typer.Option("--origin", help="With --print: a table of every value and where it came "
                                         "from (file and line, --set, or default).")] = False,
    build: Annotated[bool, typer.Option("--build", help="Also build and compile the model with Keras and read the "
                                        "data (argument values, shapes, your classes, labels vs loss; imports "
                                        "TensorFlow).")] = False,
) -> None:
    """Check a config (schema, files, Keras names and arguments) without TensorFlow or training."""
    def action() -> None:
        from kcli.config.check import validate as run_validate
        from kcli.output.display import Display
        run_validate(config, Display(), set_, print_ or origin, build, origin)
    _run(action)


@app.command()
def sweep(
    target: Annotated[str, typer.Argument(help="A config with a `sweep:` section to run or continue, or `show`.",
                                          show_default=False)],
    sweep_ref: Annotated[str | None, typer.Argument(metavar="[SWEEP]", help="With `show`: the sweep folder (or its "
                                                    "name under --runs-dir).", show_default=False)] = None,
    sweep_file: Annotated[Path | None, typer.Option("--sweep", help="The sweep section in its own YAML file.",
                                                    show_default=False)] = None,
    runs_dir: RunsDirOpt = Path("runs"),
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Trials trained at the same time (processes).")] = 1,
    trials: Annotated[int | None, typer.Option("--trials", min=1, help="Finished trials wanted (default: "
                                               "sweep.trials).", show_default=False)] = None,
    set_: SetOpt = None,
) -> None:
    """Search config values with Optuna (each trial a kcli run); `kcli sweep show SWEEP` shows the trials."""
    def action() -> None:
        from kcli.output.display import Display
        from kcli.sweep import search as sweep_mod
        if target == "show":
            if sweep_ref is None:
                from kcli.errors import KcliError
                raise KcliError("name the sweep: kcli sweep show SWEEP", key="SWEEP")
            sweep_mod.show(sweep_ref, runs_dir, Display())
            return
        sweep_mod.sweep(Path(target), sweep_file, runs_dir, jobs, trials, set_ or [], Display())
    _run(action)


@app.command()
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
    _run(action)


@app.command()
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
    _run(action)


@app.command()
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
    _run(action)


@app.command()
def init(
    template: Annotated[str | None, typer.Option("--template", help="mlp | cnn | custom-layer | custom-model: a "
                                                 "commented config that runs on the bundled digits.",
                                                 show_default=False)] = None,
    data: Annotated[Path | None, typer.Option("--data", help="A CSV file (with --label) or a folder with one "
                                              "sub-folder of images per class: a config for your data, its "
                                              "column kinds inferred and shown.", show_default=False)] = None,
    label: Annotated[str | None, typer.Option("--label", help="With a CSV --data: the column to predict.",
                                              show_default=False)] = None,
    output: Annotated[Path | None, typer.Option(help="The config file to write (default: <template>.yaml or "
                                                "<data name>.yaml here); Python files it imports go beside it.",
                                                show_default=False)] = None,
) -> None:
    """Write a starter config (and the Python files it imports) to edit and train."""
    def action() -> None:
        from kcli.errors import KcliError
        from kcli.output.display import Display

        if (template is None) == (data is None):
            raise KcliError("give --template NAME (a starter on the bundled digits) or --data FILE_OR_FOLDER (a "
                            "config for your data)", key="--template")
        if data is not None:
            from kcli.starter.data import init as write_for_data

            target, columns = write_for_data(data, label, output)
            Display().data_columns(columns)
            Display().note(f"written: {target}; check the kinds above, then train it with: kcli train {target}")
            return
        from kcli.starter.configs import init as write_template

        assert template is not None
        written = write_template(template, output)
        Display().note(f"written: {', '.join(map(str, written))}; train it with: kcli train {written[0]}")
    _run(action)


@app.command()
def schema(
    output: Annotated[Path | None, typer.Option(help="Write it to this file instead of printing it.",
                                                show_default=False)] = None,
) -> None:
    """The JSON Schema of a config file, for editors (VS Code's YAML extension completes and checks with it)."""
    def action() -> None:
        from kcli.config.schema import text

        if output is None:
            typer.echo(text(), nl=False)
            return
        from kcli.errors import KcliError
        from kcli.run.folder import write_text

        if not output.parent.is_dir():
            raise KcliError(f"the folder {output.parent} does not exist; create it first", key="--output")
        write_text(output, text())
    _run(action)


@app.command("runs")
def list_runs(runs_dir: RunsDirReadOpt = Path("runs")) -> None:
    """A table of the runs under --runs-dir: status, epochs, best validation value, test metric, age."""
    def action() -> None:
        from kcli.output.display import Display
        from kcli.run import folder as runs
        Display().runs(runs.overview(runs_dir))
    _run(action)


@app.command()
def evaluate(
    run: RunArg,
    split: Annotated[str | None, typer.Option(help="test | validation | train (default: test, else validation).",
                                              show_default=False)] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Evaluate on this .npz/.csv file instead, read "
                                              "with the run's preprocessing.", show_default=False)] = None,
    label: Annotated[str | None, typer.Option(help="The label column of a --data CSV (default: the run's).",
                                              show_default=False)] = None,
    runs_dir: RunsDirReadOpt = Path("runs"),
    trust_code: TrustOpt = False,
) -> None:
    """Loss and metrics of a finished run; writes RUN/eval-<split or file>.json."""
    def action() -> None:
        from kcli.output.display import Display
        from kcli.use.evaluate import evaluate as run_evaluate
        run_evaluate(run, runs_dir, split, data, label, Display(), trust_code)
    _run(action)


@app.command()
def predict(
    run: RunArg,
    input: Annotated[Path, typer.Option("--input", help=".npz (array x), .npy or .csv (feature columns as in "
                                        "training; a label column is carried along).", show_default=False)],
    output: Annotated[Path | None, typer.Option(help=".csv (class, probability, raw outputs), .npy or .npz "
                                                "(raw outputs). Default: show the first rows.",
                                                show_default=False)] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Rows per model call (default 1024).",
                                                   show_default=False)] = None,
    label: Annotated[str | None, typer.Option(help="A CSV column to carry along instead of using it as a "
                                              "feature (default: the run's label column).",
                                              show_default=False)] = None,
    runs_dir: RunsDirReadOpt = Path("runs"),
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --output file.")] = False,
    trust_code: TrustOpt = False,
) -> None:
    """Predictions of a finished run, streamed in chunks (bounded memory for large CSV files)."""
    def action() -> None:
        from kcli.output.display import Display
        from kcli.use.predict import predict as run_predict
        run_predict(run, runs_dir, input, output, batch_size, label, Display(), overwrite, trust_code)
    _run(action)


@app.command()
def export(
    run: RunArg,
    format: Annotated[str, typer.Option("--format", help="savedmodel | keras | h5 | weights | onnx | tflite. "
                                        "onnx needs the extra: pip install 'kcli-keras\\[onnx]' (in a checkout: "
                                        "pip install -e '.\\[onnx]').", show_default=False)],
    output: Annotated[Path | None, typer.Option(help="Default: RUN/export/<file>.", show_default=False)] = None,
    serving_dir: Annotated[Path | None, typer.Option(
        "--serving-dir", help="With --format savedmodel: write DIR/NAME/VERSION (the next number), the layout TF "
                              "Serving and KServe load, with the request format of kcli serve.",
        show_default=False)] = None,
    runs_dir: RunsDirReadOpt = Path("runs"),
    trust_code: TrustOpt = False,
) -> None:
    """Write a finished run's model in another format, reload it with its own runtime and check its outputs."""
    def action() -> None:
        from kcli.output.display import Display
        from kcli.use.export import export as run_export
        run_export(run, runs_dir, format, output, Display(), trust_code, serving_dir)
    _run(action)


@app.command()
def serve(
    runs_: Annotated[list[str], typer.Argument(metavar="RUN...", help="Run directories, `latest`, or `latest:NAME` "
                                               "(the newest completed run called NAME; see --reload).",
                                               show_default=False)],
    name: Annotated[list[str] | None, typer.Option("--name", help="Serve a RUN under this name (default: its "
                                                   "config's name); one per RUN, in order.", show_default=False)]
        = None,
    host: Annotated[str, typer.Option("--host", help="The address to listen on (0.0.0.0: every interface).")]
        = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="The port (0: any free port, printed).")]
        = 8501,
    max_batch_size: Annotated[int, typer.Option("--max-batch-size", min=1, help="Rows per model call at most: "
                                                "concurrent requests are merged up to it.")] = 64,
    batch_timeout: Annotated[float, typer.Option("--batch-timeout", min=0.0, max=10.0, help="Seconds a batch waits "
                                                 "for more rows before the model runs (0: run with what has "
                                                 "queued).")]
        = 0.0,
    max_queue_rows: Annotated[int, typer.Option("--max-queue-rows", min=1, help="Rows waiting per model at most; "
                                                "more is refused with 503 and Retry-After.")] = 4096,
    max_request_bytes: Annotated[int, typer.Option("--max-request-bytes", min=1, help="A larger request body is "
                                                   "refused with 413.")] = 32 << 20,
    body_timeout: Annotated[float, typer.Option("--body-timeout", min=0.1, help="Seconds a client has to send its "
                                                "whole request body; a slower one gets 408.")] = 30.0,
    drain_timeout: Annotated[float, typer.Option("--drain-timeout", min=0.0, help="On SIGTERM, seconds to wait for "
                                                 "the requests in flight; the rest are then cut and the server "
                                                 "exits 0.")] = 30.0,
    reload: Annotated[bool, typer.Option("--reload", help="Serve a newer completed run of a `latest:NAME` RUN as "
                                         "soon as it appears (SIGHUP looks once).")] = False,
    runs_dir: RunsDirReadOpt = Path("runs"),
    trust_code: TrustOpt = False,
) -> None:
    """Serve finished runs over TF Serving's REST API and the Open Inference Protocol v2 (KServe, Triton)."""
    def action() -> None:
        from kcli.errors import KcliError
        from kcli.serve import EXTRA_HINT

        try:
            import prometheus_client  # noqa: F401
            import starlette  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError:
            raise KcliError(EXTRA_HINT) from None
        from kcli.output.display import Display
        from kcli.serve.app import Limits
        from kcli.serve.server import load_models
        from kcli.serve.server import serve as run_server
        models = load_models(runs_, name or [], runs_dir, trust_code)
        limits = Limits(max_batch_size, batch_timeout, max_queue_rows, max_request_bytes, body_timeout,
                        drain_timeout)
        run_server(models, host, port, limits, runs_dir, reload, Display().note)
    _run(action)


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
