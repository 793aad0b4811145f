"""Whether the process that left something behind (a run marked running, a cache folder named by its pid) still
runs: what is left by a process that is gone may be taken over or removed."""

from __future__ import annotations

import os
from typing import Any


def alive(pid: Any) -> bool:
    """Whether a process with this pid exists (this process itself counts as not: it is not another run)."""
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
