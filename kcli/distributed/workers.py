"""`kcli train CONFIG --workers N`: a cluster of N local worker processes (MultiWorkerMirroredStrategy on
localhost ports), for one big machine and for tests. TensorFlow-free: this process only starts, watches and stops.

Worker 0 is the chief: its output is this command's output and its exit code is this command's exit code. The
others write to log files in a temporary folder; a worker that fails has its last lines shown. Ctrl-C stops all
of them (the chief records the run as interrupted); a worker that dies makes the others stop within the peer
timeout, and whatever still runs after that (plus a grace period) is killed, so the command always returns.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kcli import events
from kcli.distributed import cluster as cluster_mod
from kcli.errors import KcliError
from kcli.run import records, state

GRACE = 20.0   # seconds the others get to finish after the chief ended or a worker failed, beyond the peer timeout
RUN_DIR_ENV = "KCLI_RUN_DIR_FILE"   # where the chief writes its run directory's path (for this launcher)
SUPERVISED_ENV = "KCLI_SUPERVISED"   # set in a worker whose parent (this launcher, or `supervise`) stops it
# Seconds a supervised worker gets to stop after SIGINT/SIGTERM (recording its run as interrupted) before it is
# killed; a second signal kills it at once.
SIGNAL_GRACE = 5.0


def die_with_parent() -> None:
    """In a child: SIGKILL when the parent dies (Linux), so a killed launcher or sweep leaves nothing behind."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG


def launch(n: int, args: list[str], listener: events.Listener, peer_timeout: float) -> tuple[int, Path | None]:
    """Run `kcli train ARGS` as workers 0..n-1 of a local cluster; returns the chief's exit code and the run
    directory the chief made (None if it made none)."""
    ports = cluster_mod.free_ports(n)
    listener(events.Note(f"starting {n} workers on localhost ports {', '.join(map(str, ports))} "
                         "(worker 0 is the chief)"))
    with tempfile.TemporaryDirectory(prefix="kcli-workers-") as tmp:
        logs = [Path(tmp) / f"worker-{i}.log" for i in range(n)]
        run_dir_file = Path(tmp) / "run_dir"
        procs = [_start(i, ports, args, logs[i], run_dir_file) for i in range(n)]
        stopped = interrupted = False
        try:
            code, stopped = _watch(procs, listener, peer_timeout)
        except KeyboardInterrupt:
            code, interrupted = _interrupt(procs), True
        finally:
            for proc in procs:
                _kill(proc)
        # Ctrl-C stopped them all; a mistake in the config (exit 2) is said once, by the chief
        failed = [] if interrupted else _report_failures(procs, logs, listener, quiet_code=2 if code == 2 else None)
        if code >= 0:
            return code, _run_dir(run_dir_file)
        # the chief was killed (by someone else, or by this launcher after another worker failed): it could
        # not record that itself
        why = f"worker {failed[0][0]} failed" if stopped and failed else f"the chief was killed by signal {-code}"
        run = _mark_interrupted(run_dir_file, why)
        stop = "; the chief was stopped" if stopped else ""
        listener(events.Error(f"{why}{stop}. Resume with: kcli train --resume {run} --workers {n}" if run is not None
                              and state.saved_epoch(run) else
                              f"{why}{stop} before the first epoch was saved; nothing to resume"))
        return (failed[0][1] if stopped and failed and failed[0][1] > 0 else 128 - code), run


def supervise(argv: list[str], listener: events.Listener) -> int:
    """`kcli ARGV` as a child of this process, which passes SIGINT/SIGTERM on (as SIGINT: the child records its
    run as interrupted) and kills the child when it does not stop within SIGNAL_GRACE: TensorFlow holds the GIL
    while it registers with a cluster, so no handler of the child runs then (and its own swallows SIGTERM).
    Returns the exit code the child ended with (128 + N for signal N)."""
    received: list[tuple[int, float]] = []   # (signal, when)
    with tempfile.TemporaryDirectory(prefix="kcli-task-") as tmp:   # what the child leaves when it is killed goes
        run_dir_file = Path(tmp) / "run_dir"
        env = {RUN_DIR_ENV: str(run_dir_file), **os.environ, SUPERVISED_ENV: "1", "TMPDIR": tmp}
        # its own process group: a terminal's Ctrl-C reaches this process only, and is passed on once
        child = subprocess.Popen([sys.executable, "-m", "kcli", *argv], env=env, preexec_fn=die_with_parent,
                                 process_group=0)

        def on_signal(signum: int, _frame: object) -> None:
            received.append((signum, time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGINT if len(received) == 1 else signal.SIGKILL)

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, on_signal)
        while child.poll() is None and not (received and time.monotonic() > received[0][1] + SIGNAL_GRACE):
            time.sleep(0.1)
        if child.poll() is None:
            _kill(child)
            name = signal.Signals(received[0][0]).name
            run = _mark_interrupted(run_dir_file, f"stopped by {name}")
            if run is not None and Path(tmp).resolve() in run.resolve().parents:
                run = None   # a non-chief worker's temporary run, removed with this folder
            listener(events.Error(f"stopped by {name}: the worker did not stop within {SIGNAL_GRACE:g} s (TensorFlow "
                                  "was waiting for its cluster or a peer), so it was killed; "
                                  + (f"{run} is recorded as interrupted" if run else "nothing was written")))
            return 128 + received[0][0]
        return child.returncode if child.returncode >= 0 else 128 - child.returncode


def _start(index: int, ports: list[int], args: list[str], log: Path, run_dir_file: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, cluster_mod.ENV: cluster_mod.local_config(ports, index), SUPERVISED_ENV: "1"}
    if index > 0:   # a worker's temporary run folder lives in this launcher's, which goes even if the worker is killed
        tmp = log.parent / f"worker-{index}-tmp"
        tmp.mkdir()
        env["TMPDIR"] = str(tmp)
    if index == 0:
        env[RUN_DIR_ENV] = str(run_dir_file)
        return subprocess.Popen([sys.executable, "-m", "kcli", "train", *args], env=env, preexec_fn=die_with_parent)
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "kcli", "train", *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)


def _watch(procs: list[subprocess.Popen[bytes]], listener: events.Listener, peer_timeout: float) -> tuple[int, bool]:
    """Wait for the chief; once a worker failed or the chief ended, the rest get a bounded time. Returns the
    chief's exit code and whether this launcher had to stop the chief."""
    deadline: float | None = None
    while True:
        codes = [p.poll() for p in procs]
        if codes[0] is not None and all(c is not None for c in codes):
            return codes[0], False
        failed = [i for i, c in enumerate(codes) if c not in (None, 0)]
        if deadline is None and (failed or codes[0] is not None):
            deadline = time.monotonic() + peer_timeout + GRACE
        if deadline is not None and time.monotonic() > deadline:
            stuck = [i for i, c in enumerate(codes) if c is None]
            listener(events.Warn(f"worker(s) {', '.join(map(str, stuck))} still running {peer_timeout + GRACE:g} s "
                                 "after the cluster broke up; stopping them"))
            for i in stuck:
                _kill(procs[i])
            return (procs[0].wait(), True) if codes[0] is None else (codes[0], False)
        time.sleep(0.2)


def _interrupt(procs: list[subprocess.Popen[bytes]]) -> int:
    """Ctrl-C: the workers got SIGINT from the terminal too (same process group); give the chief time to record
    the interrupted run, then stop everything."""
    with contextlib.suppress(subprocess.TimeoutExpired, KeyboardInterrupt):
        procs[0].wait(timeout=2)   # a terminal's Ctrl-C reached them already; a signal to this process alone not
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired, KeyboardInterrupt):
        procs[0].wait(timeout=GRACE)
    code = procs[0].poll()
    return 130 if code is None or code < 0 else code


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL: TensorFlow's preemption handler swallows SIGTERM while a worker waits for its peers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()


def _report_failures(procs: list[subprocess.Popen[bytes]], logs: list[Path], listener: events.Listener,
                     quiet_code: int | None = None) -> list[tuple[int, int]]:
    """Say which non-chief workers failed and how (not those that failed with `quiet_code`, which the chief
    already said); returns (worker, exit code) of each."""
    failed = []
    for i, proc in enumerate(procs[1:], start=1):
        if proc.returncode not in (0, None, quiet_code):
            killed = proc.returncode < 0
            listener(events.Warn(f"worker {i} was killed by signal {-proc.returncode}" if killed else
                                 f"worker {i} exited with code {proc.returncode}{_last_line(logs[i])}"))
            failed.append((i, proc.returncode))
    return failed


def _last_line(log: Path) -> str:
    """The last thing a worker said (its error line), if anything."""
    with contextlib.suppress(OSError):
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        kept = [ln for ln in lines if ln.startswith(("error", "Error", "kcli"))] or lines
        if kept:
            return f": {kept[-1][:300]}"
    return ""


def _run_dir(run_dir_file: Path) -> Path | None:
    """The run directory the chief announced (None: it made none)."""
    try:
        return Path(run_dir_file.read_text().strip())
    except OSError:
        return None


def _mark_interrupted(run_dir_file: Path, why: str) -> Path | None:
    """run.json of a run whose chief was killed says interrupted (the chief could not write it); returns the
    run directory when the chief had made one."""
    run_dir = _run_dir(run_dir_file)
    if run_dir is None:
        return None
    with contextlib.suppress(OSError, ValueError, KcliError):
        record = records.load_record(run_dir, "RUN")
        if record.get("status") == "running":
            records.RunRecord(run_dir, record).finish("interrupted", error=why)
    return run_dir
