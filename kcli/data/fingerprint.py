"""Fingerprints of the data files a run reads (sha256 and size), and which of them changed since."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kcli.config.models import DataConfig
from kcli.config.source_rules import TABLES
from kcli.data.table_files import table_files
from kcli.errors import DataError
from kcli.files import digest, readable


def fingerprints(data: DataConfig) -> dict[str, dict[str, Any]]:
    """sha256 and size of every data file a (resolved) config reads, by absolute path (each file of a table's
    folder or glob)."""
    paths: list[str] = []
    for part in (data, data.validation, data.test):
        if part is None or not part.path:
            continue
        source = part.source or data.source
        several = Path(part.path).is_dir() or readable.is_pattern(part.path)
        if source in TABLES and several:
            try:
                paths += [str(f) for f in table_files(part.path, source, "data")]
            except DataError:
                pass
        else:
            paths.append(part.path)
    return {p: _fingerprint(Path(p)) for p in dict.fromkeys(paths)}


def _fingerprint(path: Path) -> dict[str, Any]:
    try:   # only a regular file: a received run.json may name /dev/zero or a FIFO
        sha256, size = digest.sha256_file(path)
    except OSError:
        return {"sha256": None, "bytes": None}
    return {"sha256": sha256, "bytes": size}


def changed_files(recorded: dict[str, dict[str, Any]]) -> list[str]:
    """The files whose contents differ from their recorded fingerprints (or that are gone)."""
    return [p for p, fp in recorded.items() if _fingerprint(Path(p))["sha256"] != fp.get("sha256")]
