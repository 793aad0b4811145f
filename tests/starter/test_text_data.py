"""The text example: configs/data/tickets.csv is what its generator writes, `kcli init --data` on it writes a
config that trains as written, and configs/tickets_text.yaml reaches a bag-of-words baseline (scikit-learn's
CountVectorizer + LogisticRegression) on the same split."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import yaml

from tests.conftest import CONFIGS, run_cli
from tests.helpers import train_ok

TICKETS = CONFIGS / "data" / "tickets.csv"
EXAMPLE = CONFIGS / "tickets_text.yaml"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_tickets", CONFIGS / "data" / "make_tickets.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_tickets_are_what_the_generator_writes(tmp_path: Path) -> None:
    assert generator().main(tmp_path / "tickets.csv").read_bytes() == TICKETS.read_bytes()


def test_init_on_tickets_writes_a_text_config_that_trains(tmp_path: Path) -> None:
    data = generator().main(tmp_path / "tickets.csv", rows=300)
    target = tmp_path / "tickets.yaml"
    result = run_cli("init", "--data", data, "--label", "team", "--output", target)
    assert result.exit_code == 0, result.stderr
    assert "│ message │ text" in result.stdout or "| message | text" in result.stdout, result.stdout
    assert yaml.safe_load(target.read_text())["data"]["columns"] == {"channel": {"kind": "category"},
                                                                      "message": {"kind": "text"}}
    train_ok(target, tmp_path / "runs", "--set", "fit.epochs=1")


def split_rows(rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The training and test rows of the example, as kcli holds them out (its own function, the config's seed)."""
    from kcli.config import loading
    from kcli.data.splits import Arrays, hold_out

    config = loading.load(EXAMPLE).config
    index = np.arange(rows)[:, None]
    train, _, test = hold_out(Arrays(index, np.zeros(rows)), None, None, config.data, config.seed)
    assert test is not None
    return train.x[:, 0], test.x[:, 0]   # type: ignore[index]


def baseline_accuracy(table: dict[str, np.ndarray], train: np.ndarray, test: np.ndarray) -> float:
    """A bag of words (which words a message holds) and the one-hot channel -> logistic regression."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder

    words = CountVectorizer(binary=True).fit(table["message"][train])
    channel = OneHotEncoder(handle_unknown="ignore").fit(table["channel"][train, None])

    def features(rows: np.ndarray) -> Any:
        return hstack([words.transform(table["message"][rows]), channel.transform(table["channel"][rows, None])])

    model = LogisticRegression(max_iter=2000).fit(features(train), table["team"][train])
    return float(np.mean(model.predict(features(test)) == table["team"][test]))


@pytest.fixture(scope="module")
def example_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_ok(EXAMPLE, tmp_path_factory.mktemp("runs"))


def test_the_example_reaches_the_bag_of_words_baseline(example_run: Path) -> None:
    with TICKETS.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    table = {name: np.array([row[name] for row in rows]) for name in ("channel", "message", "team")}
    train, test = split_rows(len(rows))
    baseline = baseline_accuracy(table, train, test)
    kcli = json.loads((example_run / "metrics.json").read_text())["accuracy"]
    print(f"test accuracy: bag-of-words logistic regression {baseline:.4f}, kcli {kcli:.4f}")
    assert 0.8 < baseline < 0.95   # learnable, not trivially separable
    assert kcli > baseline - 0.03, (kcli, baseline)
