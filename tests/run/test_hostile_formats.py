"""Hostile file formats: a TFRecord length that would crash TensorFlow, folders and JSON nested too deep to walk
or parse, a run's files too big or too strange to embed in its report: each ends in one line or a calm page."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kcli.data.tfrecords import masked_crc
from tests.conftest import run_cli
from tests.data.test_hostile_data import _image_config, _image_folder, _tfrecord_project
from tests.helpers import assert_user_error, tiny_project

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("stream", [False, True])
def test_a_tfrecord_length_beyond_the_file_with_a_valid_checksum_is_one_line_not_a_crash(tmp_path: Path,
                                                                                        stream: bool) -> None:
    config, path, starts = _tfrecord_project(tmp_path, records=6)
    damaged = bytearray(path.read_bytes())
    length = (2**40).to_bytes(8, "little")   # record 2 claims a terabyte, its header's checksum valid
    damaged[starts[1]:starts[1] + 12] = length + masked_crc(length).to_bytes(4, "little")
    path.write_bytes(bytes(damaged))
    # a subprocess: TensorFlow reading this length ends the process with SIGSEGV
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KCLI_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-m", "kcli", "train", str(config), "--runs-dir", str(tmp_path / "runs"),
                           "--set", f"data.stream={str(stream).lower()}"], capture_output=True, text=True,
                          timeout=120, env=env, cwd=tmp_path)
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    expected = (f"data.path: {path} is damaged: record 2 (at byte {starts[1]}) is cut short: its length field says "
                f"{2**40} bytes, the file has {len(damaged) - starts[1] - 16} more; copy the file again")
    assert len(lines) == 1 and expected in lines[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())



def test_a_tfrecord_length_beyond_the_file_with_a_wrong_checksum_is_a_damaged_header(tmp_path: Path) -> None:
    config, path, starts = _tfrecord_project(tmp_path, records=6)
    damaged = bytearray(path.read_bytes())
    damaged[starts[1]:starts[1] + 12] = (2**40).to_bytes(8, "little") + bytes(4)   # noise, not a length
    path.write_bytes(bytes(damaged))
    assert_user_error(run_cli("train", config, "--runs-dir", tmp_path / "runs"),
                      f"data.path: {path} is damaged: record 2 (at byte {starts[1]}) does not match its checksum")
    (tmp_path / "junk.tfrecord").write_text("not a TFRecord file at all\n" * 4)
    assert_user_error(run_cli("train", config, "--runs-dir", tmp_path / "runs", "--set", "data.path=junk.tfrecord"),
                      f"{tmp_path / 'junk.tfrecord'} is damaged: record 1 (at byte 0) does not match its checksum")

def _chain(top: Path, depth: int) -> Path:
    """Folders top/a/a/.../a `depth` deep (os.makedirs and shutil.rmtree recurse per level); returns the deepest."""
    path = top
    for _ in range(depth):
        path = path / "a"
        path.mkdir()
    return path


def _remove_chain(top: Path, depth: int) -> None:
    """Remove what `_chain` made, deepest first, without recursion (pytest's cleanup would recurse)."""
    for level in range(depth, 0, -1):
        folder = top.joinpath(*["a"] * level)
        for entry in folder.iterdir():
            if not entry.is_dir() or entry.is_symlink():
                entry.unlink()
        if folder.is_dir():
            folder.rmdir()


def test_a_class_folder_thousands_deep_is_walked_in_order_and_is_one_line_for_keras(tmp_path: Path) -> None:
    from kcli.files import readable

    pics = _image_folder(tmp_path)
    deepest = _chain(pics / "a", 1900)
    try:
        (deepest / "z.png").write_bytes((pics / "a" / "0.png").read_bytes())
        (pics / "a" / "a" / "b.png").write_bytes((pics / "a" / "1.png").read_bytes())
        found = readable.files_under(pics / "a", "data.path", (".png",))
        assert found == sorted([*(pics / "a").glob("*.png"), pics / "a" / "a" / "b.png", deepest / "z.png"])
        # Keras's own walk (os.walk) recurses per level: one line naming the folder, not a RecursionError
        result = run_cli("train", _image_config(tmp_path), "--runs-dir", tmp_path / "runs")
        assert_user_error(result, f"data.path: {pics} holds folders nested too deep for Keras's folder walk")
        assert not (tmp_path / "runs").exists()
    finally:
        _remove_chain(pics / "a", 1900)


def test_a_double_star_glob_finds_files_thousands_deep_as_pathlib_does(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from kcli.files import readable

    monkeypatch.chdir(tmp_path)
    for name in ("d/1.csv", "d/a/2.csv", "d/a/b/3.csv", "d/x/4.txt", "d/.h/5.csv", "d/a/b/6.CSV"):
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_text("x\n")
    for pattern in ("d/**/*.csv", "d/*/**/*.csv", "d/**/b/*.csv", "d/**/*", "d/.h/**/*.csv"):   # pathlib's answers
        assert readable.glob_files(pattern, "data.path") == sorted(
            p for p in Path().glob(pattern) if p.is_file() and (".h" not in p.parts or ".h" in pattern)), pattern
    deepest = _chain(Path("d/a"), 1900)
    try:
        (deepest / "z.csv").write_text("x\n")
        assert readable.glob_files("d/**/*.csv", "data.path") == [Path("d/1.csv"), Path("d/a/2.csv"),
                                                                   deepest / "z.csv", Path("d/a/b/3.csv")]
    finally:
        _remove_chain(Path("d/a"), 1900)

def _fake_run(folder: Path, name: str = "tiny-20261205-100000") -> Path:
    """A run directory kcli report and kcli runs read (no TensorFlow): run.json, history, metrics, config."""
    run = folder / "runs" / name
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"name": "tiny", "status": "completed", "seed": 5,
                                              "started": "2026-12-05T10:00:00+00:00",
                                              "ended": "2026-12-05T10:01:00+00:00", "epochs_completed": 1}))
    (run / "history.json").write_text(json.dumps([{"epoch": 1, "loss": 0.5}]))
    (run / "metrics.json").write_text(json.dumps({"loss": 0.25, "accuracy": 0.75}))
    (run / "config.yaml").write_text("name: tiny\n")
    return run


def test_report_sums_a_run_folder_thousands_deep(tmp_path: Path) -> None:
    run = _fake_run(tmp_path)
    (run / "extra").mkdir()
    deepest = _chain(run / "extra", 1100)
    try:
        (deepest / "blob.bin").write_bytes(b"x" * 3000)
        (run / "extra" / "top.bin").write_bytes(b"y" * 2000)
        result = run_cli("report", run, "--runs-dir", tmp_path / "runs")
        assert result.exit_code == 0, (result.stderr, result.exception)
        assert "<td>extra/</td><td class='n'>4.9 KiB</td>" in (run / "report.html").read_text()
    finally:
        _remove_chain(run / "extra", 1100)


DEEP_JSON = "[" * 200_000 + "]" * 200_000


def test_runs_lists_every_run_when_one_has_json_nested_too_deep_to_parse(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    for name in ("run.json", "history.json", "metrics.json"):
        (_fake_run(tmp_path, f"{name.split('.')[0]}-20261205-100000") / name).write_text(DEEP_JSON)
    result = run_cli("runs", "--runs-dir", runs_dir)
    assert result.exit_code == 0, (result.stderr, result.exception)
    lines = {line.split()[1]: line for line in result.stdout.splitlines() if "-20261205-" in line}
    assert sorted(lines) == ["history-20261205-100000", "metrics-20261205-100000", "run-20261205-100000"]
    assert "damaged" in lines["run-20261205-100000"]
    assert "completed" in lines["history-20261205-100000"] and "completed" in lines["metrics-20261205-100000"]


def test_report_says_which_json_file_is_nested_too_deep_in_the_page(tmp_path: Path) -> None:
    run = _fake_run(tmp_path)
    for name in ("history.json", "metrics.json", "eval-test.json"):
        (run / name).write_text(DEEP_JSON)
    result = run_cli("report", run)
    assert result.exit_code == 0, (result.stderr, result.exception)
    page = (run / "report.html").read_text()
    assert "history.json: left out (not a readable JSON list in the run)" in page
    assert "metrics.json: left out (not a readable JSON object in the run)" in page
    assert "eval-test.json: left out (not a readable JSON object in the run)" in page
    (run / "run.json").write_text(DEEP_JSON)
    assert_user_error(run_cli("report", run), f"RUN: {run / 'run.json'} is damaged or unreadable (not a JSON object)")


def test_a_config_value_nested_thousands_deep_is_one_line_naming_the_file_and_line(tmp_path: Path) -> None:
    config = tiny_project(tmp_path)
    config.write_text(config.read_text() + "x: " + "[" * 5000 + "]" * 5000 + "\n")
    line = len(config.read_text().splitlines())
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    assert_user_error(result, f"{config}:{line}: values nested more than 100 levels deep; a config is far flatter")
    result = run_cli("train", tiny_project(tmp_path), "--runs-dir", tmp_path / "runs",
                     "--set", "fit.epochs=" + "[" * 5000 + "]" * 5000)
    assert_user_error(result, "values nested more than 100 levels deep")
    assert not (tmp_path / "runs").exists()


def test_report_embeds_the_first_mebibyte_of_a_big_text_file_and_no_big_picture(tmp_path: Path) -> None:
    run = _fake_run(tmp_path)
    (run / "summary.txt").write_text("s" * (3 << 20))                      # 3 MiB: 1 shown, 2 cut
    (run / "history.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(9 << 20))   # 9 MiB: left out
    result = run_cli("report", run)
    assert result.exit_code == 0, (result.stderr, result.exception)
    page = (run / "report.html").read_text()
    assert len(page) < (1 << 20) + 20_000
    assert "s" * (1 << 20) + "\n(cut: 2.0 MiB more in summary.txt)</pre>" in page
    assert "(history.png is 9.0 MiB, too big to embed; open it beside the report)" in page
    assert "data:image/png" not in page


def test_a_run_json_file_over_the_cap_is_left_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kcli.run import records

    monkeypatch.setattr(records, "MAX_JSON", 1000)   # the cap (64 MiB) made small: the same rule, a small file
    run = _fake_run(tmp_path)
    (run / "metrics.json").write_text(json.dumps({f"m{i}": i for i in range(200)}))
    result = run_cli("report", run)
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert "metrics.json: left out (not a readable JSON object in the run)" in (run / "report.html").read_text()


def test_report_shows_control_and_bidi_characters_from_the_run_as_escapes(tmp_path: Path) -> None:
    run = _fake_run(tmp_path)
    record = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**record, "host": "evil\x1b[2J\u202egnp.exe"}))
    (run / "metrics.json").write_text(json.dumps({"acc\x1b[31m": 0.5, "loss": "\u202e1.0\x07"}))
    (run / "summary.txt").write_text("Model\r\n\tlayer\x1b]8;;http://x\x07\u2066\nend\r")
    result = run_cli("report", run)
    assert result.exit_code == 0, (result.stderr, result.exception)
    page = (run / "report.html").read_bytes().decode("utf-8")   # as written: no newline translation
    assert not any(c in page for c in "\x1b\x07\u202e\u2066"), [c for c in "\x1b\x07\u202e\u2066" if c in page]
    assert "evil\\x1b[2J\\u202egnp.exe" in page and "acc\\x1b[31m" in page and "\\u202e1.0\\x07" in page
    assert "<pre>Model\r\n\tlayer\\x1b]8;;http://x\\x07\\u2066\nend\\r</pre>" in page   # the lines stay lines
