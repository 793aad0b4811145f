"""The cluster a multi-worker run belongs to: TF_CONFIG as Kubeflow's TFJob, Vertex AI and SageMaker set it, or
the one `kcli train --workers N` makes for local worker processes. TensorFlow-free (read before training).

TF_CONFIG is JSON: {"cluster": {"worker": ["host:port", ...], "chief": ["host:port"]?},
                    "task": {"type": "worker" | "chief", "index": i}}.
The chief is task `chief` 0 when the cluster has a chief job, else `worker` 0 (TensorFlow's own rule). Only the
chief writes the run directory.
"""

from __future__ import annotations

import json
import os
import reprlib
import socket
from dataclasses import dataclass
from typing import Any

from kcli.errors import KcliError, listed

ENV = "TF_CONFIG"
JOBS = ("chief", "worker")   # the jobs MultiWorkerMirroredStrategy trains with ("evaluator"/"ps" are not kcli's)
# Seconds a worker waits for all of the cluster to come up (then: exit 2 naming who is missing).
STARTUP_TIMEOUT = 60.0
# Seconds without a heartbeat before a peer counts as lost (TensorFlow's coordination service; its default is 10).
PEER_TIMEOUT = 10.0
LOCAL_HOSTS = ("localhost", "127.0.0.1", "0.0.0.0", "::1", "[::1]")   # names of this machine in an address


def _quoting() -> reprlib.Repr:
    """How much of a TF_CONFIG value a message quotes (a value may be thousands of addresses, or nested deep)."""
    quote = reprlib.Repr()
    quote.maxlevel, quote.maxlist, quote.maxdict, quote.maxstring, quote.maxother = 2, 3, 3, 80, 80
    return quote


_QUOTE = _quoting()


class ClusterError(KcliError):
    """TF_CONFIG does not parse, a port is taken, or the cluster did not come up."""


@dataclass(frozen=True)
class Cluster:
    """Every task's address by job, and which task this process is."""

    jobs: dict[str, list[str]]
    task_type: str
    task_index: int

    @property
    def workers(self) -> int:
        """Processes that train (chief + workers)."""
        return sum(len(self.jobs.get(j, [])) for j in JOBS)

    @property
    def is_chief(self) -> bool:
        if "chief" in self.jobs:
            return self.task_type == "chief"
        return self.task_type == "worker" and self.task_index == 0

    @property
    def rank(self) -> int:
        """This task's place among the processes that train, the chief first (as TensorFlow numbers them)."""
        chiefs = len(self.jobs.get("chief", []))
        return self.task_index if self.task_type == "chief" else chiefs + self.task_index

    @property
    def address(self) -> str:
        return self.jobs[self.task_type][self.task_index]

    @property
    def task(self) -> str:
        return f"{self.task_type} {self.task_index}"

    def describe(self) -> dict[str, Any]:
        """What run.json records about the cluster."""
        return {"workers": self.workers, "jobs": self.jobs, "task": {"type": self.task_type, "index": self.task_index},
                "chief": self.is_chief}


def from_env(environ: dict[str, str] | None = None) -> Cluster | None:
    """The cluster TF_CONFIG describes (None when it is unset or empty: one process)."""
    text = (environ if environ is not None else os.environ).get(ENV, "").strip()
    if not text:
        return None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ClusterError(f"does not parse as JSON ({exc.msg} at character {exc.pos + 1}); expected "
                           f"{_EXPECTED}", key=ENV) from None
    except RecursionError:
        raise ClusterError(f"nests too deeply to read; expected {_EXPECTED}", key=ENV) from None
    return parse(raw)


_EXPECTED = '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}'


def parse(raw: Any) -> Cluster:
    """Check TF_CONFIG's shape and return it as a Cluster."""
    if not isinstance(raw, dict) or not isinstance(raw.get("cluster"), dict):
        raise ClusterError("needs a \"cluster\" object mapping jobs to lists of \"host:port\"", key=ENV)
    jobs: dict[str, list[str]] = {}
    for job, addresses in raw["cluster"].items():
        if not isinstance(addresses, list) or not all(isinstance(a, str) and _host_port(a) for a in addresses):
            name = job if job.isidentifier() else _QUOTE.repr(job)
            raise ClusterError(f"cluster.{name} must be a list of \"host:port\" strings, got "
                               f"{_QUOTE.repr(addresses)}", key=ENV)
        jobs[job] = addresses
    if not any(jobs.get(j) for j in JOBS):
        raise ClusterError("the cluster has no \"worker\" (or \"chief\") addresses", key=ENV)
    unknown = set(jobs) - set(JOBS)
    if unknown:
        raise ClusterError(f"job(s) {listed([_QUOTE.repr(j) for j in sorted(unknown)])}: MultiWorkerMirroredStrategy "
                           "trains with \"chief\" and \"worker\" only (parameter servers and evaluators are not "
                           "supported)", key=ENV)
    if len(jobs.get("chief", [])) > 1:
        raise ClusterError("a cluster has at most one chief", key=ENV)
    task = raw.get("task")
    index = task.get("index") if isinstance(task, dict) else None
    if not isinstance(task, dict) or not isinstance(task.get("type"), str) or task["type"] not in jobs \
            or not isinstance(index, int) or isinstance(index, bool):
        raise ClusterError(f"\"task\" must name this process: {{\"type\": one of {sorted(jobs)}, \"index\": N}}, "
                           f"got {_QUOTE.repr(task)}", key=ENV)
    _check_distinct(jobs)
    if not 0 <= index < len(jobs[task["type"]]):
        raise ClusterError(f"task index {index} is outside cluster.{task['type']} "
                           f"({len(jobs[task['type']])} addresses)", key=ENV)
    return Cluster(jobs, task["type"], index)


def _check_distinct(jobs: dict[str, list[str]]) -> None:
    """Every task needs a port of its own (two tasks at one address would wait for each other until the timeout)."""
    seen: dict[tuple[str, str], str] = {}
    for job in JOBS:
        for index, address in enumerate(jobs.get(job, [])):
            host, _, port = address.rpartition(":")
            where = ("localhost" if host.lower() in LOCAL_HOSTS else host.lower(), str(int(port)))
            if where in seen:
                raise ClusterError(f"{seen[where]} and cluster.{job}[{index}] are the same address ({address}); give "
                                   "every task a port of its own", key=ENV)
            seen[where] = f"cluster.{job}[{index}]"


def _host_port(address: str) -> bool:
    host, _, port = address.rpartition(":")
    return bool(host) and port.isascii() and port.isdigit() and len(port) <= 5 and 0 < int(port) < 65536


def check_own_port(cluster: Cluster) -> None:
    """This task's port must be free before TensorFlow starts its server there (TensorFlow would abort the
    process with a C++ error instead)."""
    host, _, port = cluster.address.rpartition(":")
    if host not in (*LOCAL_HOSTS, socket.gethostname()):
        return   # another machine's name in a local test, or a DNS name of a pod: TensorFlow binds all interfaces
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # a port in TIME_WAIT is free (gRPC reuses it)
        try:
            sock.bind(("", int(port)))
        except OSError as exc:
            raise ClusterError(f"port {port} of {cluster.task} ({cluster.address}) is in use by another process "
                               f"({exc.strerror}); free it or give this task another port", key=ENV) from None


def free_ports(n: int) -> list[int]:
    """N distinct free localhost ports (held open together while picking so they differ)."""
    socks = []
    try:
        for _ in range(n):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("localhost", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def local_config(ports: list[int], index: int) -> str:
    """TF_CONFIG of worker `index` in a cluster of local processes."""
    return json.dumps({"cluster": {"worker": [f"localhost:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})
