"""kcli.files.process: whether the process that left a run or a cache folder behind still runs."""

from __future__ import annotations

import os
import subprocess
import sys

from kcli.files.process import alive


def test_a_process_is_alive_until_it_ends() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert alive(child.pid)
    finally:
        child.kill()
        child.wait()
    assert not alive(child.pid)


def test_this_process_and_values_that_are_no_pid_are_not_another_run() -> None:
    assert not alive(os.getpid())
    assert not alive(None) and not alive("123") and not alive(1.5)
    assert alive(os.getppid())
