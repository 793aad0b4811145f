"""kcli.api on a finished run: the same numbers and errors as `kcli evaluate`, `kcli predict` and `kcli export`."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pytest

from kcli import api, events
from kcli.errors import RunError
from tests.conftest import run_cli
from tests.helpers import tiny_project, train_ok


@dataclass(frozen=True)
class _Run:
    """What kcli.api.train returns, as far as these functions care: something with a `.path`."""

    path: Path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny classifier (data.scale 0.5, so predict's scaling is part of every comparison), trained once."""
    folder = tmp_path_factory.mktemp("api_use")
    splits = (("train.npz", 0, 48), ("val.npz", 1, 16), ("test.npz", 2, 24))
    config = tiny_project(folder, splits, name="apiuse", seed=3, data={"batch_size": 16, "scale": 0.5},
                          fit={"epochs": 1})
    return train_ok(config, folder / "runs")


def test_evaluate_returns_what_kcli_evaluate_prints_and_writes(run: Path) -> None:
    shown = run_cli("evaluate", run)
    assert shown.exit_code == 0, shown.stderr
    written = json.loads((run / "eval-test.json").read_text())
    heard = events.Collected()
    result = api.evaluate(_Run(run), listener=heard)
    assert set(result["metrics"]) == {"loss", "accuracy"}
    for name, value in result["metrics"].items():
        assert isinstance(value, float)
        assert value == pytest.approx(written[name], abs=1e-6)
        assert f"{value:.4f}" in shown.stdout
    assert result["examples"] == written["examples"] == 24
    assert result["per_class"] == written["per_class"]
    assert result["confusion_matrix"] == written["confusion_matrix"]
    assert result["path"] == run / "eval-test.json"
    assert heard.of(events.Metrics)[0].values == result["metrics"]


def test_predict_on_a_file_and_on_arrays_gives_what_kcli_predict_writes(run: Path, tmp_path: Path) -> None:
    source = run.parent.parent / "test.npz"
    for name in ("out.npy", "out.csv"):
        done = run_cli("predict", run, "--input", source, "--output", tmp_path / name)
        assert done.exit_code == 0, done.stderr
    written = np.load(tmp_path / "out.npy")
    with (tmp_path / "out.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    x = np.load(source)["x"]
    for got in (api.predict(run, source), api.predict(str(run), str(source)), api.predict(_Run(run), x)):
        assert got["outputs"].dtype == np.float32
        np.testing.assert_array_equal(got["outputs"], written)
        assert got["predicted"].tolist() == [int(r["predicted"]) for r in rows]
        np.testing.assert_allclose(got["probability"], [float(r["probability"]) for r in rows], rtol=1e-6)
    assert "label" in api.predict(run, source)   # the .npz's labels are carried along, as in the CSV


def test_load_returns_the_model_predict_uses(run: Path) -> None:
    x = np.load(run.parent.parent / "test.npz")["x"]
    model = api.load(run)
    assert isinstance(model, keras.Model)
    np.testing.assert_allclose(model.predict(x * 0.5, verbose=0), api.predict(run, x)["outputs"], atol=1e-6)


def test_export_writes_a_file_that_reloads(run: Path, tmp_path: Path) -> None:
    heard = events.Collected()
    target = api.export(_Run(run), "keras", tmp_path / "m.keras", listener=heard)
    assert target == tmp_path / "m.keras" and target.is_file()
    assert heard.of(events.Exported)[0].path == target
    x = np.load(run.parent.parent / "test.npz")["x"]
    reloaded = keras.models.load_model(target)
    np.testing.assert_allclose(reloaded.predict(x * 0.5, verbose=0), api.predict(run, x)["outputs"], atol=1e-6)


def test_a_missing_run_raises_the_error_the_cli_prints(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    shown = run_cli("evaluate", missing)
    assert shown.exit_code == 2
    for call in (lambda: api.evaluate(missing), lambda: api.predict(missing, np.zeros((1, 4))),
                 lambda: api.load(missing), lambda: api.export(missing, "keras")):
        with pytest.raises(RunError) as caught:
            call()
        assert str(caught.value) in " ".join(shown.stderr.split())


def test_arrays_of_the_wrong_kind_are_one_error(run: Path) -> None:
    from kcli.errors import DataError

    with pytest.raises(DataError, match="one array, not a dict"):
        api.predict(run, {"x": np.zeros((2, 4))})
    with pytest.raises(DataError):
        api.predict(run, np.zeros((2, 5), np.float32))


def test_text_or_objects_instead_of_numbers_are_the_error_kcli_predict_gives_an_npy(run: Path) -> None:
    """The number check is array_input's, so an array from Python gets the line an .npy file of text gets."""
    from kcli.errors import DataError

    with pytest.raises(DataError, match=r"the input holds <U1 values; expected an array of numbers"):
        api.predict(run, np.array([["a"] * 4] * 2))
    with pytest.raises(DataError, match="the input holds object scalar"):
        api.predict(run, object())
