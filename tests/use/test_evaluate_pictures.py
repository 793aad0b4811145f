"""`kcli evaluate`'s scores and pictures on trained runs: a binary classifier with class names, streamed, and an
in-memory regression; the numbers equal scikit-learn's on the model's own predictions, the pictures are
written, `kcli.api.evaluate` returns what the JSON holds and `kcli report` shows all of it, escaped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics

from kcli import api
from kcli.use import scores
from tests.conftest import run_cli, write_config
from tests.helpers import train_ok

PNG = b"\x89PNG\r\n\x1a\n"
NAMES = ("no", "yes <b>&")   # a class name is data: escaped in the report


def _csv(folder: Path, name: str, rows: int, seed: int, regression: bool) -> Path:
    """Three numeric features and a target: a class name (noisy x0 + x1 > 0) or a number (a noisy plane)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    signal = x[:, 0] + x[:, 1] + rng.normal(scale=0.7, size=rows)
    targets = [f"{v:.5f}" for v in 2 * x[:, 0] - x[:, 2] + rng.normal(scale=0.3, size=rows)] if regression \
        else [NAMES[int(v > 0)] for v in signal]
    lines = [f"{a:.5f},{b:.5f},{c:.5f},{t}" for (a, b, c), t in zip(x, targets)]
    (folder / name).write_text("f0,f1,f2,target\n" + "\n".join(lines) + "\n")
    return folder / name


def _run(folder: Path, regression: bool, extra: str) -> Path:
    for name, rows, seed in (("train.csv", 240, 0), ("val.csv", 60, 1), ("test.csv", 90, 2)):
        _csv(folder, name, rows, seed, regression)
    loss = "mse" if regression else "{BinaryCrossentropy: {from_logits: true}}"
    config = write_config(folder, f"""\
        seed: 4
        data: {{source: csv, path: train.csv, label: target, batch_size: 16, validation: {{path: val.csv}},
               test: {{path: test.csv}}{extra}}}
        model: {{layers: [{{Dense: {{units: 8, activation: relu}}}}, {{Dense: {{units: 1}}}}]}}
        compile: {{optimizer: adam, loss: {loss}, metrics: [{'mae' if regression else 'accuracy'}]}}
        fit: {{epochs: 2}}
        """)
    return train_ok(config, folder / "runs")


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("binary"), False, ", stream: true")   # streamed: scored batch by batch


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("regression"), True, "")


def _evaluated(run: Path) -> tuple[dict, str]:
    result = run_cli("evaluate", run)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads((run / "eval-test.json").read_text()), result.stdout


def _own_predictions(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """The test rows' targets (class ids or values) and the model's raw outputs, as `kcli predict` gives them."""
    test = run.parent.parent / "test.csv"
    targets = [line.rsplit(",", 1)[1] for line in test.read_text().splitlines()[1:]]
    outputs = api.predict(run, test)["outputs"].reshape(-1)   # float32, as evaluate sees them
    if targets[0] in NAMES:
        return np.array([NAMES.index(t) for t in targets]), outputs
    return np.array([float(t) for t in targets]), outputs.astype(np.float64)


def test_a_binary_classifier_gets_roc_pr_calibration_and_thresholds(binary_run: Path) -> None:
    written, shown = _evaluated(binary_run)
    true, logits = _own_predictions(binary_run)
    p1 = (1.0 / (1.0 + np.exp(-logits))).astype(np.float64)   # the sigmoid in float32, as kcli's head takes it
    got = written["scores"]
    assert got["examples"] == written["examples"] == 90 and got["positive_class"] == NAMES[1]
    assert got["roc_auc"] == pytest.approx(metrics.roc_auc_score(true, p1), abs=1e-6)
    assert got["average_precision"] == pytest.approx(metrics.average_precision_score(true, p1), abs=1e-6)
    assert 0.5 < got["roc_auc"] <= 1.0
    expected = scores.classifier(true, np.stack([1 - p1, p1], axis=1), NAMES).numbers
    assert got["calibration"]["ece"] == pytest.approx(expected["calibration"]["ece"], abs=1e-6)
    assert [r["count"] for r in got["calibration"]["table"]] == [r["count"] for r in expected["calibration"]["table"]]
    half = next(r for r in got["thresholds"] if r["threshold"] == 0.5)
    assert half["recall"] == pytest.approx(metrics.recall_score(true, p1 >= 0.5), abs=1e-12)
    assert half["f1"] == pytest.approx(metrics.f1_score(true, p1 >= 0.5), abs=1e-12)
    for kind in ("confusion", "roc", "pr", "calibration"):
        assert (binary_run / f"eval-test-{kind}.png").read_bytes().startswith(PNG), kind
    assert "Scores" in shown and f"{got['roc_auc']:.4f}" in shown and "written: " in shown
    assert {"loss", "accuracy", "confusion_matrix", "per_class"} <= set(written)   # the keys there were before


def test_a_regression_gets_mae_rmse_r2_and_its_pictures(regression_run: Path) -> None:
    written, shown = _evaluated(regression_run)
    true, predicted = _own_predictions(regression_run)
    got = written["scores"]
    assert got["mae"] == pytest.approx(metrics.mean_absolute_error(true, predicted), abs=1e-5)
    assert got["rmse"] == pytest.approx(np.sqrt(metrics.mean_squared_error(true, predicted)), abs=1e-5)
    assert got["r2"] == pytest.approx(metrics.r2_score(true, predicted), abs=1e-5)
    assert got["mae"] == pytest.approx(written["mae"], abs=1e-5)   # Keras's own mae metric agrees
    assert "confusion_matrix" not in written
    for kind in ("predicted", "residuals"):
        assert (regression_run / f"eval-test-{kind}.png").read_bytes().startswith(PNG), kind
    assert "RMSE" in shown and f"{got['r2']:.4f}" in shown


def test_the_api_returns_the_scores_the_file_holds(regression_run: Path, binary_run: Path) -> None:
    for run, metric in ((regression_run, "mae"), (binary_run, "accuracy")):
        result = api.evaluate(run)
        written = json.loads((run / "eval-test.json").read_text())
        assert result["scores"] == written["scores"] and set(result["metrics"]) == {"loss", metric}


def test_the_report_shows_every_score_and_picture_escaped(binary_run: Path, regression_run: Path) -> None:
    for run, pictures in ((binary_run, 5), (regression_run, 3)):   # + the training curves
        _evaluated(run)
        result = run_cli("report", run)
        assert result.exit_code == 0, result.stderr
        page = (run / "report.html").read_text()
        assert "Evaluation scores" in page and page.count("data:image/png;base64,") == pictures
    page = (binary_run / "report.html").read_text()
    got = json.loads((binary_run / "eval-test.json").read_text())["scores"]
    for part in ("ROC AUC", f"{got['roc_auc']:.4f}", "average precision", "ECE (10 bins)", "threshold", "f1",
                 "probability of the positive class", "10 equal-width bins"):
        assert part in page, part
    assert "positive class: yes &lt;b&gt;&amp;" in page and "yes <b>" not in page
    page = (regression_run / "report.html").read_text()
    assert "RMSE" in page and "R2" in page


def test_one_class_rows_draw_no_curves_and_say_so(binary_run: Path) -> None:
    folder = binary_run.parent.parent
    (folder / "only.csv").write_text("f0,f1,f2,target\n" + "".join(f"{i / 10},0.1,0.2,no\n" for i in range(6)))
    stale = binary_run / "eval-only-roc.png"
    stale.write_bytes(PNG)   # an earlier evaluation's picture must not stay beside the new numbers
    result = run_cli("evaluate", binary_run, "--data", folder / "only.csv")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.strip() == ("warning: no ROC or precision-recall curve on only: its rows hold only one "
                                     "class (a curve needs rows of the class and rows of others)")
    written = json.loads((binary_run / "eval-only.json").read_text())["scores"]
    assert written["roc_auc"] is None and written["average_precision"] is None
    assert not stale.exists() and not (binary_run / "eval-only-pr.png").exists()
    assert (binary_run / "eval-only-calibration.png").read_bytes().startswith(PNG)
