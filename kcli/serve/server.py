"""Start `kcli serve`: load every model (a failure is one error line before the port opens), bind, serve with
uvicorn, reload `latest:NAME` models on SIGHUP or --reload, and drain on SIGTERM (exit 0).

uvicorn's graceful shutdown stops accepting, waits for the requests in flight (they wait on the batcher) up to
--drain-timeout seconds, cuts the ones still running then (a client that never finishes its body must not keep
the server alive), and runs the app's lifespan end, which lets the batchers finish their queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from kcli.errors import KcliError
from kcli.run import find
from kcli.serve.app import Limits, State, build, stderr_line
from kcli.serve.model import ServedModel

RELOAD_EVERY = 2.0   # seconds between looks for a newer run with --reload


def load_models(refs: list[str], names: list[str], runs_dir: Path, trust_code: bool) -> list[ServedModel]:
    """Every RUN loaded and warmed up, each under its config's name or its --name (in order)."""
    if names and len(names) != len(refs):
        raise KcliError(f"give one --name per RUN ({len(refs)} runs, {len(names)} names), or none", key="--name")
    models = [ServedModel(ref, runs_dir, trust_code, names[i] if names else None) for i, ref in enumerate(refs)]
    seen: dict[str, str] = {}
    for model in models:
        if model.name in seen:
            raise KcliError(f"two runs would be served as {model.name!r} ({seen[model.name]} and {model.path}); "
                            "give each a --name", key="--name")
        seen[model.name] = str(model.path)
    return models


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or one line saying why not (port in use, unknown host)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise KcliError(f"cannot listen on {host!r}: {exc.strerror}", key="--host") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise KcliError(f"port {port} on {host} is in use; choose another --port (0: any free port)",
                            key="--port") from None
        raise KcliError(f"cannot listen on {host}:{port}: {exc.strerror}", key="--host") from None
    sock.set_inheritable(True)
    return sock


class Reloader:
    """Replaces a `latest:NAME` model when a newer completed run of NAME appears, without dropping requests:
    the new model loads beside the old one, which serves until the swap (queued requests finish on it)."""

    def __init__(self, state: State, runs_dir: Path, log: Callable[[str], None]) -> None:
        self.state, self.runs_dir, self.log = state, runs_dir, log
        self._busy = asyncio.Lock()
        # runs that did not load, as they were then (path, file stats)
        self._failed: set[tuple[Path, tuple[tuple[int, int] | None, ...]]] = set()

    async def check(self) -> None:
        """Look for newer runs and swap in the models that load."""
        async with self._busy:
            for name, slot in self.state.slots.items():
                old = slot.model
                if not old.ref.startswith("latest:"):
                    continue
                try:
                    newest = find.latest_named(self.runs_dir, old.ref.split(":", 1)[1], "RUN")
                except KcliError:
                    continue
                if newest.resolve() == old.path.resolve():
                    continue
                seen = _identity(newest)
                if seen in self._failed:   # a broken run is tried again only once it changes
                    continue
                try:
                    model = await asyncio.to_thread(ServedModel, old.ref, old.runs_dir, old.trust_code, name,
                                                    old.version + 1)
                except Exception as exc:  # the old model keeps serving; say why the new one did not load, once
                    self._failed.add(seen)
                    self.log(f"reload of {name} from {newest} failed, still serving {old.path} (tried again when "
                             f"its run.json or model.keras changes): {exc}")
                    continue
                slot.model = model
                self.log(f"reloaded {name}: {model.path} (version {model.version})")


def _identity(run: Path) -> tuple[Path, tuple[tuple[int, int] | None, ...]]:
    """A run as it is now: its path and the modification time and size of its run.json and model.keras."""
    def stat(name: str) -> tuple[int, int] | None:
        try:
            found = (run / name).stat()
        except OSError:
            return None
        return found.st_mtime_ns, found.st_size

    return run.resolve(), (stat("run.json"), stat("model.keras"))


def serve(models: list[ServedModel], host: str, port: int, limits: Limits, runs_dir: Path, reload: bool,
          announce: Callable[[str], None]) -> None:
    """Serve until SIGTERM or Ctrl-C; returns once the requests in flight are answered."""
    import uvicorn

    sock = bind(host, port)
    state = State(models, limits, stderr_line)
    reloader = Reloader(state, runs_dir, stderr_line)
    tasks: list[asyncio.Task[None]] = []

    async def start() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: tasks.append(loop.create_task(reloader.check())))
        if reload:
            tasks.append(loop.create_task(_poll(reloader)))

    async def stop() -> None:
        for task in tasks:
            task.cancel()
        await asyncio.to_thread(state.stop)

    app = build(state, start, stop)
    # connections beyond what the queues can hold are refused by uvicorn itself (503), so bodies being read
    # and parsed are bounded too, not only the queued rows
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", server_header=False,
                            timeout_graceful_shutdown=limits.drain_timeout,
                            limit_concurrency=max(256, 2 * limits.max_queue_rows))
    bound = sock.getsockname()
    for model in models:
        announce(f"serving {model.name} (version {model.version}) from {model.path}")
    announce(f"listening on http://{_url_host(bound[0])}:{bound[1]} (TF Serving REST /v1, Open Inference "
             "Protocol /v2, /metrics); SIGTERM or Ctrl-C stops after the requests in flight "
             f"(at most {limits.drain_timeout:g} s)")
    with _quiet_after_drain():
        uvicorn.Server(config).run(sockets=[sock])
    sock.close()


async def _poll(reloader: Reloader) -> None:
    while True:
        await asyncio.sleep(RELOAD_EVERY)
        await reloader.check()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@contextlib.contextmanager
def _quiet_after_drain() -> Iterator[None]:
    """uvicorn raises SIGTERM / SIGINT again after its graceful shutdown (to run the previous handler); the
    drain is the whole answer to them here, so the process then exits 0 instead of dying of the signal."""
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
