"""sha256 of bytes and of files: how kcli recognises code it trusts and data that changed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from kcli.files import readable

BLOCK = 1 << 20   # a file is hashed a MiB at a time: a data file of any size never sits in memory whole


def sha256_bytes(data: bytes) -> str:
    """The sha256 of `data`, in hex (code is hashed from the very bytes that run: read once, never again)."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> tuple[str, int]:
    """The sha256 (in hex) and size of a regular file; OSError when it is missing, unreadable or no regular file
    (a run.json may name /dev/zero or a FIFO: neither is ever opened for reading)."""
    digest = hashlib.sha256()
    with readable.open_regular(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        for block in iter(lambda: fh.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest(), size
