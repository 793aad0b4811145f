"""Fingerprints of the data files a run reads (sha256 and size; an object in a store: its size and modification
time from the listing), and which of them changed since."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kcli.config.models import DataConfig
from kcli.config.source_rules import TABLES
from kcli.data.table_files import SUFFIXES, table_files
from kcli.errors import DataError, KcliError
from kcli.files import digest, readable, remote


def fingerprints(data: DataConfig) -> dict[str, dict[str, Any]]:
    """sha256 and size of every data file a (resolved) config reads, by absolute path (each file of a table's
    folder or glob)."""
    paths: list[str] = []
    stored: dict[str, dict[str, Any]] = {}
    for part in (data, data.validation, data.test):
        if part is None or not part.path:
            continue
        source = part.source or data.source
        if remote.is_url(part.path):
            stored.update(_remote_fingerprints(part.path, SUFFIXES.get(source, ())))
            continue
        several = Path(part.path).is_dir() or readable.is_pattern(part.path)
        if source in TABLES and several:
            try:
                paths += [str(f) for f in table_files(part.path, source, "data")]
            except DataError:
                pass
        else:
            paths.append(part.path)
    return {**{p: _fingerprint(Path(p)) for p in dict.fromkeys(paths)}, **stored}


def _remote_fingerprints(url: str, suffixes: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Size and modification time of the objects a URL names, from the store's listing (never read twice)."""
    try:
        return {info.url: _stored(info) for info in remote.files(url, "data", suffixes)}
    except KcliError:
        return {url: {"sha256": None, "bytes": None, "mtime": None}}


def _stored(info: remote.Info) -> dict[str, Any]:
    return {"sha256": None, "bytes": info.size, "mtime": info.mtime}


def _changed(path: str, recorded: dict[str, Any]) -> bool:
    """Whether one recorded file (or object: size and modification time) is different now or gone."""
    if remote.is_url(path):
        try:
            now = remote.files(path, "data")
        except KcliError:
            return True
        return len(now) != 1 or _stored(now[0]) != {"sha256": None, "bytes": recorded.get("bytes"),
                                                   "mtime": recorded.get("mtime")}
    return _fingerprint(Path(path))["sha256"] != recorded.get("sha256")


def _fingerprint(path: Path) -> dict[str, Any]:
    try:   # only a regular file: a received run.json may name /dev/zero or a FIFO
        sha256, size = digest.sha256_file(path)
    except OSError:
        return {"sha256": None, "bytes": None}
    return {"sha256": sha256, "bytes": size}


def changed_files(recorded: dict[str, dict[str, Any]]) -> list[str]:
    """The files whose contents differ from their recorded fingerprints (or that are gone)."""
    return [p for p, fp in recorded.items() if _changed(p, fp)]
