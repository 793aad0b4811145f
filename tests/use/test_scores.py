"""kcli.use.scores against scikit-learn (the reference) and hand counts: ROC/AUC, precision-recall/AP,
calibration and ECE, the threshold table, MAE/RMSE/R2; ties, an absent class, a constant prediction."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics
from sklearn.calibration import calibration_curve

from kcli.use import scores

CASES = [   # (rows, classes, seed, how scores are made)
    (40, 2, 0, "random"), (57, 2, 1, "ties"), (30, 2, 2, "constant"), (64, 4, 3, "random"), (45, 3, 4, "ties"),
]


def _case(rows: int, classes: int, seed: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Class ids and class probabilities (rows sum to 1); ties: probabilities rounded to one decimal."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, classes, rows)
    logits = rng.normal(size=(rows, classes)) + 1.5 * np.eye(classes)[true]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    if kind == "ties":
        probs = np.round(probs, 1)
    if kind == "constant":
        probs = np.full((rows, classes), 1.0 / classes)
    return true, probs


@pytest.mark.parametrize("case", CASES)
def test_ranking_curves_and_areas_equal_scikit_learn(case: tuple[int, int, int, str]) -> None:
    true, probs = _case(*case)
    for c in range(probs.shape[1]):
        y, s = true == c, probs[:, c]
        fpr, tpr, thr = metrics.roc_curve(y, s, drop_intermediate=False)
        ours = scores.roc_curve(y, s)
        for a, b in zip(ours, (fpr, tpr, thr)):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
        assert scores.roc_auc(y, s) == pytest.approx(metrics.roc_auc_score(y, s), abs=1e-12)
        for a, b in zip(scores.precision_recall_curve(y, s), metrics.precision_recall_curve(y, s)):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
        assert scores.average_precision(y, s) == pytest.approx(metrics.average_precision_score(y, s), abs=1e-12)


def test_a_constant_prediction_has_auc_one_half_and_ap_the_positive_rate() -> None:
    true, probs = _case(30, 2, 2, "constant")
    assert scores.roc_auc(true == 1, probs[:, 1]) == 0.5
    assert scores.average_precision(true == 1, probs[:, 1]) == pytest.approx(np.mean(true == 1), abs=1e-12)


@pytest.mark.parametrize("case", [c for c in CASES if c[1] > 2])
def test_one_vs_rest_macro_and_micro_equal_scikit_learn(case: tuple[int, int, int, str]) -> None:
    true, probs = _case(*case)
    numbers = scores.classifier(true, probs, [f"c{i}" for i in range(probs.shape[1])]).numbers
    onehot = np.eye(probs.shape[1])[true]
    assert numbers["roc_auc_macro"] == pytest.approx(metrics.roc_auc_score(onehot, probs, average="macro"), abs=1e-12)
    if case[3] == "random":   # (sklearn's multiclass form wants rows summing to 1; rounded ties do not)
        assert numbers["roc_auc_macro"] == pytest.approx(
            metrics.roc_auc_score(true, probs, multi_class="ovr", average="macro"), abs=1e-12)
    assert numbers["roc_auc_micro"] == pytest.approx(
        metrics.roc_auc_score(onehot, probs, average="micro"), abs=1e-12)
    assert numbers["average_precision_macro"] == pytest.approx(
        metrics.average_precision_score(onehot, probs, average="macro"), abs=1e-12)
    assert numbers["average_precision_micro"] == pytest.approx(
        metrics.average_precision_score(onehot, probs, average="micro"), abs=1e-12)
    assert [c["class"] for c in numbers["per_class"]] == [f"c{i}" for i in range(probs.shape[1])]
    assert [c["support"] for c in numbers["per_class"]] == np.bincount(true, minlength=probs.shape[1]).tolist()


def test_a_class_absent_from_the_rows_has_no_area_and_the_macro_mean_skips_it() -> None:
    true, probs = _case(64, 4, 3, "random")
    true = np.where(true == 2, 0, true)   # class 2 never occurs
    numbers = scores.classifier(true, probs).numbers
    absent = numbers["per_class"][2]
    assert absent["roc_auc"] is None and absent["average_precision"] is None and absent["support"] == 0
    present = [0, 1, 3]
    expected = np.mean([metrics.roc_auc_score(true == c, probs[:, c]) for c in present])
    assert numbers["roc_auc_macro"] == pytest.approx(expected, abs=1e-12)
    expected = np.mean([metrics.average_precision_score(true == c, probs[:, c]) for c in present])
    assert numbers["average_precision_macro"] == pytest.approx(expected, abs=1e-12)
    onehot = np.eye(4)[true]
    assert numbers["roc_auc_micro"] == pytest.approx(metrics.roc_auc_score(onehot.ravel(), probs.ravel()),
                                                     abs=1e-12)
    binary = scores.classifier(np.zeros(10, int), np.full((10, 2), 0.5)).numbers   # no positive example
    assert binary["roc_auc"] is None and binary["average_precision"] is None


def _ece_by_hand(confidence: np.ndarray, observed: np.ndarray, bins: int = 10) -> tuple[float, list[int]]:
    """Each row into the bin whose [low, high) holds it (1.0 into the last), then the weighted gaps."""
    edges = np.linspace(0, 1, bins + 1)
    members: list[list[int]] = [[] for _ in range(bins)]
    for row, p in enumerate(confidence):
        i = next((i for i in range(bins) if edges[i] <= p < edges[i + 1]), bins - 1)
        members[i].append(row)
    ece = sum(len(m) / len(confidence) * abs(np.mean(observed[m]) - np.mean(confidence[m])) for m in members if m)
    return ece, [len(m) for m in members]


@pytest.mark.parametrize("case", CASES)
def test_calibration_bins_and_ece_by_hand(case: tuple[int, int, int, str]) -> None:
    true, probs = _case(*case)
    numbers = scores.classifier(true, probs).numbers
    if probs.shape[1] == 2:   # the positive class: probability of class 1 against how often it is class 1
        confidence, observed = probs[:, 1], (true == 1).astype(float)
    else:                     # the top label: the predicted class's probability against whether it is right
        confidence, observed = probs.max(axis=1), (probs.argmax(axis=1) == true).astype(float)
    ece, counts = _ece_by_hand(confidence, observed)
    assert numbers["calibration"]["ece"] == pytest.approx(ece, abs=1e-12)
    assert [row["count"] for row in numbers["calibration"]["table"]] == counts
    if probs.shape[1] == 2:
        fraction, mean = calibration_curve(observed, confidence, n_bins=10)   # the same bins off the edges
        table = [row for row in numbers["calibration"]["table"] if row["count"]]
        if case[3] == "random":
            np.testing.assert_allclose([r["observed"] for r in table], fraction, atol=1e-12)
            np.testing.assert_allclose([r["confidence"] for r in table], mean, atol=1e-12)


def test_calibration_puts_edges_and_one_into_the_right_bins() -> None:
    table = scores.calibration(np.array([0.0, 0.1, 0.5, 0.9999, 1.0]), np.array([0, 1, 1, 1, 1]))["table"]
    assert [row["count"] for row in table] == [1, 1, 0, 0, 0, 1, 0, 0, 0, 2]
    assert scores.calibration(np.array([0.95, 0.95]), np.array([1.0, 0.0]))["ece"] == pytest.approx(0.45)


@pytest.mark.parametrize("case", [c for c in CASES if c[1] == 2])
def test_threshold_table_equals_scikit_learn(case: tuple[int, int, int, str]) -> None:
    true, probs = _case(*case)
    table = scores.classifier(true, probs).numbers["thresholds"]
    assert [row["threshold"] for row in table] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    for row in table:
        called = probs[:, 1] >= row["threshold"]
        assert row["predicted_positive"] == int(called.sum())
        if called.any():
            assert row["precision"] == pytest.approx(metrics.precision_score(true, called), abs=1e-12)
        else:
            assert row["precision"] is None
        assert row["recall"] == pytest.approx(metrics.recall_score(true, called), abs=1e-12)
        assert row["f1"] == pytest.approx(metrics.f1_score(true, called, zero_division=0.0), abs=1e-12)


@pytest.mark.parametrize("columns", [1, 3])
def test_regression_numbers_equal_scikit_learn(columns: int) -> None:
    rng = np.random.default_rng(columns)
    true = rng.normal(size=(50, columns))
    predicted = true + rng.normal(scale=0.3, size=true.shape)
    predicted[:5] = predicted[5]   # ties
    got = scores.regression(true, predicted)
    assert got["mae"] == pytest.approx(metrics.mean_absolute_error(true, predicted), abs=1e-12)
    assert got["rmse"] == pytest.approx(np.sqrt(metrics.mean_squared_error(true, predicted)), abs=1e-12)
    assert got["r2"] == pytest.approx(metrics.r2_score(true, predicted), abs=1e-12)
    constant = scores.regression(true, np.full_like(true, 0.25))   # a constant prediction
    assert constant["r2"] == pytest.approx(metrics.r2_score(true, np.full_like(true, 0.25)), abs=1e-12)
    assert scores.regression(np.ones(4), np.arange(4.0))["r2"] is None   # a constant truth: R2 undefined


def test_a_sample_keeps_every_row_until_full_then_a_uniform_seeded_subset_in_order() -> None:
    small = scores.Sample(max_values=10_000)
    for start in range(0, 300, 32):
        rows = np.arange(start, min(start + 32, 300))
        small.add(rows, rows * 2.0)
    assert not small.sampled and small.columns()[0].tolist() == list(range(300))
    picks = []
    for seed in (0, 0, 1):
        big = scores.Sample(max_values=2_000, seed=seed)   # 2 numbers a row: 1000 rows kept
        for start in range(0, 50_000, 100):
            rows = np.arange(start, start + 100)
            big.add(rows, rows * 2.0)
        kept, doubled = big.columns()
        assert big.sampled and big.seen == 50_000 and len(kept) == big.limit == 1000
        assert np.all(np.diff(kept) > 0) and np.array_equal(doubled, kept * 2.0)
        assert 20_000 < kept.mean() < 30_000   # spread over all rows, not the first ones
        picks.append(kept)
    assert np.array_equal(picks[0], picks[1]) and not np.array_equal(picks[0], picks[2])


def test_rows_with_nan_or_infinite_outputs_are_left_out_of_the_scores() -> None:
    true = np.array([0, 1, 0, 1, 1, 0])
    probabilities = np.array([[0.8, 0.2], [np.nan, np.nan], [0.6, 0.4], [0.1, 0.9], [np.inf, 0.0], [0.3, 0.7]])
    (kept_true, kept), dropped = scores.finite_rows(true, probabilities)
    assert dropped == 2 and kept_true.tolist() == [0, 0, 1, 0]
    numbers = scores.classifier(kept_true, kept).numbers
    assert numbers["roc_auc"] == pytest.approx(metrics.roc_auc_score(kept_true, kept[:, 1]), abs=1e-12)
    assert np.isfinite(numbers["calibration"]["ece"])   # NaN rows made the ECE NaN (and eval json invalid JSON)
