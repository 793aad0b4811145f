"""The numbers a person reads before trusting a model: ROC and AUC, precision-recall and average precision,
calibration and its expected calibration error, a threshold table (classifiers), MAE/RMSE/R2 (regression).

Pure numpy, no TensorFlow. The ranking curves follow scikit-learn's definitions (every distinct score is a
threshold; ties move together; AUC by the trapezoid rule; average precision as the step sum
sum_n (R_n - R_{n-1}) P_n), so its functions are the reference in the tests. A value that is undefined on the
rows (AUC of a class with no positive or no negative example, R2 of a constant truth) is None, never nan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BINS = 10                                               # calibration: equal-width bins over [0, 1]
THRESHOLDS = tuple(round(0.1 * i, 1) for i in range(1, 10))   # the binary threshold table: 0.1 ... 0.9
MICRO = "micro-average"   # the name of the curve of all classes' rows together (several classes)
MAX_VALUES = 4_000_000   # a gathered sample holds at most this many numbers (rows x columns); beyond: sampled


@dataclass
class Curve:
    """One curve of a picture: its x and y points, its name and its area (AUC or average precision)."""

    name: str
    x: np.ndarray
    y: np.ndarray
    area: float | None


@dataclass
class Scores:
    """The numbers for eval-<split>.json (`numbers`) and the curves the pictures draw."""

    numbers: dict[str, Any]
    roc: list[Curve] = field(default_factory=list)
    precision_recall: list[Curve] = field(default_factory=list)


def _ranked(true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positives, true positives, threshold) at each distinct score, highest score first."""
    score = np.asarray(score, dtype=np.float64).ravel()
    true = np.asarray(true).ravel().astype(bool)
    order = np.argsort(score, kind="mergesort")[::-1]
    score, true = score[order], true[order]
    last = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]   # the last row of each run of equal scores
    tps = np.cumsum(true, dtype=np.float64)[last]
    return 1.0 + last - tps, tps, score[last]


def roc_curve(true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(false positive rate, true positive rate, thresholds) from (0, 0) up, as scikit-learn's roc_curve
    with drop_intermediate=False; None when the rows lack positives or negatives."""
    fps, tps, thresholds = _ranked(true, score)
    if len(tps) == 0 or tps[-1] == 0 or fps[-1] == 0:
        return None
    return np.r_[0.0, fps] / fps[-1], np.r_[0.0, tps] / tps[-1], np.r_[np.inf, thresholds]


def roc_auc(true: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve (trapezoids); None without both classes."""
    curve = roc_curve(true, score)
    return None if curve is None else _trapezoids(curve[0], curve[1])


def _trapezoids(x: np.ndarray, y: np.ndarray) -> float:
    """The area under the points (x, y) by the trapezoid rule (numpy 1.26 has no np.trapezoid)."""
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def precision_recall_curve(true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                           np.ndarray] | None:
    """(precision, recall, thresholds) as scikit-learn's precision_recall_curve: thresholds increasing, a last
    point (precision 1, recall 0); None when the rows hold no positive example."""
    fps, tps, thresholds = _ranked(true, score)
    if len(tps) == 0 or tps[-1] == 0:
        return None
    precision, recall = tps / (tps + fps), tps / tps[-1]
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thresholds[::-1]


def average_precision(true: np.ndarray, score: np.ndarray) -> float | None:
    """sum_n (R_n - R_{n-1}) P_n over the thresholds; None without a positive example."""
    curve = precision_recall_curve(true, score)
    return None if curve is None else _steps(curve[0], curve[1])


def _steps(precision: np.ndarray, recall: np.ndarray) -> float:
    """The step sum of a precision-recall curve (recall decreasing to its last point 0); never -0.0."""
    return float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))


def calibration(confidence: np.ndarray, observed: np.ndarray, bins: int = BINS) -> dict[str, Any]:
    """Reliability table and expected calibration error: bin i holds confidences in [i/bins, (i+1)/bins) (the
    last bin also 1.0); ECE = sum over bins of (rows in bin / rows) * |mean observed - mean confidence|."""
    confidence = np.asarray(confidence, dtype=np.float64).ravel()
    observed = np.asarray(observed, dtype=np.float64).ravel()
    edges = np.linspace(0.0, 1.0, bins + 1)
    ids = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, bins - 1)
    rows, ece = [], 0.0
    for i in range(bins):
        inside = ids == i
        count = int(inside.sum())
        mean_conf = float(confidence[inside].mean()) if count else None
        mean_obs = float(observed[inside].mean()) if count else None
        if count:
            ece += count / len(confidence) * abs(mean_obs - mean_conf)
        rows.append({"low": float(edges[i]), "high": float(edges[i + 1]), "count": count,
                     "confidence": mean_conf, "observed": mean_obs})
    return {"bins": bins, "ece": ece if len(confidence) else None, "table": rows}


def threshold_table(true: np.ndarray, p1: np.ndarray, thresholds: Sequence[float] = THRESHOLDS
                    ) -> list[dict[str, Any]]:
    """Precision, recall and F1 of class 1 when a row is called positive at p1 >= threshold (None: undefined)."""
    true = np.asarray(true).ravel().astype(bool)
    p1 = np.asarray(p1, dtype=np.float64).ravel()
    rows = []
    for threshold in thresholds:
        called = p1 >= threshold
        tp, fp, fn = int(np.sum(called & true)), int(np.sum(called & ~true)), int(np.sum(~called & true))
        precision = tp / (tp + fp) if tp + fp else None
        recall = tp / (tp + fn) if tp + fn else None
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
        rows.append({"threshold": threshold, "precision": precision, "recall": recall, "f1": f1,
                     "predicted_positive": tp + fp})
    return rows


def regression(true: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    """MAE and RMSE over all values; R2 per output column, averaged (scikit-learn's defaults); None where the
    truth is constant."""
    true = np.asarray(true, dtype=np.float64).reshape(len(true), -1)
    predicted = np.asarray(predicted, dtype=np.float64).reshape(len(predicted), -1)
    error = predicted - true
    total = np.sum((true - true.mean(axis=0)) ** 2, axis=0)
    r2 = None if np.any(total == 0) else float(np.mean(1.0 - np.sum(error ** 2, axis=0) / total))
    return {"mae": float(np.mean(np.abs(error))), "rmse": float(np.sqrt(np.mean(error ** 2))), "r2": r2}


def classifier(true: np.ndarray, probabilities: np.ndarray, names: Sequence[Any] | None = None) -> Scores:
    """Scores of class ids `true` against class probabilities (rows, classes): two classes are read as a binary
    model (class 1 the positive one, its probability the score), more as one-vs-rest per class."""
    true = np.asarray(true).ravel().astype(np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(len(true), -1)
    count = probabilities.shape[1]
    names = list(names) if names is not None and len(names) == count else list(range(count))
    if count == 2:
        return _binary(true, probabilities[:, 1], names[1])
    return _multiclass(true, probabilities, names)


def _binary(true: np.ndarray, p1: np.ndarray, positive: Any) -> Scores:
    positives = true == 1
    numbers = {"examples": len(true), "positive_class": positive, "roc_auc": roc_auc(positives, p1),
               "average_precision": average_precision(positives, p1),
               "calibration": {"of": "probability of the positive class", **calibration(p1, positives)},
               "thresholds": threshold_table(positives, p1)}
    return Scores(numbers, _roc_curves([(str(positive), positives, p1)]),
                  _pr_curves([(str(positive), positives, p1)]))


def _multiclass(true: np.ndarray, probabilities: np.ndarray, names: list[Any]) -> Scores:
    count = probabilities.shape[1]
    onehot = np.eye(count, dtype=bool)[true]
    per_class = [{"class": name, "roc_auc": roc_auc(onehot[:, i], probabilities[:, i]),
                  "average_precision": average_precision(onehot[:, i], probabilities[:, i]),
                  "support": int(onehot[:, i].sum())} for i, name in enumerate(names)]
    predicted = np.argmax(probabilities, axis=1)
    numbers = {"examples": len(true),
               "roc_auc_macro": _mean([c["roc_auc"] for c in per_class]),
               "roc_auc_micro": roc_auc(onehot.ravel(), probabilities.ravel()),
               "average_precision_macro": _mean([c["average_precision"] for c in per_class]),
               "average_precision_micro": average_precision(onehot.ravel(), probabilities.ravel()),
               "calibration": {"of": "probability of the predicted class (top label)",
                               **calibration(probabilities.max(axis=1), predicted == true)},
               "per_class": per_class}
    curves = [(str(name), onehot[:, i], probabilities[:, i]) for i, name in enumerate(names)]
    curves.append((MICRO, onehot.ravel(), probabilities.ravel()))
    return Scores(numbers, _roc_curves(curves), _pr_curves(curves))


def headline(numbers: dict[str, Any]) -> dict[str, float]:
    """The few numbers a person reads first (those that are numbers: a hand-edited file may hold anything)."""
    names = {"roc_auc": "ROC AUC", "average_precision": "average precision",
             "roc_auc_macro": "ROC AUC (one-vs-rest, macro)", "roc_auc_micro": "ROC AUC (micro)",
             "average_precision_macro": "average precision (macro)",
             "average_precision_micro": "average precision (micro)", "mae": "MAE", "rmse": "RMSE", "r2": "R2"}
    shown = {title: numbers.get(key) for key, title in names.items()}
    calibration = numbers.get("calibration")
    if isinstance(calibration, dict):
        shown[f"ECE ({calibration.get('bins')} bins)"] = calibration.get("ece")
    return {k: float(v) for k, v in shown.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _mean(values: list[float | None]) -> float | None:
    """The mean of the defined values (a class absent from the rows has no AUC and is left out)."""
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def _roc_curves(curves: list[tuple[str, np.ndarray, np.ndarray]]) -> list[Curve]:
    out = []
    for name, true, score in curves:
        curve = roc_curve(true, score)
        if curve is not None:
            out.append(Curve(name, curve[0], curve[1], _trapezoids(curve[0], curve[1])))
    return out


def _pr_curves(curves: list[tuple[str, np.ndarray, np.ndarray]]) -> list[Curve]:
    out = []
    for name, true, score in curves:
        curve = precision_recall_curve(true, score)
        if curve is not None:
            out.append(Curve(name, curve[1], curve[0], _steps(curve[0], curve[1])))
    return out


def finite_rows(*columns: np.ndarray) -> tuple[tuple[np.ndarray, ...], int]:
    """The rows whose values are all finite (a model's NaN or infinite outputs have no score), and how many were
    left out."""
    keep = np.ones(len(columns[0]), dtype=bool)
    for column in columns:
        column = np.asarray(column)
        keep &= np.isfinite(column.reshape(len(column), -1).astype(np.float64)).all(axis=1)
    return tuple(np.asarray(c)[keep] for c in columns), int((~keep).sum())


def regression_scores(true: np.ndarray, predicted: np.ndarray) -> Scores:
    """MAE/RMSE/R2 of a regression model's outputs (the pictures draw the values themselves)."""
    return Scores({"examples": len(true), **regression(true, predicted)})


class Sample:
    """Rows gathered batch by batch in bounded memory: every row while they fit in MAX_VALUES numbers, beyond
    that a uniform random sample of as many rows (seeded, so the same rows each time), in the order they came."""

    def __init__(self, max_values: int = MAX_VALUES, seed: int = 0) -> None:
        self.max_values = max_values
        self.seen = 0
        self.limit: int | None = None
        self._rng = np.random.default_rng(seed)
        self._parts: list[tuple[np.ndarray, tuple[np.ndarray, ...]]] = []   # (random keys, columns) per batch
        self._held = 0
        self._cut = np.inf   # once full, a row whose random key is above the kept ones' largest never enters

    def add(self, *columns: np.ndarray) -> None:
        """Offer the rows of one batch (each column's first axis is the rows)."""
        columns = tuple(np.asarray(c) for c in columns)
        n = len(columns[0])
        if self.limit is None:
            width = sum(int(np.prod(c.shape[1:])) for c in columns)
            self.limit = max(1000, self.max_values // max(1, width))
        keys = self._rng.random(n)
        self.seen += n
        keep = keys < self._cut
        self._parts.append((keys[keep], tuple(c[keep] for c in columns)))
        self._held += int(keep.sum())
        if self._held > 2 * self.limit:   # compact now and then: memory stays within twice the limit
            self._compact()

    @property
    def sampled(self) -> bool:
        """Whether more rows came than the sample holds."""
        return self.limit is not None and self.seen > self.limit

    def columns(self) -> tuple[np.ndarray, ...]:
        """The kept rows' columns (empty tuple when nothing came)."""
        if not self._parts:
            return ()
        self._compact()
        return self._parts[0][1]

    def _compact(self) -> None:
        keys = np.concatenate([p[0] for p in self._parts])
        columns = tuple(np.concatenate([p[1][i] for p in self._parts]) for i in range(len(self._parts[0][1])))
        if self.limit is not None and len(keys) > self.limit:   # the rows with the smallest keys: uniform
            keep = np.sort(np.argpartition(keys, self.limit - 1)[:self.limit])   # sorted: arrival order
            self._cut = float(keys[keep].max())
            keys, columns = keys[keep], tuple(c[keep] for c in columns)
        self._parts = [(keys, columns)]
        self._held = len(keys)
