"""Keep TensorFlow's native start-up chatter off kcli's stderr.

On some x86 CPUs TensorFlow 2.21 writes `WARNING: All log messages before absl::InitializeLog() ...` and
`I0000 ... oneDNN custom operations are on ...` straight to file descriptor 2 from C++, at import and again
later, and neither TF_CPP_MIN_LOG_LEVEL nor the absl/glog variables hide them (abseil-cpp PR 1957 is open).
`TF_ENABLE_ONEDNN_OPTS=0` would, but it changes numerics. So kcli routes its own file descriptor 2 through a
small forked filter process that drops absl/glog INFO and WARNING lines (`I0000 ...`, `W0000 ...`) and the
known banners, and passes everything else through unchanged: kcli's own lines, Python warnings, and real
TensorFlow errors (`E...`/`F...` lines). A forked process (not a thread) so a C++ thread writing to stderr
can never wait on Python's GIL; it ends by itself when kcli's process ends, even when that is killed.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import signal
import sys

# glog/absl lines of severity I(nfo) or W(arning): "I1127 18:01:02.123456  123 file.cc:45] message", or before
# absl is initialised "I0000 00:00:1732712345.123456  123 file.cc:45] message"
_ABSL_INFO = re.compile(rb"^[IW]\d{4} [\d:.]+\s+\d+ [^ \]]+:\d+\] ")
_BANNERS = (
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
)


# A multi-worker cluster that loses a peer: every collective op logs the abort as an ERROR line (plus
# continuation lines); kcli reports the lost worker in one line of its own instead.
_PEER_ABORT = re.compile(rb"^E\d{4} [\d:.]+\s+\d+ (base_collective_executor|ring_alg|collective_ops_utils|"
                         rb"coordination_service_agent|coordination_service|collective_param_resolver_distributed|"
                         rb"hierarchical_tree_broadcaster|context_distributed_manager)\.cc:\d+\] ")
_PEER_ABORT_MORE = (b"/job:", b"The tasks have crashed", b"The error could be from a previous operation",
                    b"Additional GRPC error information", b":UNKNOWN:Error received from peer", b"Original error:",
                    b"# of tasks that reached the barrier", b"The first task at the barrier", b"RPC: /tensorflow.",
                    b"This is usually caused by an earlier error", b" [type.googleapis.com/tensorflow")


# Image decoders complaining about a damaged file (libjpeg's own line, TensorFlow's ERROR lines): kcli decodes
# every image once before training and names a damaged file in one line of its own (kcli/data/images.py).
_DECODER = re.compile(rb"^(Improper call to JPEG library in state \d+|"
                      rb"E\d{4} [\d:.]+\s+\d+ (jpeg_mem|jpeg_handle|png_io|gif_io|decode_image_op)\.cc:\d+\] )")


def is_noise(line: bytes) -> bool:
    """Whether a stderr line is TensorFlow's native INFO/WARNING chatter, or its logging of a lost peer or of a
    damaged image (which kcli reports itself)."""
    text = line.rstrip(b"\r\n")
    return (bool(_ABSL_INFO.match(line) or _PEER_ABORT.match(line) or _DECODER.match(line)) or text.startswith(_BANNERS)
            or line.startswith(_PEER_ABORT_MORE) or not text.strip())


def filter_lines(data: bytes) -> bytes:
    """The lines of `data` that are not noise (the last line may lack its newline)."""
    return b"".join(line for line in data.splitlines(keepends=True) if not is_noise(line))


def install() -> None:
    """Route file descriptor 2 through the filter process for the rest of this process's life."""
    if os.name != "posix" or os.environ.get("KCLI_RAW_STDERR"):
        return
    sys.stderr.flush()
    real = os.dup(2)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:   # the filter: only os-level calls, then _exit (no Python cleanup in a forked copy)
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C reaches the whole process group; kcli handles it
        os.close(write_end)
        for fd in (0, 1):
            with contextlib.suppress(OSError):
                os.close(fd)
        os.dup2(real, 2)
        _pump(read_end, real)
        os._exit(0)
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)
    atexit.register(_restore, real, pid)


def _pump(read_end: int, out: int) -> None:
    rest = b""
    while True:
        try:
            block = os.read(read_end, 65536)
        except InterruptedError:
            continue
        except OSError:
            break
        if not block:
            break
        lines = (rest + block).split(b"\n")
        rest = lines.pop()
        kept = filter_lines(b"".join(line + b"\n" for line in lines))
        if kept:
            _write_all(out, kept)
    if rest and not is_noise(rest):
        _write_all(out, rest)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            data = data[os.write(fd, data):]
        except InterruptedError:
            continue
        except OSError:
            return


def _restore(real: int, pid: int) -> None:
    """Give fd 2 back and wait until the filter has written everything (so output order holds at exit)."""
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os.dup2(real, 2)   # closes the pipe's last write end: the filter sees EOF
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
