"""Atomic writes: a file appears under its final name whole, or not at all.

Every file kcli writes goes to a temporary sibling (the same folder, so the rename never crosses file systems),
is flushed to the disk (fsync), renamed over its final name, and the folder is flushed too, so the new name
survives a power cut. On any failure (a full disk, a kill signal's KeyboardInterrupt, a writer's own error) the
temporary file is removed and an earlier version stays. Temporary names start with TMP_PREFIX, so what a killed
process leaves behind is recognisable (run.state.remove_partial_files, report's folder sum).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from kcli.errors import KcliError, RunError

TMP_PREFIX = ".tmp-"


def temporary_sibling(path: Path) -> Path:
    """A fresh temporary name beside `path` that keeps its suffix (Keras picks a format by the suffix)."""
    return path.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex[:12]}-{path.name}")


@contextlib.contextmanager
def target(path: Path, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `path` for a writer to create (a file, or a folder such as a SavedModel); it
    becomes `path` only if the block succeeds. An existing `path` is refused unless `replace` (a file the user
    asked to overwrite); a folder never is replaced."""
    if path.exists() and not replace:
        raise RunError(f"refusing to overwrite {path}")
    if path.is_dir():
        raise RunError(f"{path} is a directory")
    with _committed(path) as tmp:
        yield tmp


def write_bytes(path: Path, data: bytes) -> None:
    """Write a file atomically, replacing an earlier version of it (which stays should the write fail)."""
    with _committed(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically as UTF-8 (see write_bytes)."""
    write_bytes(path, text.encode("utf-8"))


def copy_file(src: Path, dest: Path) -> None:
    """Copy a file atomically, replacing `dest`."""
    with target(dest, replace=True) as tmp:
        shutil.copyfile(src, tmp)


def writable_folder(folder: Path, key: str, error: type[KcliError] = RunError) -> None:
    """`folder` exists and a file can be created in it (tried: permissions, a read-only file system, /sys), so
    an output is refused before the work, not half-way; one line naming `key` and the OS's reason otherwise."""
    if not folder.is_dir():
        raise error(f"the folder {folder} does not exist; create it first", key=key)
    probe = folder / f"{TMP_PREFIX}{uuid.uuid4().hex[:12]}-kcli-write-check"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise error(f"cannot write in {folder} ({reason}); choose a folder you can write", key=key) from None
    os.close(fd)
    probe.unlink()


@contextlib.contextmanager
def _committed(path: Path) -> Iterator[Path]:
    """The one place a temporary sibling is flushed, renamed to `path` and its folder flushed; or removed."""
    tmp = temporary_sibling(path)
    try:
        yield tmp
        _sync_tree(tmp)
        os.replace(tmp, path)
        _sync(path.parent)
    finally:
        _remove(tmp)


def _sync_tree(path: Path) -> None:
    """fsync a written file, or every file and folder of a written folder (a SavedModel)."""
    if path.is_dir() and not path.is_symlink():
        for folder, _, names in os.walk(path):
            for name in names:
                _sync(Path(folder) / name)
            _sync(Path(folder))
    else:
        _sync(path)


def _sync(path: Path) -> None:
    # a folder is opened read-only to fsync it; some file systems refuse fsync on a folder (EINVAL), which then
    # promises nothing more than the rename itself
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP) or not path.is_dir():
            raise
    finally:
        os.close(fd)


def _remove(tmp: Path) -> None:
    """Remove what is left of a temporary sibling (nothing after a successful rename)."""
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
