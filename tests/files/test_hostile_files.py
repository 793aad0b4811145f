"""Nothing a received file says may act: kcli reads only regular files inside the folder (or run) named, never
through a link out of it, a link loop, a FIFO or a device; and what it reads is data (escaped in report.html)."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli
from tests.helpers import assert_user_error, tiny_project, train_ok

HOSTILE = ("<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "'><svg onload=alert(1)>")
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


def fake_run(folder: Path, **files: str | bytes) -> Path:
    """A completed run directory without TensorFlow: run.json plus the given files."""
    run = folder / "runs" / "fake-20260101-000000"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"name": "fake", "status": "completed", "host": HOSTILE[1],
                                              "versions": {"kcli": HOSTILE[2]}}))
    for name, content in files.items():
        path = run / name.replace("__", "-").replace("_DOT_", ".")
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    return run


def report_page(run: Path) -> str:
    """`kcli report RUN` must succeed; the page it wrote."""
    result = run_cli("report", run)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return (run / "report.html").read_text()


# ---- report.html: everything from the run's files is escaped ----

def test_report_escapes_class_names_and_values_from_the_run(tmp_path: Path) -> None:
    evaluation = {"loss": 0.5, HOSTILE[0]: HOSTILE[1], "confusion_matrix": [[1, 0], [0, 1]],
                  "per_class": [{"class": name, "precision": HOSTILE[2], "recall": 1.0, "support": HOSTILE[0]}
                                for name in HOSTILE]}
    run = fake_run(tmp_path, **{"eval__<b>x_DOT_json": json.dumps(evaluation), "summary_DOT_txt": HOSTILE[0]})
    page = report_page(run)
    for text in HOSTILE:
        assert text not in page
    assert "<script" not in page and "<img src=x" not in page and "<svg" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"confusion_matrix": [[1]], "per_class": 3}',
                                     '{"confusion_matrix": [[1]], "per_class": [1, "a", null]}',
                                     '{"confusion_matrix": [[1]], "per_class": [{"class": "a"}]}', "\xff\xfe"])
def test_report_of_a_damaged_evaluation_says_so_in_the_page(tmp_path: Path, content: str) -> None:
    run = fake_run(tmp_path, **{"eval__test_DOT_json": content})
    page = report_page(run)
    assert "eval-test" in page


@pytest.mark.parametrize(("name", "content"), [("history.json", '[{"loss": 1.0}]'), ("history.json", '{"epoch": 1}'),
                                               ("metrics.json", "[1]"), ("run.json", '{"versions": [1, 2]}')])
def test_report_of_a_damaged_history_metrics_or_record_is_still_written(tmp_path: Path, name: str,
                                                                          content: str) -> None:
    run = fake_run(tmp_path)
    (run / name).write_text(content if name != "run.json" else json.dumps({"status": "completed",
                                                                           **json.loads(content)}))
    report_page(run)


# ---- report: only regular files inside the run ----

def test_report_does_not_follow_links_out_of_the_run(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-LINE")
    picture = tmp_path / "private.png"
    picture.write_bytes(PNG + b"PRIVATE-PICTURE")
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "big.bin").write_bytes(b"x" * 5000)
    run = fake_run(tmp_path)
    (run / "summary.txt").symlink_to(secret)
    (run / "config.yaml").symlink_to(secret)
    (run / "history.png").symlink_to(picture)
    (run / "eval-test.json").symlink_to(secret)
    (run / "export").symlink_to(outside)
    (run / "loop.json").symlink_to(run / "loop.json")
    page = report_page(run)
    assert "TOP-SECRET-LINE" not in page
    assert "data:image/png" not in page   # the picture outside the run is not embedded
    assert "export (a link, not followed)" in page and "4.9 KiB" not in page


def test_report_does_not_wait_for_a_fifo_in_the_run(tmp_path: Path) -> None:
    run = fake_run(tmp_path)
    for name in ("summary.txt", "config.yaml", "history.png", "history.json", "eval-test.json", "metrics.json"):
        os.mkfifo(run / name)
    result = subprocess.run([sys.executable, "-m", "kcli", "report", str(run)], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    page = (run / "report.html").read_text()
    assert "summary.txt (not a regular file)" in page


def test_a_run_json_linked_from_outside_the_run_is_one_line(tmp_path: Path) -> None:
    elsewhere = fake_run(tmp_path / "elsewhere")
    run = tmp_path / "x"
    run.mkdir()
    (run / "run.json").symlink_to(elsewhere / "run.json")
    assert_user_error(run_cli("report", run), "run.json leads out of")
    assert not (run / "report.html").exists()


# ---- one rule for every folder walk: image classes, table folders and globs, init --data ----

def png(path: Path) -> Path:
    """A valid 8x8 RGB PNG."""
    raw = b"".join(b"\0" + bytes((x * 40 + y * 7) % 256 for x in range(8) for _ in range(3)) for y in range(8))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(PNG[:8] + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


def image_folder(folder: Path, classes: tuple[str, ...] = ("cat", "dog")) -> Path:
    """folder/imgs/<class>/{0,1,2}.png."""
    for name in classes:
        (folder / "imgs" / name).mkdir(parents=True, exist_ok=True)
        for i in range(3):
            png(folder / "imgs" / name / f"{i}.png")
    return folder / "imgs"


IMAGES_CONFIG = """\
name: p
seed: 1
data: {source: images, path: imgs, image_size: [8, 8], batch_size: 4, validation_split: 0.25}
model: {input_shape: [8, 8, 3], layers: [Flatten, {Dense: {units: 2}}]}
compile: {optimizer: adam, loss: {SparseCategoricalCrossentropy: {from_logits: true}}}
fit: {epochs: 1}
"""


def table_config(folder: Path, path: str, stream: bool = False) -> Path:
    """A table config (one input per column, label y) reading `path`."""
    config = folder / "table.yaml"
    config.write_text(f"name: t\nseed: 1\ndata: {{source: csv, path: {json.dumps(path)}, label: y, batch_size: 8, "
                      f"stream: {str(stream).lower()}}}\nmodel: {{layers: [{{Dense: {{units: 2}}}}]}}\n"
                      "compile: {optimizer: adam, loss: {SparseCategoricalCrossentropy: {from_logits: true}}}\n"
                      "fit: {epochs: 1}\n")
    return config


def table(path: Path, rows: int = 24) -> Path:
    path.write_text("a,b,y\n" + "".join(f"{i % 7},{i * 3 % 5},{i % 2}\n" for i in range(rows)))
    return path


def test_an_image_class_folder_linked_out_of_the_data_folder_is_refused(tmp_path: Path) -> None:
    image_folder(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    png(elsewhere / "private.png")
    (tmp_path / "imgs" / "zebra").symlink_to(elsewhere)
    (tmp_path / "c.yaml").write_text(IMAGES_CONFIG)
    runs = tmp_path / "runs"
    assert_user_error(run_cli("train", tmp_path / "c.yaml", "--runs-dir", runs), "imgs/zebra leads out of")
    assert not runs.exists() or not any(runs.iterdir())
    assert_user_error(run_cli("init", "--data", tmp_path / "imgs", "--output", tmp_path / "x.yaml"),
                      "imgs/zebra leads out of")
    assert not (tmp_path / "x.yaml").exists()


def test_an_image_class_folder_that_links_to_its_own_folder_is_a_loop(tmp_path: Path) -> None:
    folder = image_folder(tmp_path)
    (folder / "again").symlink_to(folder)
    (folder / "notes.txt").symlink_to(tmp_path / "c.yaml")   # a file beside the classes is never read: no matter
    result = run_cli("init", "--data", folder, "--output", tmp_path / "x.yaml")
    assert_user_error(result, "imgs/again is a link to its own folder")
    (folder / "again").unlink()
    assert run_cli("init", "--data", folder, "--output", tmp_path / "x.yaml").exit_code == 0


@pytest.mark.parametrize("kind", ["link out", "loop", "fifo"])
def test_an_image_that_is_not_a_regular_file_inside_the_folder_is_one_line(tmp_path: Path, kind: str) -> None:
    image_folder(tmp_path)
    bad = tmp_path / "imgs" / "cat" / "bad.png"
    if kind == "link out":
        bad.symlink_to(png(tmp_path / "private.png"))
    elif kind == "loop":
        bad.symlink_to(bad)
    else:
        os.mkfifo(bad)
    expected = {"link out": "leads out of", "loop": "is a symbolic link loop", "fifo": "is not a regular file (a FIFO)"}
    result = run_cli("init", "--data", tmp_path / "imgs", "--output", tmp_path / "x.yaml")   # no TensorFlow
    assert_user_error(result, f"cat/bad.png {expected[kind]}")


def test_table_folders_and_globs_refuse_links_out_and_never_walk_through_links(tmp_path: Path) -> None:
    from kcli.data.table_files import table_files
    from kcli.errors import DataError

    shards = tmp_path / "shards"
    (shards / "deep").mkdir(parents=True)
    table(shards / "a.csv")
    table(shards / "deep" / "b.csv")
    (shards / "up").symlink_to(tmp_path)           # a loop for `**`, and a way out of the folder (like `-> /`)
    table(tmp_path / "outside.csv")
    found = table_files(f"{shards}/**/*.csv", "csv", "data")
    assert found == [shards / "a.csv", shards / "deep" / "b.csv"]
    (shards / "c.csv").symlink_to(tmp_path / "outside.csv")
    for path in (str(shards), f"{shards}/*.csv", f"{shards}/**/*.csv"):
        with pytest.raises(DataError, match="c.csv leads out of"):
            table_files(path, "csv", "data")


def test_a_table_folder_with_a_link_out_is_refused_by_train(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    table(tmp_path / "t" / "a.csv")
    (tmp_path / "t" / "b.csv").symlink_to(table(tmp_path / "outside.csv"))
    result = run_cli("train", table_config(tmp_path, "t"), "--runs-dir", tmp_path / "runs")
    assert_user_error(result, "data.path: ")
    assert "t/b.csv leads out of" in result.stderr


# ---- only regular files are read: FIFOs, devices, link loops, names that are not UTF-8 ----

def kcli_process(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`kcli ARGS` in its own process, stopped after 180 s: a read that blocks fails the test, not the suite."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "kcli", *map(str, args)], capture_output=True, text=True,
                          timeout=180, cwd=cwd, env=env)


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@contextlib.contextmanager
def never_opened(*fifos: Path) -> Iterator[None]:
    """FIFOs that kcli, run in this process meanwhile, must not open: a watcher opens each for writing every 20 ms,
    which succeeds only while a reader has it open (and releases a reader that would wait forever), so an open
    fails the test instead of hanging the suite (a FIFO in a process of its own cost a TensorFlow start)."""
    opened: list[Path] = []
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.02):
            for fifo in fifos:
                try:
                    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)   # ENXIO: no reader has it open
                except OSError:
                    continue
                if stat.S_ISFIFO(os.fstat(fd).st_mode):
                    opened.append(fifo)
                os.close(fd)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
    assert not opened, f"opened: {sorted(set(opened))}"


def test_a_fifo_as_data_path_is_one_line_and_never_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    os.mkfifo(tmp_path / "x.csv")
    monkeypatch.chdir(tmp_path)
    with never_opened(tmp_path / "x.csv"):
        for stream in (True, False):
            result = run_cli("train", table_config(tmp_path, "x.csv", stream), "--runs-dir", "runs")
            line = assert_user_error(result, "data.path: ")
            assert line.endswith(f"data.path: {tmp_path}/x.csv is not a regular file (a FIFO)"), line
        line = assert_user_error(run_cli("init", "--data", "x.csv", "--label", "y"), "--data: ")
        assert line == "error: --data: x.csv is not a regular file (a FIFO)"


def test_evaluate_does_not_read_devices_or_fifos_a_received_run_json_names(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny_project(tmp_path, fit={"epochs": 1})
    run = train_ok(config, tmp_path / "runs")
    os.mkfifo(tmp_path / "pipe.npz")
    record = json.loads((run / "run.json").read_text())
    record["data_files"].update({"/dev/zero": {"sha256": "0" * 64}, str(tmp_path / "pipe.npz"): {"sha256": "1"}})
    (run / "run.json").write_text(json.dumps(record))
    result = kcli_process("evaluate", run, cwd=tmp_path)   # its own process: reading /dev/zero would never end
    assert result.returncode == 0, result.stderr
    assert "/dev/zero" in result.stderr and "changed since training" in result.stderr
    (run / "model.keras").unlink()
    os.mkfifo(run / "model.keras")   # not opened: the model is rebuilt from config.yaml and model.weights.h5
    monkeypatch.chdir(tmp_path)
    with never_opened(tmp_path / "pipe.npz", run / "model.keras"):   # /dev/zero is not read: said above
        result = run_cli("evaluate", run)
        assert result.exit_code == 0, result.stderr
    (tmp_path / "runs" / "other").mkdir()
    os.mkfifo(tmp_path / "runs" / "other" / "run.json")
    result = kcli_process("runs", "--runs-dir", "runs", cwd=tmp_path)
    assert result.returncode == 0 and run.name in result.stdout, result.stderr


@pytest.mark.parametrize("source", ["npz", "table"])
def test_a_symlink_loop_as_data_path_is_one_line(tmp_path: Path, source: str) -> None:
    (tmp_path / "loop.data").symlink_to(tmp_path / "loop.data")
    if source == "npz":
        config = tiny_project(tmp_path, data={"path": "loop.data"})
    else:
        config = table_config(tmp_path, "loop.data")
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    assert_user_error(result, "data.path: ")
    assert "loop.data is a symbolic link loop" in result.stderr


def test_file_names_that_are_not_utf8_are_one_line(tmp_path: Path) -> None:
    folder = image_folder(tmp_path)
    png(Path(os.fsdecode(os.fsencode(folder / "cat") + b"/\xff.png")))
    (tmp_path / "c.yaml").write_text(IMAGES_CONFIG)
    result = run_cli("train", tmp_path / "c.yaml", "--runs-dir", tmp_path / "runs")
    assert_user_error(result, "cat/\\xff.png has a name that is not UTF-8 text; rename it")
    assert_user_error(run_cli("init", "--data", folder, "--output", tmp_path / "x.yaml"), "\\xff.png has a name")
    (tmp_path / "t").mkdir()
    table(tmp_path / "t" / "a.csv")
    table(Path(os.fsdecode(os.fsencode(tmp_path / "t") + b"/\xfe.csv")))
    result = run_cli("train", table_config(tmp_path, "t"), "--runs-dir", tmp_path / "runs")
    assert_user_error(result, "t/\\xfe.csv has a name that is not UTF-8 text")


def test_a_data_file_whose_name_looks_like_a_glob_is_that_file(tmp_path: Path) -> None:
    """`x[1].csv` that exists is the file (it was read as a glob matching `x1.csv` and said "no file matches");
    a path that exists nowhere with * ? [ is still a glob."""
    from kcli.data.table_files import table_files
    from kcli.files import readable

    named = tmp_path / "x[1].csv"
    named.write_text("a,label\n1,0\n")
    (tmp_path / "part-1.csv").write_text("a,label\n2,1\n")
    assert not readable.is_pattern(str(named)) and readable.is_pattern(str(tmp_path / "part-*.csv"))
    assert table_files(str(named), "csv", "data.path") == [named]
    assert table_files(str(tmp_path / "part-*.csv"), "csv", "data.path") == [tmp_path / "part-1.csv"]
