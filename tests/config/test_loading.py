"""Loading: YAML -> validated config, pydantic's errors as one line naming file, line and key; `--set` edits;
`extends` merging and origins (no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kcli.config.compose import compose, describe_origin, merge
from kcli.config.dump import differences, flatten
from kcli.config.loading import load
from kcli.config.overrides import apply_overrides
from kcli.config.suggest import did_you_mean
from kcli.errors import ConfigError, DataError, KcliError

MODEL = "model: {input_shape: [4], layers: [Dense: {units: 2}]}\ncompile: {loss: mse}\n"


def _write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _error(path: Path, overrides: list[str] | None = None) -> str:
    with pytest.raises(KcliError) as caught:
        load(path, overrides)
    return str(caught.value)


def test_an_unknown_key_names_its_line_and_the_closest_key(tmp_path: Path) -> None:
    path = _write(tmp_path, MODEL + "fit: {epochs: 2, batchsize: 3}\n")
    assert _error(path) == f"{path}:3: fit.batchsize: unknown key 'batchsize' in fit"
    path = _write(tmp_path, MODEL + "fit:\n  epoch: 2\n")
    assert _error(path) == f"{path}:4: fit.epoch: unknown key 'epoch' in fit (did you mean 'epochs'?)"


def test_a_missing_key_and_a_wrong_type(tmp_path: Path) -> None:
    path = _write(tmp_path, "model: {input_shape: [4], layers: [Dense: {units: 2}]}\n")
    assert _error(path) == f"{path}: compile: required key is missing"
    path = _write(tmp_path, MODEL + "fit: {epochs: many}\n")
    assert _error(path) == (f"{path}:3: fit.epochs: Input should be a valid integer, unable to parse string as an "
                            "integer (got 'many')")


def test_a_per_source_rule_names_the_data_section(tmp_path: Path) -> None:
    path = _write(tmp_path, "data: {source: npz, path: d.npz, label: y}\n" + MODEL)
    assert _error(path) == f"{path}:1: data: `label` is only used with source csv, not npz"
    path = _write(tmp_path, "data: {source: keras, name: minst}\n" + MODEL)
    assert "one of mnist, fashion_mnist" in _error(path) and "(did you mean 'mnist'?)" in _error(path)


def test_a_mistake_a_set_made_names_the_set(tmp_path: Path) -> None:
    path = _write(tmp_path, MODEL)
    assert _error(path, ["fit.epochs=0"]) == \
        "--set fit.epochs=0: fit.epochs: Input should be greater than 0 (got 0)"


def test_located_names_the_file_and_line_that_set_a_key(tmp_path: Path) -> None:
    loaded = load(_write(tmp_path, MODEL + "fit:\n  epochs: 2\n"))
    with pytest.raises(DataError) as caught, loaded.located():
        raise DataError("too many", key="fit.epochs")
    assert str(caught.value) == f"{tmp_path / 'c.yaml'}:4: fit.epochs: too many"
    with pytest.raises(DataError) as caught, loaded.located():
        raise DataError("unset", key="fit.callbacks")   # not in the file: the nearest parent that is
    assert str(caught.value) == f"{tmp_path / 'c.yaml'}:3: fit.callbacks: unset"
    with pytest.raises(DataError) as caught, loaded.located():
        raise DataError("no key")
    assert str(caught.value) == f"{tmp_path / 'c.yaml'}: no key"


def test_overrides_assign_append_and_remove_by_name() -> None:
    raw = {"fit": {"callbacks": ["TerminateOnNaN", {"EarlyStopping": {"patience": 2}}]}}
    applied = apply_overrides(raw, ["fit.callbacks[EarlyStopping].EarlyStopping.patience=5", "fit.callbacks+=CSVLogger",
                                    "fit.callbacks-=TerminateOnNaN"])
    assert raw == {"fit": {"callbacks": [{"EarlyStopping": {"patience": 5}}, "CSVLogger"]}}
    assert applied == {
        "fit.callbacks[1].EarlyStopping.patience": "fit.callbacks[EarlyStopping].EarlyStopping.patience=5",
        "fit.callbacks[2]": "fit.callbacks+=CSVLogger", "fit.callbacks": "fit.callbacks-=TerminateOnNaN"}
    with pytest.raises(ConfigError) as caught:
        apply_overrides(raw, ["fit.callbacks[Nope].x=1"])
    assert str(caught.value) == ("--set fit.callbacks[Nope].x=1: fit.callbacks has no item [Nope]; it has: "
                                 "EarlyStopping, CSVLogger")


def test_extends_merges_mappings_replaces_lists_and_keeps_origins(tmp_path: Path) -> None:
    base = _write(tmp_path, "fit: {epochs: 2, callbacks: [TerminateOnNaN]}\n" + MODEL, "base/b.yaml")
    child = _write(tmp_path, "extends: ../base/b.yaml\nfit:\n  callbacks: []\n", "exp/c.yaml")
    raw, origins = compose(child)
    assert raw["fit"] == {"epochs": 2, "callbacks": []}
    assert describe_origin("fit.epochs", raw, origins, {}) == f"{base}:1"
    assert describe_origin("fit.callbacks", raw, origins, {}) == f"{child}:3"
    assert describe_origin("fit.validation_freq", raw, origins, {}) == "default"
    assert merge({"a": {"b": 1, "c": [1]}}, {"a": {"c": [2]}}) == {"a": {"b": 1, "c": [2]}}


def test_an_extends_cycle_names_the_files(tmp_path: Path) -> None:
    _write(tmp_path, "extends: b.yaml\n", "a.yaml")
    b = _write(tmp_path, "extends: a.yaml\n", "b.yaml")
    assert _error(b) == f"{tmp_path / 'a.yaml'}:1: extends: extends makes a cycle: b.yaml -> a.yaml -> b.yaml"


def test_flatten_and_differences_use_key_paths(tmp_path: Path) -> None:
    assert flatten({"a": {"b.c": [1, {"d": 2}]}}) == {'a["b.c"][0]': 1, 'a["b.c"][1].d': 2}
    one = load(_write(tmp_path, MODEL)).config
    two = load(_write(tmp_path, MODEL + "fit: {epochs: 3}\n", "d.yaml")).config
    assert differences(two, one) == {"fit.epochs": (1, 3)}


def test_did_you_mean_matches_closely_or_by_case() -> None:
    assert did_you_mean("unit", ["units", "activation"]) == " (did you mean 'units'?)"
    assert did_you_mean("RELU", ["ReLU"]) == " (did you mean 'ReLU'?)"
    assert did_you_mean("zzz", ["units"]) == ""
