"""Pictures name classes as the data does and keep long run names whole: the confusion matrix's ticks and title
(drawn directly without TensorFlow, then through `kcli evaluate` of a table run with class-name labels)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kcli.run import pictures
from tests.conftest import run_cli, write_config
from tests.data.test_tables import KINDS, write_houses
from tests.helpers import capture_figures, train_ok

LONG_NAME = "penguins-species-from-bill-and-flipper-measurements-baseline"   # 60 characters


def _inside(fig: Any, text: Any) -> bool:
    """Whether a drawn text lies within the figure's width (a title cut off on both sides does not)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    box = text.get_window_extent(canvas.get_renderer())
    return box.x0 >= 0 and box.x1 <= fig.bbox.width


def _ticks(ax: Any) -> tuple[list[str], list[str]]:
    return [t.get_text() for t in ax.get_xticklabels()], [t.get_text() for t in ax.get_yticklabels()]


def test_the_confusion_matrix_shows_class_names_and_the_whole_title(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(LONG_NAME) == 60
    figures = capture_figures(monkeypatch)
    title = f"{LONG_NAME}-20261205-201500 on test: confusion matrix"
    names = ["Adelie", "Chinstrap", "Gentoo $x$", "a" * 30]
    pictures.confusion(np.arange(16).reshape(4, 4), tmp_path / "c.png", title, names)
    assert (tmp_path / "c.png").read_bytes().startswith(b"\x89PNG")
    ax = figures[0].axes[0]
    shown = ["Adelie", "Chinstrap", "Gentoo $x$", "a" * 23 + "\u2026"]   # data, not mathtext; long ones cut
    assert _ticks(ax) == (shown, shown)
    drawn = figures[0].get_suptitle()
    assert drawn.replace("\n", "").replace(" ", "") == title.replace(" ", "")
    assert drawn.count("\n") >= 1 and _inside(figures[0], figures[0]._suptitle)
    figures[0].suptitle(title)   # the same title on one line: cut off (what the wrapping avoids)
    assert not _inside(figures[0], figures[0]._suptitle)

    pictures.confusion(np.eye(3, dtype=int), tmp_path / "ids.png", "short", ["a", "b"])   # names do not fit: ids
    assert _ticks(figures[1].axes[0]) == (["0", "1", "2"], ["0", "1", "2"])


def test_evaluate_names_the_classes_of_a_table_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_houses(tmp_path / "train.csv", 60, seed=1)
    write_houses(tmp_path / "val.csv", 24, seed=2)
    config = write_config(tmp_path, f"""\
        name: {LONG_NAME}
        seed: 3
        data: {{source: csv, path: train.csv, label: kind, missing: fill, validation: {{path: val.csv}}}}
        model: {{layers: [{{Dense: {{units: 3, activation: softmax}}}}]}}
        compile: {{optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}}
        fit: {{epochs: 1}}
        """)
    run = train_ok(config, tmp_path / "runs")
    figures = capture_figures(monkeypatch)
    result = run_cli("evaluate", run, "--split", "validation")
    assert result.exit_code == 0, result.stderr
    ax = figures[0].axes[0]
    assert _ticks(ax) == (sorted(KINDS), sorted(KINDS))
    assert run.name in figures[0].get_suptitle().replace("\n", "") and _inside(figures[0], figures[0]._suptitle)
    assert (run / "eval-validation-confusion.png").read_bytes().startswith(b"\x89PNG")
