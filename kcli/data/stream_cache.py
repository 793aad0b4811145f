"""The rows of a streamed table as read, cached for the epochs: one Arrow IPC file per source file, written by
the pass before training (stream_pass.py), read back as binary columns instead of parsing the CSV again."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from kcli.data.splits import Arrays
from kcli.files.process import alive


class Cache:
    """The rows of a split as read (features converted, labels, weights), one Arrow IPC file per source file, so
    that every epoch reads binary columns instead of parsing the CSV again (as tf.data's `cache(filename)`, but
    written during the pass before training). Lives in a folder of its own under `root`, removed when the process
    ends (a killed process's folder is removed by the next one). Without room on the disk (or any write error)
    the split is simply parsed again each epoch."""

    def __init__(self, root: Path | None, size_hint: int) -> None:
        self.files: dict[Any, Path] = {}   # source file or object -> its cache file
        self.folder: Path | None = None
        self.root, self.size_hint = root, size_hint
        self.made: list[Path] = []   # folders this cache created (removed again when empty)
        self.off = root is None
        self.written = 0

    def writer(self, source: Any) -> _CacheWriter | None:
        if self.folder is None and not self.off:
            self._open()
        if self.folder is None:
            return None
        self.written += 1   # a new name even after `keep` removed some
        return _CacheWriter(self, source, self.folder / f"{self.written:05d}.arrow")

    def _open(self) -> None:
        """The cache's own folder, made on first use (a mistake found before anything is cached writes nothing)."""
        assert self.root is not None
        self.off = True
        try:
            self.made = [p for p in (self.root.parent, self.root) if not p.exists()]
            self.root.mkdir(parents=True, exist_ok=True)
            _prune(self.root)
            if shutil.disk_usage(self.root).free < self.size_hint * 1.2 + (256 << 20):
                self._remove_made()
                return
            self.folder = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=self.root))
        except OSError:
            return
        atexit.register(self.close)

    def keep(self, sources: set[Any]) -> None:
        """Remove the cached rows of every other source file (another worker reads them)."""
        for source in [s for s in self.files if s not in sources]:
            with contextlib.suppress(OSError):
                self.files.pop(source).unlink()

    def drop(self) -> None:
        """Stop caching (a write failed): remove what was written."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.folder, self.files = None, {}

    def close(self) -> None:
        """Remove the cache, and the folders it made when nothing else is in them."""
        self.drop()
        self._remove_made()

    def _remove_made(self) -> None:
        for folder in reversed(self.made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        if self.root is not None:
            with contextlib.suppress(OSError):
                self.root.rmdir()   # no other process's cache in it


class _CacheWriter:
    def __init__(self, cache: Cache, source: Any, target: Path) -> None:
        self.cache, self.source, self.target = cache, source, target
        self.sink: Any = None
        self.writer: Any = None

    def write(self, arrays: Arrays) -> None:
        import pyarrow as pa

        if self.cache.folder is None:
            return
        batch = _to_record_batch(arrays)
        try:
            if self.writer is None:
                self.sink = pa.OSFile(str(self.target), "wb")
                self.writer = pa.ipc.new_file(self.sink, batch.schema)
            self.writer.write_batch(batch)
        except (OSError, pa.ArrowException):
            self._close()
            self.cache.drop()

    def close(self) -> None:
        if self._close() and self.cache.folder is not None:
            self.cache.files[self.source] = self.target

    def _close(self) -> bool:
        try:
            if self.writer is not None:
                self.writer.close()
            if self.sink is not None:
                self.sink.close()
        except (OSError, Exception):  # pyarrow raises ArrowIOError/OSError on a full disk
            self.cache.drop()
            return False
        return self.writer is not None


def _to_record_batch(arrays: Arrays) -> Any:
    import pyarrow as pa

    assert isinstance(arrays.x, dict)
    columns = {f"x:{k}": _arrow(v[:, 0]) for k, v in arrays.x.items()}
    columns["y"] = _arrow(np.asarray(arrays.y))
    if arrays.w is not None:
        columns["w"] = pa.array(arrays.w)
    return pa.RecordBatch.from_pydict(columns)


def _arrow(values: np.ndarray) -> Any:
    import pyarrow as pa

    if values.dtype.kind in "OU":
        return pa.array(values.astype(object), type=pa.string())
    return pa.array(values)


def _from_record_batch(batch: Any) -> Arrays:
    names = batch.schema.names
    numpy = lambda name: batch.column(names.index(name)).to_numpy(zero_copy_only=False)  # noqa: E731
    x = {n[2:]: numpy(n).reshape(-1, 1) for n in names if n.startswith("x:")}
    w = numpy("w").astype(np.float32) if "w" in names else None
    return Arrays(x, numpy("y"), None, w)


def cached_blocks(path: Path) -> Iterator[Arrays]:
    import pyarrow as pa

    with pa.OSFile(str(path)) as fh:
        reader = pa.ipc.open_file(fh)
        for i in range(reader.num_record_batches):
            yield _from_record_batch(reader.get_batch(i))


def _prune(root: Path) -> None:
    """Remove the cache folders of processes that are gone (killed before they could remove their own)."""
    for folder in root.iterdir():
        pid = folder.name.split("-", 1)[0]
        if pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)

    return True
