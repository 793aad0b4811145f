"""`distribute:` the tf.distribute strategy a run trains under, the devices it shows, and the time limits of a
multi-worker cluster.

- none: Keras's default (one device).
- mirrored: MirroredStrategy over every local GPU (else the CPU).
- multi_worker: MultiWorkerMirroredStrategy over the cluster in TF_CONFIG (distributed/cluster.py), every local GPU of
  each worker. `data.batch_size` is the global batch: each of the N replicas computes batch_size / N rows of
  every step, and the gradients are summed, so the numbers equal one process with the same batch.

TensorFlow waits for missing peers without end, and its preemption handler swallows SIGTERM while it waits. So
kcli bounds start-up itself (a watchdog that ends the process with exit 2 and the reason) and sets the peer
heartbeat timeout of TensorFlow's coordination service (a lost worker stops the others with an error). A lone
worker trains without a server (nothing to wait for). TensorFlow holds the GIL while it registers with the
cluster, so no Python code of this process (signal handler or thread) runs then: SIGINT and SIGTERM are handled
by a supervising parent process (distributed/workers.py `supervise`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kcli import events
from kcli.distributed import cluster as cluster_mod
from kcli.distributed import multiworker_fix
from kcli.distributed.cluster import Cluster
from kcli.errors import first_line, listed

_strategy: Any = None   # MultiWorkerMirroredStrategy can be made once per process


@dataclass
class Limits:
    """Seconds a worker waits for the cluster to come up, and for a silent peer before it counts as lost."""

    startup: float = cluster_mod.STARTUP_TIMEOUT
    peer: float = cluster_mod.PEER_TIMEOUT


LIMITS = Limits()   # set by `kcli train --startup-timeout/--peer-timeout`


def cluster_of(kind: str) -> Cluster | None:
    """The TF_CONFIG cluster of a `multi_worker` run (None: a cluster of this process alone)."""
    return cluster_mod.from_env() if kind == "multi_worker" else None


def scope(kind: str) -> contextlib.AbstractContextManager[Any]:
    """The strategy's scope for building and compiling the model (variables are created distributed)."""
    if kind == "none":
        return contextlib.nullcontext()
    return strategy(kind, LIMITS).scope()


def strategy(kind: str, limits: Limits, listener: events.Listener = events.ignore) -> Any:
    """The tf.distribute strategy of `kind` (a multi-worker one is made once per process); `listener` hears the
    start-up watchdog's verdict should the cluster never come up."""
    import tensorflow as tf

    global _strategy
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    if _strategy is None:
        cluster = cluster_of(kind)
        if cluster is not None and cluster.workers > 1:
            cluster_mod.check_own_port(cluster)
        multiworker_fix.apply()
        if cluster is not None and cluster.workers > 1:
            _configure_coordination(cluster, limits)
            start_watchdog(cluster, limits.startup, listener)
            try:
                _strategy = tf.distribute.MultiWorkerMirroredStrategy()
            except tf.errors.OpError as exc:   # the registration barrier timed out, or the leader is unreachable
                cluster_up()
                reason = "" if "Barrier timed out" in str(exc) else f" (TensorFlow: {first_line(exc)})"
                raise cluster_mod.ClusterError(_not_up(cluster, limits.startup) + reason,
                                               key=cluster_mod.ENV) from None
        elif cluster is not None:   # a lone worker has no peer to serve: no server at its address (TensorFlow
            # would wait forever, holding the GIL, for an address that does not resolve), the same numbers
            local = tf.distribute.cluster_resolver.SimpleClusterResolver(tf.train.ClusterSpec({}))
            _strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=local)
            cluster_up()
        else:
            _strategy = tf.distribute.MultiWorkerMirroredStrategy()
    return _strategy


def replicas() -> int:
    """Replicas in sync of this process's multi-worker strategy (1 before there is one)."""
    return _strategy.num_replicas_in_sync if _strategy is not None else 1


def already_sharded(dataset: Any) -> Any:
    """A dataset of this worker's own batches (its part of every global batch) as the multi-worker strategy's
    input: no rebatching, no sharding (distribute_datasets_from_function; one replica per worker)."""
    return _strategy.distribute_datasets_from_function(lambda _: dataset)


def uneven_batches(rows: int, batch_size: int, replicas: int) -> str | None:
    """Why training on `replicas` replicas gives other numbers than one process (None: it gives the same).
    TensorFlow splits a global batch that does not divide by the replicas unevenly, and every replica's mean loss
    counts alike in the summed gradient; all batches divide exactly when the batch size and the rows do
    (measured: 1e-7 apart then, 5e-6 to 5e-5 otherwise, with 2 and 3 workers)."""
    if replicas <= 1 or (batch_size % replicas == 0 and rows % replicas == 0):
        return None
    last = rows % batch_size
    why = [f"batch size {batch_size}"] if batch_size % replicas else []
    if last % replicas:
        why.append(f"the last batch of {last} of {rows} training rows")
    elif rows % replicas:
        why.append(f"{rows} training rows")
    return (f"data.batch_size: the numbers will differ slightly from one process's: TensorFlow splits a batch that "
            f"does not divide by the {replicas} replicas unevenly among them (here: {' and '.join(why)}); a batch "
            f"size and a number of training rows that both divide by {replicas} give the same numbers")


def _configure_coordination(cluster: Cluster, limits: Limits) -> None:
    """TensorFlow's coordination service as MultiWorkerMirroredStrategy would set it up, with kcli's heartbeat
    timeout (it only configures its own when none is configured)."""
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.eager import context

    jobs = [coordination_config_pb2.CoordinatedJob(name=job, num_tasks=len(cluster.jobs[job]))
            for job in cluster_mod.JOBS if cluster.jobs.get(job)]
    context.context().configure_coordination_service(
        service_type="standalone", service_leader=multi_worker_util.coordination_leader(cluster.jobs),
        heartbeat_timeout_in_ms=int(limits.peer * 1000), coordinated_jobs=jobs,
        cluster_register_timeout_in_ms=int(limits.startup * 1000),
        # a finished worker waits at exit for the chief to write and verify the run's files
        shutdown_barrier_timeout_in_ms=3600 * 1000)
    context.context().coordination_service.cluster_register_with_barrier = True


_up = threading.Event()
_deciding = threading.Lock()   # the watchdog's verdict and the main thread's own error cannot both be said


def cluster_up() -> None:
    """The first training step went through (or start-up failed with an error of its own): the start-up watchdog
    stands down."""
    with _deciding:
        _up.set()


def start_watchdog(cluster: Cluster, seconds: float, listener: events.Listener = events.ignore) -> None:
    """End this process (exit 2, one line told to `listener`) unless `cluster_up()` is called within `seconds`:
    TensorFlow waits for missing peers forever (in the first collective operation) and cannot be interrupted then."""
    def watch() -> None:
        if not _up.wait(seconds + 5):   # TensorFlow's own registration timeout (the same seconds) comes first
            with _deciding:
                if not _up.is_set():
                    _die(f"{cluster_mod.ENV}: {_not_up(cluster, seconds)}", listener)   # never returns

    threading.Thread(target=watch, name="kcli-startup-watchdog", daemon=True).start()


def _not_up(cluster: Cluster, seconds: float) -> str:
    others = [a for job in cluster_mod.JOBS for a in cluster.jobs.get(job, []) if a != cluster.address]
    return (f"the cluster did not come up within {seconds:g} s: {cluster.task} ({cluster.address}) waited for "
            f"{listed(others)}. Check that every worker was started and can reach these addresses, or give a slow "
            "cluster more time with --startup-timeout")


_cleanups: list[Path] = []   # folders to remove even when this process ends with os._exit


@contextlib.contextmanager
def removed_at_exit(folder: Path) -> Iterator[Path]:
    """`folder` is removed also when the watchdog ends the process (os._exit skips `finally`)."""
    _cleanups.append(folder)
    try:
        yield folder
    finally:
        _cleanups.remove(folder)


def _die(message: str, listener: events.Listener) -> None:
    for folder in list(_cleanups):
        shutil.rmtree(folder, ignore_errors=True)
    listener(events.Error(message))
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(2)


def lost_peer(exc: BaseException) -> bool:
    """Whether a training error is TensorFlow reporting a lost or failed peer of the cluster."""
    import tensorflow as tf

    if not isinstance(exc, tf.errors.OpError):
        return False
    text = str(exc)
    return any(s in text for s in ("heartbeat", "unhealthy", "Collective ops is aborted", "connect", "Socket closed",
                                   "coordination service", "has been set to ERROR", "unavailable", "Unavailable"))


def peer_reason(exc: BaseException) -> str:
    """What TensorFlow's error says about the lost peer, in a few words."""
    import re

    text = str(exc)
    unhealthy = re.search(r"stopped sending heartbeats\):\s*/job:(\w+)/replica:\d+/task:(\d+)", text)
    if unhealthy:
        return f"{unhealthy[1]} {unhealthy[2]} stopped sending heartbeats for {LIMITS.peer:g} s"
    if "Connection reset by peer" in text or "Socket closed" in text or "failed to connect" in text.lower():
        return "the connection to a peer broke (it died or its machine went away)"
    return first_line(exc)


def devices(kind: str) -> str:
    """What `kcli train` shows about the devices it trains on."""
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    local = f"{len(gpus)} GPU ({', '.join(gpus)})" if gpus else "CPU"
    if kind == "none":
        return local
    replicas = _strategy.num_replicas_in_sync if kind == "multi_worker" and _strategy is not None else None
    if kind == "mirrored":
        return f"MirroredStrategy on {local}"
    cluster = cluster_of(kind)
    where = f"{cluster.task} of {cluster.workers} workers{' (chief)' if cluster.is_chief else ''}" \
        if cluster is not None else "1 worker"
    return f"MultiWorkerMirroredStrategy, {where}, {replicas or '?'} replicas in sync; this worker: {local}"
