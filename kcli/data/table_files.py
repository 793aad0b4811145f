"""The files of a table (a file, a folder of them, or a glob of shards) and whether to stream them."""

from __future__ import annotations

from pathlib import Path

from kcli.config.models import DataConfig
from kcli.data.checks import file_key
from kcli.errors import DataError
from kcli.files import readable, remote

STREAM_ABOVE = 512 << 20     # bytes of files above which `stream: auto` streams
SUFFIXES = {"csv": (".csv",), "parquet": (".parquet", ".pq"), "tfrecord": (".tfrecord", ".tfrecords", ".tfrec")}


def table_files(path: str, source: str, key: str) -> list[Path]:
    """The files of `path`: a file, a folder (its .csv / .parquet files) or a glob, sorted by name; a URL's
    objects (an object, a prefix or a glob) are copied here first (files/remote.py)."""
    if remote.is_url(path):
        return remote.local_copies(remote.files(path, file_key(key), SUFFIXES[source]), file_key(key))
    p = Path(path)
    if readable.is_pattern(path):
        files = readable.glob_files(path, file_key(key))
        if not files:
            raise DataError(f"no file matches {path}", key=file_key(key))
        return files
    if p.is_dir():
        files = readable.files_under(p, file_key(key), SUFFIXES[source], recursive=False)
        if not files:
            raise DataError(f"the folder {p} holds no {' / '.join(SUFFIXES[source])} files", key=file_key(key))
        return files
    if not readable.present(p, file_key(key)):   # a FIFO, a device or a link loop is one line, never opened
        raise DataError(f"data file not found: {p}", key=file_key(key))
    return [p]


def should_stream(files: list[Path], data: DataConfig) -> bool:
    """`data.stream`, or for auto (None): whether the files are too large to read whole comfortably."""
    if data.stream is not None and data.stream != "auto":
        return bool(data.stream)
    size = sum(f.stat().st_size for f in files)
    return size > min(STREAM_ABOVE, _available_memory() // 4)


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30
