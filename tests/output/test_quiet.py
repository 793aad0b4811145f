"""The stderr filter: TensorFlow's chatter dropped, errors kept."""

from __future__ import annotations

from kcli.output import quiet


def test_stderr_filter_keeps_errors_and_drops_chatter() -> None:
    data = (b"I0000 00:00:1732712345.1   12 port.cc:153] oneDNN custom operations are on.\n"
            b"W1127 18:01:02.123456  123 file.cc:45] a warning\n"
            b"E1127 18:01:02.123456  123 file.cc:45] an error\n"
            b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
            b"error: kcli\n")
    assert quiet.filter_lines(data) == b"E1127 18:01:02.123456  123 file.cc:45] an error\nerror: kcli\n"


def test_stderr_filter_drops_tensorflows_lost_peer_logging() -> None:
    """A lost worker makes every collective op log the abort (kcli says it in one line of its own)."""
    data = (b"E0000 00:00:1795824715.566724   17954 base_collective_executor.cc:252] BaseCollectiveExecutor::"
            b"StartAbort UNAVAILABLE: Error reported from /job:worker/task:1: The following tasks are unhealthy\n"
            b"/job:worker/replica:0/task:1\n"
            b"The tasks have crashed. Check the task logs for an earlier error\n"
            b"\n"
            b"error: training stopped on worker 0: a worker of the cluster was lost\n")
    assert quiet.filter_lines(data) == b"error: training stopped on worker 0: a worker of the cluster was lost\n"
