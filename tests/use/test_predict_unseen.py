"""`kcli predict` of a table model says how many rows held values training never saw (unknown categories, empty
cells it fills), per column on one line, and kcli.api.predict returns the counts as `unseen`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kcli import api
from kcli.config.models import ColumnConfig
from kcli.use.unseen import Unseen
from tests.conftest import run_cli, write_config
from tests.data.test_tables import write_houses
from tests.helpers import train_ok

COLUMNS = {"rooms": ColumnConfig(kind="number", missing="fill", fill=3.0),
           "city": ColumnConfig(kind="category", missing="fill", vocabulary=["east", "north", "south"]),
           "zone": ColumnConfig(kind="category", missing="fill", vocabulary=[1, 2, 3, 4]),
           "id": ColumnConfig(kind="ignore")}
NEW_ROWS = "city,zone,area,rooms\nnorth,2,,3\nmars,9,40,1\nsouth,1,80,2\n,,,\nMars,4,60,2\n"
LINE = ("warning: unseen values in 4 of 5 rows: rooms 1 empty cell, area 2 empty cells, city 2 rows (e.g. 'mars') "
        "and 1 empty cell, zone 1 row (e.g. 9) and 1 empty cell; 1 empty row")


def _chunk(rooms: list[float], city: list[str], zone: list[int]) -> dict[str, np.ndarray]:
    """Arrays as tables.read_split makes them: (n, 1) each; empty: NaN, "" and -1."""
    return {"rooms": np.array(rooms, np.float32).reshape(-1, 1),
            "city": np.array(city, dtype=object).reshape(-1, 1), "zone": np.array(zone, np.int64).reshape(-1, 1)}


def test_counts_per_column_are_the_same_chunk_by_chunk_as_whole() -> None:
    rooms = [1, np.nan, 2, np.nan, 4, 5]
    city = ["north", "mars", "", "venus", "east", "mars"]
    zone = [1, 9, -1, 2, 3, 4]
    whole, chunked = Unseen.of(COLUMNS), Unseen.of(COLUMNS)
    whole.add(_chunk(rooms, city, zone))
    for start in range(0, 6, 2):
        chunked.add(_chunk(rooms[start:start + 2], city[start:start + 2], zone[start:start + 2]))
    expected = {"rows": 4, "empty_rows": 0,
                "columns": {"rooms": {"unknown": 0, "empty": 2, "example": None},
                            "city": {"unknown": 3, "empty": 1, "example": "mars"},
                            "zone": {"unknown": 1, "empty": 1, "example": 9}}}
    assert whole.result() == chunked.result() == expected
    assert whole.line() == ("unseen values in 4 of 6 rows: rooms 2 empty cells, city 3 rows (e.g. 'mars') and "
                            "1 empty cell, zone 1 row (e.g. 9) and 1 empty cell")
    seen = Unseen.of(COLUMNS)
    seen.add(_chunk([1.0], ["east"], [4]))
    assert seen.line() is None and seen.result() == {"rows": 0, "empty_rows": 0, "columns": {}}


def test_a_million_rows_are_counted_in_chunks_keeping_only_counts() -> None:
    rng = np.random.default_rng(0)
    counter = Unseen.of(COLUMNS)
    unknown = 0
    for _ in range(20):   # 20 chunks of 50,000 rows, as predict reads them
        city = rng.choice(np.array(["east", "north", "south", "x" * 100], dtype=object), 50_000, p=[.3, .3, .3, .1])
        unknown += int((city == "x" * 100).sum())
        counter.add(_chunk(np.ones(50_000).tolist(), city.tolist(), [1] * 50_000))
    assert counter.total == 1_000_000 and counter.result()["columns"]["city"]["unknown"] == unknown
    assert f"city {unknown} rows (e.g. '{'x' * 38}\u2026)" in str(counter.line())   # a long value is cut


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("unseen")
    write_houses(folder / "train.csv", 60, seed=1)
    config = write_config(folder, """\
        seed: 3
        data: {source: csv, path: train.csv, label: kind, missing: fill,
               columns: {zone: {kind: category}, weight: {kind: ignore}}}
        model: {layers: [{Dense: {units: 3, activation: softmax}}]}
        compile: {optimizer: adam, loss: sparse_categorical_crossentropy}
        fit: {epochs: 1}
        """)
    return train_ok(config, folder / "runs")


def test_predict_warns_on_one_line_and_the_api_returns_the_counts(run: Path, tmp_path: Path) -> None:
    new = tmp_path / "new.csv"
    new.write_text(NEW_ROWS)
    result = run_cli("predict", run, "--input", new, "--output", tmp_path / "out.csv")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.strip() == LINE
    assert len((tmp_path / "out.csv").read_text().splitlines()) == 6   # every row is still predicted
    unseen = api.predict(run, new)["unseen"]
    assert unseen == {"rows": 4, "empty_rows": 1,
                      "columns": {"rooms": {"unknown": 0, "empty": 1, "example": None},
                                  "area": {"unknown": 0, "empty": 2, "example": None},
                                  "city": {"unknown": 2, "empty": 1, "example": "mars"},
                                  "zone": {"unknown": 1, "empty": 1, "example": 9}}}
    arrays = {"rooms": np.array([2.0]), "area": np.array([50.0]), "city": np.array(["east"]), "zone": np.array([3])}
    assert api.predict(run, arrays)["unseen"] == {"rows": 0, "empty_rows": 0, "columns": {}}
