"""The ASGI app (Starlette): TF Serving's REST routes, the Open Inference Protocol v2 routes, /metrics.

Every predict/infer request: body read up to the size limit (413), parsed and turned into model inputs (400 with
a JSON error naming the input, row and field), queued for the model's batcher (503 + Retry-After when its
queue is full), answered in the protocol's format, counted in /metrics and written as one access-log line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kcli.errors import capped, listed
from kcli.serve import protocols
from kcli.serve.batching import Batcher, Overloaded
from kcli.serve.convert import BadInput
from kcli.serve.metrics import Metrics
from kcli.serve.model import ServedModel

INLINE_BODY = 1 << 16   # smaller bodies are parsed on the event loop; larger ones on a worker thread


@dataclass
class Limits:
    """The batching and size knobs of `kcli serve`."""

    max_batch: int = 64
    batch_timeout: float = 0.0
    max_queue_rows: int = 4096
    max_request_bytes: int = 32 << 20
    body_timeout: float = 30.0    # seconds a client has to send its whole body (then 408)
    drain_timeout: float = 30.0   # seconds SIGTERM waits for the requests in flight (then they are cut)


class TooLarge(Exception):
    """A body over the size limit (413)."""


class TooSlow(Exception):
    """A body not sent in full within the body timeout (408)."""


class Slot:
    """One served name: its current model (replaced on reload) and its batcher."""

    def __init__(self, model: ServedModel, batcher: Batcher) -> None:
        self.model = model
        self.batcher = batcher


class State:
    """What the routes share: the served models by name, the limits and the metrics."""

    def __init__(self, models: list[ServedModel], limits: Limits, log: Callable[[str], None]) -> None:
        self.limits, self.metrics, self.log = limits, Metrics(), log
        self.slots = {m.name: Slot(m, self._batcher(m.name)) for m in models}

    def _batcher(self, name: str) -> Batcher:
        return Batcher(self.limits.max_batch, self.limits.batch_timeout, self.limits.max_queue_rows,
                       lambda rows, queued: self.metrics.batched(name, rows, queued))

    def stop(self) -> None:
        """Finish what is queued and end the batchers."""
        for slot in self.slots.values():
            slot.batcher.stop()


class _Json(JSONResponse):
    """JSON that writes NaN and Infinity as TF Serving does (a model may answer them; Starlette refuses)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode()


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _slot(state: State, request: Request) -> Slot | JSONResponse:
    """The model a path names (and its version, when given), or a 404."""
    name = request.path_params["name"]
    slot = state.slots.get(name)
    if slot is None:
        return _error(404, f"model {capped(name)} is not served here; served: {listed(list(state.slots), 10)}")
    version = request.path_params.get("version")
    if version is not None and version != str(slot.model.version):
        return _error(404, f"model {capped(name)} has no version {capped(version)}; it serves version "
                           f"{slot.model.version}")
    return slot


async def _body(request: Request, limit: int, timeout: float) -> bytes:
    """The body, refused past `limit` bytes (by its Content-Length, or while it streams in) or when it is not
    all sent within `timeout` seconds (a half-sent body would otherwise hold its connection, and a drain, forever)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge()
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise TooLarge()
                chunks.append(chunk)
    except TimeoutError:
        raise TooSlow() from None
    return b"".join(chunks)


async def _answer(state: State, request: Request, protocol: str,
                  handle: Callable[[Slot, bytes], Awaitable[Response]]) -> Response:
    """The shared path of a predict/infer request: limits, errors and metrics around `handle`."""
    found = _slot(state, request)
    if isinstance(found, JSONResponse):
        return found
    started = time.perf_counter()
    try:
        limits = state.limits
        response = await handle(found, await _body(request, limits.max_request_bytes, limits.body_timeout))
    except TooLarge as exc:
        response = _error(413, str(exc) or f"the request body is over {state.limits.max_request_bytes} bytes "
                                           "(--max-request-bytes); send fewer rows per request")
    except TooSlow:
        response = _error(408, f"the request body was not sent in full within {state.limits.body_timeout:g} s "
                               "(--body-timeout)", {"Connection": "close"})
    except BadInput as exc:
        response = _error(400, str(exc))
    except ClientDisconnect:   # nobody is left to answer: counted apart, not as a 400 of the client's data
        state.metrics.disconnected(found.model.name, protocol)
        return _error(400, "the client closed the connection before its request was read")
    except Overloaded:
        response = _error(503, f"the queue of model {found.model.name!r} is full "
                               f"({state.limits.max_queue_rows} rows); retry shortly", {"Retry-After": "1"})
    except Exception as exc:  # the model failed on this request (alone: see batching): the server stays up
        response = _model_error(exc)
    state.metrics.answered(found.model.name, protocol, response.status_code, time.perf_counter() - started)
    return response


def _model_error(exc: Exception) -> JSONResponse:
    """TensorFlow's InvalidArgumentError is about the values sent (an id past an Embedding's rows, ...): a 400,
    as TF Serving answers it; anything else is the model's failure, a 500."""
    import tensorflow as tf

    from kcli.errors import first_line

    if isinstance(exc, tf.errors.InvalidArgumentError):
        return _error(400, f"the model refused the input: {first_line(exc)[:300]}")
    return _error(500, f"the model failed: {type(exc).__name__}: {first_line(exc)[:300]}")


async def _run_model(slot: Slot, state: State, model: ServedModel, columns: dict[str, Any], rows: int,
                     size: int) -> Any:
    """Turn the columns into model inputs (on a worker thread unless that is cheap), then wait for the batcher."""
    if rows > state.limits.max_queue_rows:
        raise TooLarge(f"the request has {rows} rows; the queue holds at most {state.limits.max_queue_rows} "
                       "(--max-queue-rows): send fewer rows per request")
    # a small body is cheap to prepare on the event loop, except images: 40 KB of PNG can decode to 40 M pixels
    inline = size <= INLINE_BODY and model.kind != "images"
    x = model.prepare(columns, rows) if inline else await run_in_threadpool(model.prepare, columns, rows)
    return await slot.batcher.submit(model, x, rows)


def routes(state: State) -> list[Route]:
    """Every route of the server."""

    async def tfs_predict(request: Request) -> Response:
        async def handle(slot: Slot, body: bytes) -> Response:
            model = slot.model
            parsed = protocols.tfs_request(body, model) if len(body) <= INLINE_BODY else \
                await run_in_threadpool(protocols.tfs_request, body, model)
            answers = await _run_model(slot, state, model, parsed.columns, parsed.rows, len(body))
            return _Json(protocols.tfs_response(answers, parsed.row_format))
        return await _answer(state, request, "tfserving", handle)

    async def v2_infer(request: Request) -> Response:
        async def handle(slot: Slot, body: bytes) -> Response:
            model = slot.model
            header = request.headers.get(protocols.HEADER_LENGTH)
            parsed = protocols.v2_request(body, header, model) if len(body) <= INLINE_BODY else \
                await run_in_threadpool(protocols.v2_request, body, header, model)
            answers = await _run_model(slot, state, model, parsed.columns, parsed.rows, len(body))
            content, headers = protocols.v2_response(model, parsed, answers)
            return Response(content, headers=headers)
        return await _answer(state, request, "v2", handle)

    def get(make: Callable[[ServedModel], Any]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            found = _slot(state, request)
            if isinstance(found, JSONResponse) and request.url.path.endswith(":predict"):
                # the GET routes' {name} / {version} swallowed ":predict": a wrong method, not an unknown model
                return _not_allowed(request.method, "POST")
            return found if isinstance(found, JSONResponse) else JSONResponse(make(found.model))
        return endpoint

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def server_metadata(request: Request) -> Response:
        from kcli import __version__

        return JSONResponse({"name": "kcli", "version": __version__, "extensions": ["binary_tensor_data"],
                             "models": list(state.slots)})

    async def metrics(request: Request) -> Response:
        for name, slot in state.slots.items():
            state.metrics.queue_rows.labels(name).set(slot.batcher.queued_rows)
        return Response(state.metrics.text(), media_type="text/plain; version=0.0.4")

    ready = get(lambda m: {"name": m.name, "ready": True})
    return [
        Route("/v1/models/{name}:predict", tfs_predict, methods=["POST"]),
        Route("/v1/models/{name}/versions/{version}:predict", tfs_predict, methods=["POST"]),
        Route("/v1/models/{name}/metadata", get(protocols.tfs_metadata)),
        Route("/v1/models/{name}/versions/{version}/metadata", get(protocols.tfs_metadata)),
        Route("/v1/models/{name}", get(protocols.tfs_status)),
        Route("/v1/models/{name}/versions/{version}", get(protocols.tfs_status)),
        Route("/v2/health/live", live),
        Route("/v2/health/ready", live),
        Route("/v2", server_metadata),
        Route("/v2/models/{name}/infer", v2_infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", v2_infer, methods=["POST"]),
        Route("/v2/models/{name}/ready", ready),
        Route("/v2/models/{name}/versions/{version}/ready", ready),
        Route("/v2/models/{name}", get(protocols.v2_metadata)),
        Route("/v2/models/{name}/versions/{version}", get(protocols.v2_metadata)),
        Route("/metrics", metrics),
    ]


class AccessLog:
    """ASGI middleware: one line per request (client, method, path, status, milliseconds); the path is the
    client's data, so non-printable characters are written escaped."""

    def __init__(self, app: Any, write: Callable[[str], None]) -> None:
        self.app, self.write = app, write

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            client = scope.get("client") or ("-", 0)
            path = json.dumps(scope.get("path", ""), ensure_ascii=True)[1:-1][:300]
            self.write(f'{client[0]} "{scope.get("method", "-")} {path}" {status[0]} '
                       f"{(time.perf_counter() - started) * 1000:.1f}ms")


def build(state: State, on_start: Callable[[], Awaitable[None]], on_stop: Callable[[], Awaitable[None]]) -> Any:
    """The app with its lifespan hooks and access log."""
    import contextlib

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        await on_start()
        try:
            yield
        finally:
            await on_stop()

    handlers = {404: _no_route, 405: _no_route}
    return AccessLog(Starlette(routes=routes(state), lifespan=lifespan, exception_handlers=handlers), state.log)


async def _no_route(request: Request, exc: Exception) -> Response:
    """A path or method kcli serve does not answer: a JSON error listing what it does answer."""
    path = request.url.path
    if path.startswith("/v1/models/") and ":" in path.rsplit("/", 1)[-1] and not path.endswith(":predict"):
        return _error(404, f"kcli serve answers :predict only, not :{path.rsplit(':', 1)[-1][:40]} (the classify "
                           "and regress APIs take tf.Example signatures)")
    allow = (getattr(exc, "headers", None) or {}).get("Allow")
    if getattr(exc, "status_code", 404) == 405 and allow:
        return _not_allowed(request.method, allow)
    return _error(404, f"no route {request.method[:20]} {capped(path, 200)}; kcli serve answers GET "
                       "/v1/models/NAME[/metadata], POST /v1/models/NAME:predict, GET /v2/health/{live,ready}, "
                       "GET /v2/models/NAME[/ready], POST /v2/models/NAME/infer and GET /metrics")


def _not_allowed(method: str, allow: str) -> JSONResponse:
    """A 405 with the Allow header HTTP asks of every 405."""
    return _error(405, f"this path does not answer {method[:20]}; it answers {allow}", {"Allow": allow})


def stderr_line(text: str) -> None:
    """Write one line to stderr at once (the access log and reload notes)."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
