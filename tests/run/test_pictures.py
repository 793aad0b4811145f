"""Pictures and pages of runs: history.png, evaluate's confusion matrix, `kcli plot`, `kcli compare`, and the
self-contained HTML of `kcli report` (opened in a real headless browser where one is installed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.conftest import run_cli
from tests.helpers import assert_user_error, tiny_project, train_ok

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("pictures")
    first = train_ok(tiny_project(folder, fit={"epochs": 3, "validation_freq": 2}), folder / "runs")
    second = train_ok(tiny_project(folder, fit={"epochs": 4}, compile={"optimizer": "sgd"}), folder / "runs")
    return first, second


def test_every_run_draws_its_history(two_runs: tuple[Path, Path]) -> None:
    import matplotlib.image

    for run in two_runs:
        assert (run / "history.png").read_bytes().startswith(PNG)
        height, width, _ = matplotlib.image.imread(run / "history.png").shape
        assert width > 600 and height > 200


def test_evaluate_writes_a_confusion_matrix_that_counts_right(two_runs: tuple[Path, Path]) -> None:
    run = two_runs[0]
    result = run_cli("evaluate", run)
    assert result.exit_code == 0, result.stderr
    assert "Per class" in result.stdout
    report = json.loads((run / "eval-test.json").read_text())
    with np.load(run.parent.parent / "test.npz") as npz:
        x, y = npz["x"].astype("float32"), npz["y"]
    logits = keras.models.load_model(run / "model.keras").predict(x, verbose=0)
    predicted = np.argmax(logits, axis=1)
    expected = np.zeros((3, 3), dtype=int)
    for t, p in zip(y, predicted):
        expected[t, p] += 1
    assert report["confusion_matrix"] == expected.tolist()
    recall = [row["recall"] for row in report["per_class"]]
    assert recall == [expected[i, i] / expected[i].sum() if expected[i].sum() else None for i in range(3)]
    assert (run / "eval-test-confusion.png").read_bytes().startswith(PNG)
    # three classes: one-vs-rest ROC AUC and average precision of the softmax, as scikit-learn counts them
    from sklearn.metrics import average_precision_score, roc_auc_score

    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    onehot = np.eye(3)[y]
    got = report["scores"]
    assert got["roc_auc_macro"] == pytest.approx(roc_auc_score(onehot, probs, average="macro"), abs=1e-5)
    assert got["roc_auc_micro"] == pytest.approx(roc_auc_score(onehot, probs, average="micro"), abs=1e-5)
    assert got["average_precision_macro"] == pytest.approx(average_precision_score(onehot, probs), abs=1e-5)
    assert got["calibration"]["of"] == "probability of the predicted class (top label)"
    for kind in ("roc", "pr", "calibration"):
        assert (run / f"eval-test-{kind}.png").read_bytes().startswith(PNG)


def test_plot_overlays_runs(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "both.png"
    result = run_cli("plot", *two_runs, "--metric", "val_accuracy", "--output", out)
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes().startswith(PNG)
    assert_user_error(run_cli("plot", *two_runs, "--metric", "val_acc"),
                      "--metric: no run logged 'val_acc' (did you mean 'val_accuracy'?)")
    assert_user_error(run_cli("plot", two_runs[0], "--output", tmp_path / "x.jpg"), "pictures are written as .png")


def test_compare_lists_config_and_number_differences(two_runs: tuple[Path, Path]) -> None:
    result = run_cli("compare", *two_runs)
    assert result.exit_code == 0, result.stderr
    assert "compile.optimizer" in result.stdout and "fit.epochs" in result.stdout
    test_a = json.loads((two_runs[0] / "metrics.json").read_text())["accuracy"]
    test_b = json.loads((two_runs[1] / "metrics.json").read_text())["accuracy"]
    line = next(line for line in result.stdout.splitlines() if "test accuracy" in line)
    assert f"{test_a:.4f}" in line and f"{test_b:.4f}" in line and f"{test_b - test_a:+.4f}" in line


def test_report_is_one_self_contained_page(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    run = two_runs[0]
    assert run_cli("evaluate", run).exit_code == 0
    result = run_cli("report", run)
    assert result.exit_code == 0, result.stderr
    page = (run / "report.html").read_text()
    for part in ("Curves", "Metrics", "Confusion matrices", "Evaluation scores", "Model summary",
                 "Config (config.yaml)", "Environment", "Artifacts", "model.keras", "data:image/png;base64,"):
        assert part in page, part
    assert "http://" not in page and "https://" not in page and "<script" not in page   # opens offline
    assert page.count("data:image/png;base64,") == 5   # the curves, the confusion matrix, ROC, PR, reliability

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no headless browser here (Debian: apt-get install chromium)")
    shot = tmp_path / "report.png"
    # the background-networking flags keep Chromium from reaching out (a closed network refuses it, slowly)
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                    "--disable-quic", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", f"--user-data-dir={tmp_path / 'chromium'}",
                    f"--screenshot={shot}", "--window-size=1200,1600", (run / "report.html").as_uri()],
                   capture_output=True, timeout=120, check=False)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (1600, 1200)
    assert len(np.unique(pixels.reshape(-1, pixels.shape[2]), axis=0)) > 50   # drawn, not a blank page
