"""Pictures as PNG files anyone can open: a run's history.png, `kcli plot` overlays, and evaluate's confusion
matrices, ROC and precision-recall curves, reliability diagrams and regression plots.

matplotlib draws them (its Agg backend, no display needed). Importing it takes ~0.5 s, so `kcli train` starts
that import on a background thread when training starts (`warm_up`) and draws at the end.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kcli.files import atomic

HISTORY_PNG = "history.png"
MAX_POINTS = 20_000   # points one curve or scatter draws (more look the same and slow the file down)
_warm: threading.Thread | None = None


def warm_up() -> None:
    """Import matplotlib on a background thread (training releases the GIL most of the time)."""
    global _warm
    if _warm is None:
        _warm = threading.Thread(target=_import, daemon=True)
        _warm.start()


def _import() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure


def _figure(width: float, height: float) -> Any:
    if _warm is not None:
        _warm.join()
    return _import()(figsize=(width, height), dpi=100)


def metric_names(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The logged values of a history, validation ones folded into their training name (loss, accuracy, ...)."""
    names = dict.fromkeys(k.removeprefix("val_") for row in rows for k in row if k != "epoch")
    return [n for n in names if n != "learning_rate"] + (["learning_rate"] if "learning_rate" in names else [])


def history(rows: Sequence[Mapping[str, Any]], path: Path, title: str) -> None:
    """One panel per value: the training curve, and validation points on the epochs where it ran."""
    names = metric_names(rows)
    if not rows or not names:
        return
    cols = min(len(names), 3)
    lines = (len(names) + cols - 1) // cols
    fig = _figure(4.2 * cols, 3.2 * lines)
    for i, name in enumerate(names):
        ax = fig.add_subplot(lines, cols, i + 1)
        for key, style, label in ((name, "-", "train"), (f"val_{name}", "o-", "validation")):
            points = [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]
            if points:
                epochs, values = zip(*points)
                ax.plot(epochs, values, style, markersize=3, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if any(r.get(f"val_{name}") is not None for r in rows):
            ax.legend()
    fig.suptitle(_wrap(title, 4.2 * cols))
    _save(fig, path)


def overlay(series: Mapping[str, Sequence[tuple[int, float]]], metric: str, path: Path, title: str) -> None:
    """Several runs' curves of one value in one panel."""
    fig = _figure(7, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    for label, points in series.items():
        if points:
            epochs, values = zip(*points)
            ax.plot(epochs, values, "o-" if len(points) < 30 else "-", markersize=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    _save(fig, path)


def sweep(values: Sequence[tuple[int, float | None]], params: Mapping[str, Sequence[tuple[Any, float]]],
          metric: str, path: Path, title: str, log: Sequence[str] = ()) -> None:
    """A sweep: the metric per trial, and each parameter against the metric."""
    panels = 1 + len(params)
    cols = min(panels, 3)
    lines = (panels + cols - 1) // cols
    fig = _figure(4.2 * cols, 3.4 * lines)
    ax = fig.add_subplot(lines, cols, 1)
    done = [(n, v) for n, v in values if v is not None]
    if done:
        ax.plot(*zip(*done), "o")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    for i, (key, points) in enumerate(params.items()):
        ax = fig.add_subplot(lines, cols, i + 2)
        xs = [p for p, _ in points]
        if xs and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs):
            ax.plot(xs, [v for _, v in points], "o")
            if key in log:
                ax.set_xscale("log")
        else:
            labels = sorted({str(x) for x in xs})
            ax.plot([labels.index(str(x)) for x in xs], [v for _, v in points], "o")
            ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel(key, fontsize="small")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    _save(fig, path)


def confusion(matrix: np.ndarray, path: Path, title: str, names: Sequence[Any] | None = None) -> None:
    """Counts with true classes as rows and predicted classes as columns, each cell labelled; the classes are
    named as the data names them (`names`, by class id) where the run learned names, else their ids."""
    n = len(matrix)
    labels = [_short(str(c)) for c in names] if names and len(names) == n else [str(i) for i in range(n)]
    longest = max(len(label) for label in labels)
    size = max(4.0, min(12.0, 0.45 * n + 2.5)) + min(2.0, 0.08 * longest)   # room for the names beside the cells
    fig = _figure(size, size)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    style = {"fontsize": "small"} if n > 10 else {}
    turn = {"rotation": 45, "ha": "right", "rotation_mode": "anchor"} if longest > 3 else {}
    ax.set_xticks(range(n), labels, **style, **turn)
    ax.set_yticks(range(n), labels, **style)
    if n <= 30:
        top = matrix.max() or 1
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(j, i, str(count), ha="center", va="center", fontsize="small",
                    color="white" if count > top / 2 else "black")
    fig.suptitle(_wrap(title, size))   # centred on the figure: the axes sit right of the names
    _save(fig, path)


def _short(name: str, most: int = 24) -> str:
    """A class name short enough for a tick label (the full names are in eval-<split>.json)."""
    return name if len(name) <= most else name[:most - 1] + "\u2026"


def _wrap(title: str, inches: float, points: float = 14.4) -> str:
    """A title broken into lines that fit `inches` at the title's font size (a long run name would otherwise
    be cut off on both sides): at most 0.7 em per character (DejaVu Sans), breaking at spaces and hyphens first."""
    import textwrap

    chars = max(10, int(inches * 72 * 0.9 / (points * 0.7)))
    return textwrap.fill(title, width=chars, break_long_words=True, break_on_hyphens=True)


Curve = tuple[str, np.ndarray, np.ndarray, float | None]   # (name, x, y, area) of one curve


def roc(curves: Sequence[Curve], path: Path, title: str) -> None:
    """ROC curves (true against false positive rate), each named with its AUC, over the chance diagonal."""
    _curves(curves, path, title, ("false positive rate", "true positive rate"), "AUC", diagonal=True)


def precision_recall(curves: Sequence[Curve], path: Path, title: str) -> None:
    """Precision-recall curves, each named with its average precision."""
    _curves(curves, path, title, ("recall", "precision"), "AP", diagonal=False)


def _curves(curves: Sequence[Curve], path: Path, title: str, axes: tuple[str, str], area: str,
            diagonal: bool) -> None:
    fig = _figure(6, 5)
    ax = fig.add_subplot(1, 1, 1)
    if diagonal:
        ax.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    for i, (name, x, y, value) in enumerate(curves):
        keep = _thin(len(x))
        label = f"{name} ({area} {value:.3f})" if value is not None else name
        ax.plot(np.asarray(x)[keep], np.asarray(y)[keep], drawstyle="steps-post" if not diagonal else "default",
                color=f"C{i % 10}", linestyle=("-", "--")[i // 10 % 2], label=label)   # 10 colours, then dashed
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(title, fontsize="medium")
    _save(fig, path)


def reliability(table: Sequence[Mapping[str, Any]], ece: float | None, path: Path, title: str,
                what: str) -> None:
    """A reliability diagram: per bin the observed rate against the mean predicted probability (on the
    diagonal when calibrated), and below it how many rows each bin holds."""
    fig = _figure(6, 6)
    ax = fig.add_axes((0.13, 0.36, 0.82, 0.56))
    filled = [row for row in table if row.get("count")]
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfectly calibrated")
    ax.plot([r["confidence"] for r in filled], [r["observed"] for r in filled], "o-", label="model")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("observed rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper left")
    ax.set_title(f"{title}\nECE {ece:.4f}" if ece is not None else title, fontsize="medium")
    counts = fig.add_axes((0.13, 0.08, 0.82, 0.2), sharex=ax)
    counts.bar([(r["low"] + r["high"]) / 2 for r in table], [r["count"] for r in table],
               width=[0.9 * (r["high"] - r["low"]) for r in table], color="grey")
    counts.set_xlabel(what)
    counts.set_ylabel("rows")
    with atomic.target(path, replace=True) as tmp:   # the axes are placed by hand: no tight_layout
        _no_math(fig)
        fig.savefig(tmp, format="png")


def predicted_vs_true(true: np.ndarray, predicted: np.ndarray, path: Path, title: str) -> None:
    """Each row's prediction against its true value, over the diagonal where they agree."""
    true, predicted = np.ravel(true), np.ravel(predicted)
    keep = _thin(len(true))
    fig = _figure(5.5, 5.5)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(true[keep], predicted[keep], ".", markersize=3, alpha=0.5)
    low, high = float(min(true.min(), predicted.min())), float(max(true.max(), predicted.max()))
    ax.plot([low, high], [low, high], ":", color="grey")
    ax.set_xlabel("true value")
    ax.set_ylabel("predicted value")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize="medium")
    _save(fig, path)


def residuals(true: np.ndarray, predicted: np.ndarray, path: Path, title: str) -> None:
    """Residuals (predicted - true) against the prediction, and their histogram."""
    true, predicted = np.ravel(true), np.ravel(predicted)
    error = predicted - true
    keep = _thin(len(true))
    fig = _figure(10, 4.2)
    ax = fig.add_subplot(1, 2, 1)
    ax.plot(predicted[keep], error[keep], ".", markersize=3, alpha=0.5)
    ax.axhline(0, linestyle=":", color="grey")
    ax.set_xlabel("predicted value")
    ax.set_ylabel("residual (predicted - true)")
    ax.grid(alpha=0.3)
    hist = fig.add_subplot(1, 2, 2)
    hist.hist(error, bins=40, color="grey")
    hist.set_xlabel("residual (predicted - true)")
    hist.set_ylabel("rows")
    fig.suptitle(title, fontsize="medium")
    _save(fig, path)


def _thin(count: int) -> np.ndarray:
    """Indices of at most MAX_POINTS points spread evenly over `count`, the first and last included."""
    return np.unique(np.linspace(0, count - 1, min(count, MAX_POINTS)).round().astype(np.int64))


def _no_math(fig: Any) -> None:
    from matplotlib.text import Text

    for label in fig.findobj(Text):   # titles and legends quote names from data: `$x$` is text, not mathtext
        label.set_parse_math(False)


def _save(fig: Any, path: Path) -> None:
    _no_math(fig)
    fig.tight_layout()
    with atomic.target(path, replace=True) as tmp:
        fig.savefig(tmp, format="png")
