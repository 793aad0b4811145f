"""Which files kcli may read: regular files inside the folder the user (or a run) named.

One rule for every folder walk (image classes, table folders and globs, `kcli init --data`, a run directory):
a symbolic link is read only when its target stays inside that folder; a link out of it (`cats -> /`) or a link
that loops is refused in one line naming the link; links to folders are never walked (as Keras's own image walk);
and only regular files are opened, so a FIFO or a device (`/dev/zero`) never blocks or floods a read.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from kcli.errors import DataError, KcliError

NOT_UTF8 = "has a name that is not UTF-8 text; rename it"


def problem(path: Path, root: Path | None = None, links: bool = True) -> str | None:
    """Why `path` may not be read as a file (a link loop, a link out of `root`, any link unless `links`, not a
    regular file, a name that is not UTF-8), or None."""
    if not links and (why := link_problem(path)) is not None:
        return why
    try:
        target = path.resolve(strict=True)
    except RuntimeError:
        return "is a symbolic link loop"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symbolic link loop"
        return "is a link that points at nothing" if path.is_symlink() else "does not exist"
    if root is not None and not target.is_relative_to(root.resolve()):
        return f"leads out of {root} through a symbolic link (to {target}); copy it into the folder instead"
    try:
        mode = target.stat().st_mode
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not stat.S_ISREG(mode):
        return "is a folder, not a file" if stat.S_ISDIR(mode) else f"is not a regular file (a {_kind(mode)})"
    return None if utf8(str(path)) else NOT_UTF8


def link_problem(path: Path) -> str | None:
    """'is a symbolic link (to X) ...' when `path` itself is a link (wherever it points), else None."""
    try:
        target = os.readlink(path)
    except OSError:   # not a link (or not there): nothing to say here
        return None
    return f"is a symbolic link (to {target}), not a file or folder of its own"


def utf8(name: str) -> bool:
    """Whether a file name is text (TensorFlow and the run's records need UTF-8; b'\\xff.png' is not)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"


def regular(path: Path, key: str, root: Path | None = None, error: type[KcliError] = DataError) -> Path:
    """`path` when it may be read as a file (see `problem`); otherwise one line naming it and `key`."""
    why = problem(path, root)
    if why is not None:
        raise error(f"{path} {why}", key=key)
    return path


def present(path: Path, key: str, error: type[KcliError] = DataError) -> bool:
    """Whether `path` is there (False: the caller says "not found" its own way); a path that is there but may
    not be read as a file (a FIFO, a device, a link loop, a folder) is one line naming it."""
    if not os.path.lexists(path):
        return False
    regular(path, key, None, error)
    return True


@contextlib.contextmanager
def open_regular(path: Path, links: bool = True) -> Iterator[BinaryIO]:
    """Open a file for reading only if it is a regular file (and no link, unless `links`): the check is made on
    the opened file itself, and the open does not wait for a FIFO's writer; OSError (EINVAL for anything else,
    ELOOP for a link) otherwise."""
    no_link = 0 if links else os.O_NOFOLLOW
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | no_link)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        os.set_blocking(fd, True)
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        yield fh


def read_bytes(path: Path, root: Path | None = None, links: bool = True) -> bytes | None:
    """The bytes of a regular file (inside `root` when given; not a link unless `links`), or None when it may
    not or cannot be read."""
    head = read_head(path, -1, root, links)
    return None if head is None else head[0]


def read_head(path: Path, limit: int, root: Path | None = None, links: bool = True) -> tuple[bytes, int] | None:
    """(the first `limit` bytes of a regular file, all of them when -1; the file's size), or None when it may
    not or cannot be read (see `problem`): a reader that shows a part never holds the whole file."""
    if problem(path, root, links) is not None:
        return None
    try:
        with open_regular(path, links) as fh:
            return fh.read(limit), os.fstat(fh.fileno()).st_size
    except OSError:
        return None


def read_text(path: Path, root: Path | None = None) -> str | None:
    """The text of a regular file (inside `root` when given; undecodable bytes replaced), or None."""
    data = read_bytes(path, root)
    return None if data is None else data.decode("utf-8", errors="replace")


def files_under(folder: Path, key: str, suffixes: tuple[str, ...], root: Path | None = None,
                recursive: bool = True, error: type[KcliError] = DataError) -> list[Path]:
    """The files named *suffix under `folder` (sorted; any depth unless not `recursive`) that a reader would
    open, each checked: a link must stay inside `root` (default: `folder`) and not loop, and every file must be a
    regular file (one line naming it otherwise). Sub-folders reached through links are not walked."""
    base = root if root is not None else folder
    found: list[Path] = []
    for path in _entries(folder, recursive):
        if path.name.lower().endswith(suffixes):
            found.append(regular(path, key, base, error))
    return sorted(found)


def _entries(folder: Path, recursive: bool) -> Iterator[Path]:
    """Every entry under `folder` (not itself, depth first in name order), descending only into real sub-folders
    (never through a link); an explicit stack, so a folder nested thousands deep is no RecursionError."""
    stack = [iter(_listing(folder))]
    while stack:
        path_entry = next(stack[-1], None)
        if path_entry is None:
            stack.pop()
            continue
        path, entry = path_entry
        if entry.is_dir(follow_symlinks=False):
            if recursive:
                stack.append(iter(_listing(path)))
        elif not (entry.is_symlink() and _is_dir(path)):   # a link to a folder is neither walked nor a file
            yield path


def _listing(folder: Path) -> list[tuple[Path, os.DirEntry[str]]]:
    """The entries of one folder sorted by name (none when it cannot be listed)."""
    try:
        with os.scandir(folder) as it:
            return [(folder / entry.name, entry) for entry in sorted(it, key=lambda e: e.name)]
    except OSError:
        return []


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, RuntimeError):
        return False


GLOB_CHARACTERS = "*?["


def is_pattern(path: str) -> bool:
    """Whether a data path is a glob: it holds *, ? or [ and names no existing file or folder as written (a file
    called `x[1].csv` is that file)."""
    return any(c in path for c in GLOB_CHARACTERS) and not os.path.lexists(path)


def glob_files(pattern: str, key: str, error: type[KcliError] = DataError) -> list[Path]:
    """The files a glob matches (sorted; folders left out; hidden names only when the pattern names them, as
    glob.glob), each checked as in `files_under` against the glob's fixed leading folder. `**` never descends
    through a link (glob.glob would: `data/**/*.csv` with `data/up -> /` walked the whole disk)."""
    parts = Path(pattern).parts
    fixed = next((i for i, part in enumerate(parts) if any(c in part for c in GLOB_CHARACTERS)), len(parts))
    root = Path(*parts[:fixed]) if fixed else Path(".")
    rest = "/".join(parts[fixed:])
    if not rest or not root.is_dir():
        return []
    hidden_ok = any(part.startswith(".") for part in parts[fixed:])
    found = []
    for path in (_deep_glob(root, parts[fixed:]) if "**" in parts[fixed:] else root.glob(rest)):
        relative = path.relative_to(root).parts
        if (not hidden_ok and any(part.startswith(".") for part in relative)) or _is_dir(path):
            continue
        found.append(regular(path, key, root, error))
    return sorted(found)


def _deep_glob(root: Path, pattern: tuple[str, ...]) -> Iterator[Path]:
    """The files under `root` whose relative path matches `pattern` (parts; `**` is any number of folders), found
    by the iterative walk: pathlib's `**` recurses once per folder level (a folder 1900 deep was a RecursionError)."""
    matchers = _matchers(pattern)
    for path in _entries(root, True):
        if _glob_match(path.relative_to(root).parts, matchers):
            yield path


def glob_match(parts: tuple[str, ...], pattern: list[str]) -> bool:
    """Whether path parts match glob parts (`**`: any number of folders), as a local glob matches them."""
    return _glob_match(parts, _matchers(pattern))


def _matchers(pattern: tuple[str, ...] | list[str]) -> list[re.Pattern[str] | None]:
    return [None if part == "**" else re.compile(fnmatch.translate(part)) for part in pattern]


def _glob_match(parts: tuple[str, ...], matchers: list[re.Pattern[str] | None]) -> bool:
    """Whether path parts match glob parts (None: `**`, zero or more folders, never the file's own name); the
    pattern is followed as a set of positions, so nothing recurses."""
    def closure(states: set[int]) -> set[int]:
        for i in sorted(states):   # `**` may match no folder: the next part may start here too
            j = i
            while j < len(matchers) and matchers[j] is None:
                states.add(j + 1)
                j += 1
        return states

    states = closure({0})
    for n, part in enumerate(parts):
        last = n == len(parts) - 1
        nxt = set()
        for i in states:
            if i < len(matchers) and matchers[i] is None and not last:
                nxt.add(i)
            elif i < len(matchers) and matchers[i] is not None and matchers[i].match(part):
                nxt.add(i + 1)
        states = closure(nxt)
    return len(matchers) in states


def subfolders(root: Path, key: str, error: type[KcliError] = DataError) -> list[Path]:
    """The sub-folders of `root` (sorted, hidden ones left out, as Keras lists classes); a link to a folder counts
    when it stays inside `root` (and is not `root` itself), a link out of it or a loop is refused."""
    found = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            why = problem(entry, root)
            if why == "is a symbolic link loop" or (why or "").startswith("leads out") and _is_dir(entry):
                raise error(f"{entry} {why}", key=key)
            if why != "is a folder, not a file":   # a link to a file beside the classes is no class: never read
                continue
            if entry.resolve() == root.resolve():
                raise error(f"{entry} is a link to its own folder {root} (a loop)", key=key)
        elif not entry.is_dir():
            continue
        if not utf8(str(entry)):
            raise error(f"{entry} {NOT_UTF8}", key=key)
        found.append(entry)
    return found


def tree_size(folder: Path) -> int:
    """Bytes of the regular files under `folder`, links neither followed nor counted."""
    total = 0
    for path in _entries(folder, True):
        with contextlib.suppress(OSError):
            info = path.lstat()
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total
