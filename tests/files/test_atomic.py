"""kcli.files.atomic: the one atomic writer (temp file in the same folder, fsync, rename, fsync of the folder)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from kcli.errors import DataError, RunError
from kcli.files import atomic


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(f"{atomic.TMP_PREFIX}*"))


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The inode of every file or folder os.fsync is called on, in order (a rename keeps a file's inode)."""
    seen: list[int] = []
    real = os.fsync

    def record(fd: int) -> None:
        seen.append(os.fstat(fd).st_ino)
        real(fd)

    monkeypatch.setattr(os, "fsync", record)
    return seen


def test_write_bytes_fsyncs_the_file_then_its_folder(tmp_path: Path, synced: list[int]) -> None:
    path = tmp_path / "run.json"
    atomic.write_bytes(path, b"{}\n")
    assert path.read_bytes() == b"{}\n" and _leftovers(tmp_path) == []
    assert synced == [path.stat().st_ino, tmp_path.stat().st_ino]


def test_write_text_replaces_an_earlier_version(tmp_path: Path) -> None:
    path = tmp_path / "summary.txt"
    atomic.write_text(path, "first")
    atomic.write_text(path, "second \u00e9")
    assert path.read_text(encoding="utf-8") == "second \u00e9" and _leftovers(tmp_path) == []


def test_a_failing_write_leaves_the_old_file_and_no_temporary_file(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "history.csv"
    path.write_text("old")

    def full(fd: int) -> None:   # the disk filled: the data could not be flushed
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as caught:
        atomic.write_text(path, "new")
    assert caught.value.errno == errno.ENOSPC
    assert path.read_text() == "old" and _leftovers(tmp_path) == []


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_a_writer_that_fails_half_way_leaves_nothing(tmp_path: Path, failure: BaseException) -> None:
    path = tmp_path / "model.keras"
    path.write_bytes(b"old model")
    with pytest.raises(type(failure)), atomic.target(path, replace=True) as tmp:
        tmp.write_bytes(b"half a model")
        raise failure
    assert path.read_bytes() == b"old model" and _leftovers(tmp_path) == []


def test_target_keeps_the_suffix_and_writes_in_the_same_folder(tmp_path: Path) -> None:
    path = tmp_path / "model.weights.h5"
    with atomic.target(path) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(atomic.TMP_PREFIX)
        assert tmp.name.endswith("-model.weights.h5")
        tmp.write_bytes(b"w")
    assert path.read_bytes() == b"w"


def test_target_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "model.h5"
    path.write_bytes(b"kept")
    with pytest.raises(RunError, match="refusing to overwrite"), atomic.target(path) as tmp:
        tmp.write_bytes(b"never")
    (tmp_path / "folder").mkdir()
    with pytest.raises(RunError, match="is a directory"), atomic.target(tmp_path / "folder", replace=True):
        pass
    assert path.read_bytes() == b"kept" and _leftovers(tmp_path) == []


def test_a_written_folder_is_synced_file_by_file(tmp_path: Path, synced: list[int]) -> None:
    path = tmp_path / "saved_model"
    with atomic.target(path) as tmp:
        (tmp / "variables").mkdir(parents=True)
        (tmp / "saved_model.pb").write_bytes(b"pb")
        (tmp / "variables" / "variables.index").write_bytes(b"ix")
    inodes = {p.stat().st_ino for p in [path, path / "variables", path / "saved_model.pb",
                                        path / "variables" / "variables.index", tmp_path]}
    assert set(synced) == inodes and synced[-1] == tmp_path.stat().st_ino


def test_a_failing_folder_writer_removes_the_whole_temporary_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError), atomic.target(tmp_path / "saved_model") as tmp:
        (tmp / "variables").mkdir(parents=True)
        raise ValueError("trace failed")
    assert list(tmp_path.iterdir()) == []


def test_copy_file_replaces_the_destination(tmp_path: Path) -> None:
    (tmp_path / "last.weights.h5").write_bytes(b"last")
    (tmp_path / "best.weights.h5").write_bytes(b"older")
    atomic.copy_file(tmp_path / "last.weights.h5", tmp_path / "best.weights.h5")
    assert (tmp_path / "best.weights.h5").read_bytes() == b"last" and _leftovers(tmp_path) == []


def test_writable_folder(tmp_path: Path) -> None:
    atomic.writable_folder(tmp_path, "--output")
    assert list(tmp_path.iterdir()) == []   # the probe is gone
    with pytest.raises(DataError, match="does not exist; create it first") as caught:
        atomic.writable_folder(tmp_path / "missing", "--output", DataError)
    assert caught.value.key == "--output"
