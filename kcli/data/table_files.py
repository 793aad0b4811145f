"""The files of a table (a file, a folder of them, or a glob of shards) and whether to stream them."""

from __future__ import annotations

from pathlib import Path

from kcli.config.models import DataConfig
from kcli.data.checks import file_key
from kcli.errors import DataError
from kcli.files import readable, remote

STREAM_ABOVE = 512 << 20     # bytes of files above which `stream: auto` streams
SUFFIXES = {"csv": (".csv",), "parquet": (".parquet", ".pq"), "tfrecord": (".tfrecord", ".tfrecords", ".tfrec")}
TableFile = Path | remote.Info   # a local file, or an object a streamed table reads straight from the store


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


def table_sources(path: str, source: str, key: str) -> list[TableFile]:
    """The files of `path` as `table_files` finds them, but a URL's CSV / Parquet objects as listed, not copied
    (a streamed table reads them block by block from the store; `local_files` copies them to read whole)."""
    if remote.is_url(path) and source in ("csv", "parquet"):
        return list(remote.files(path, file_key(key), SUFFIXES[source]))
    return list(table_files(path, source, key))


def local_files(files: list[TableFile], key: str) -> list[Path]:
    """Local files for a table read whole: the objects among `files` copied here (files/remote.py)."""
    return [remote.local_copies([f], file_key(key))[0] if isinstance(f, remote.Info) else f for f in files]


def size_of(file: TableFile) -> int:
    """Bytes of a file, or of an object as the store listed it."""
    return file.size if isinstance(file, remote.Info) else file.stat().st_size


def should_stream(files: list[TableFile], data: DataConfig) -> bool:
    """`data.stream`, or for auto (None): whether the files (objects: their listed sizes) are too large to read
    whole comfortably."""
    if data.stream is not None and data.stream != "auto":
        return bool(data.stream)
    size = sum(size_of(f) for f in files)
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
