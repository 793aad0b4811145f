"""Nothing a received file says may act: kcli reads only regular files inside the folder (or run) named, never
through a link out of it, a link loop, a FIFO or a device; and what it reads is data (escaped in report.html)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli
from tests.helpers import assert_user_error

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
