"""kcli.files.digest: the one sha256 of bytes and of files."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from kcli.files import digest


def test_bytes_and_file_hashes_agree_with_hashlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytes(range(256)) * 41
    (tmp_path / "data.csv").write_bytes(data)
    monkeypatch.setattr(digest, "BLOCK", 1000)   # several blocks: the blocks join into the file's hash
    assert digest.sha256_bytes(data) == hashlib.sha256(data).hexdigest()
    assert digest.sha256_file(tmp_path / "data.csv") == (hashlib.sha256(data).hexdigest(), len(data))


def test_an_empty_file_has_the_empty_hash(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    assert digest.sha256_file(tmp_path / "empty") == (hashlib.sha256(b"").hexdigest(), 0)


def test_only_regular_files_are_hashed(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")   # opening it for reading would wait for a writer forever
    for path in (tmp_path / "pipe", tmp_path / "missing", tmp_path):
        with pytest.raises(OSError):
            digest.sha256_file(path)

