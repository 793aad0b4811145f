"""The commands that use a finished run: evaluate, predict, export, serve (through kcli.api)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kcli.cli.common import RunArg, RunsDirReadOpt, TrustOpt, run_command


def evaluate(
    run: RunArg,
    split: Annotated[str | None, typer.Option(help="test | validation | train (default: test, else validation).",
                                              show_default=False)] = None,
    data: Annotated[str | None, typer.Option("--data", help="Evaluate on this .npz/.csv file (or s3:// / gs:// "
                                             "URL) instead, read with the run's preprocessing.",
                                             show_default=False)] = None,
    label: Annotated[str | None, typer.Option(help="The label column of a --data CSV (default: the run's).",
                                              show_default=False)] = None,
    runs_dir: RunsDirReadOpt = Path("runs"),
    trust_code: TrustOpt = False,
) -> None:
    """Loss and metrics of a finished run; writes RUN/eval-<split or file>.json."""
    def action() -> None:
        from kcli import api
        from kcli.output.display import Display
        api.evaluate(run, split, data, label, runs_dir=runs_dir, trust_code=trust_code, listener=Display())
    run_command(action)


def predict(
    run: RunArg,
    input: Annotated[str, typer.Option("--input", help=".npz (array x), .npy or .csv (feature columns as in "
                                       "training; a label column is carried along); a file or an s3:// / gs:// "
                                       "URL.", show_default=False)],
    output: Annotated[str | None, typer.Option(help=".csv (class, probability, raw outputs), .npy or .npz "
                                               "(raw outputs); a file or an s3:// / gs:// URL. Default: show the "
                                               "first rows.", show_default=False)] = None,
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
        from kcli import api
        from kcli.output.display import Display
        api.predict(run, input, output, batch_size=batch_size, label=label, runs_dir=runs_dir, overwrite=overwrite,
                    trust_code=trust_code, keep=False, listener=Display())
    run_command(action)


def export(
    run: RunArg,
    format: Annotated[str, typer.Option("--format", help="savedmodel | keras | h5 | weights | onnx | tflite. "
                                        "onnx needs the extra: pip install 'kcli-keras\\[onnx]' (in a checkout: "
                                        "pip install -e '.\\[onnx]').", show_default=False)],
    output: Annotated[str | None, typer.Option(help="A file or folder, or an s3:// / gs:// URL. Default: "
                                               "RUN/export/<file>.", show_default=False)] = None,
    serving_dir: Annotated[Path | None, typer.Option(
        "--serving-dir", help="With --format savedmodel: write DIR/NAME/VERSION (the next number), the layout TF "
                              "Serving and KServe load, with the request format of kcli serve.",
        show_default=False)] = None,
    runs_dir: RunsDirReadOpt = Path("runs"),
    trust_code: TrustOpt = False,
) -> None:
    """Write a finished run's model in another format, reload it with its own runtime and check its outputs."""
    def action() -> None:
        from kcli import api
        from kcli.output.display import Display
        api.export(run, format, output, serving_dir=serving_dir, runs_dir=runs_dir, trust_code=trust_code,
                   listener=Display())
    run_command(action)


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
    run_command(action)
