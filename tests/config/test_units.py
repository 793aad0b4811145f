"""Config logic without TensorFlow: YAML lines, suggestions, --set, error locations, differences."""

from __future__ import annotations

from pathlib import Path

import pytest

from kcli.config import loading as config_mod
from kcli.config import resolve as resolve_mod
from kcli.config.compose import origin_of
from kcli.config.dump import differences
from kcli.config.keys import key_path
from kcli.config.overrides import apply_overrides
from kcli.errors import ConfigError, KcliError

BASE = "model: {input_shape: [4], layers: [Dense: {units: 2}]}\ncompile: {loss: mse}\n"


def _load(tmp_path: Path, text: str, overrides: list[str] | None = None) -> config_mod.LoadedConfig:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return config_mod.load(path, overrides)


def test_line_map_and_duplicates(tmp_path: Path) -> None:
    loaded = _load(tmp_path, "name: a\nfit:\n  epochs: 2\n" + BASE)
    path = tmp_path / "c.yaml"
    assert loaded.origins["fit.epochs"] == (path, 3) and loaded.origins["model.layers[0]"] == (path, 4)
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, BASE + "fit: {epochs: 1, epochs: 2}\n")
    assert "fit.epochs: duplicate key 'epochs' (lines 3 and 3)" in str(err.value)
    with pytest.raises(ConfigError, match="unknown key 'x'"):   # anchors and aliases are fine YAML
        _load(tmp_path, "x: &f {epochs: 3}\n" + BASE + "fit: *f\n")


def test_unknown_key_gets_a_suggestion(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, BASE + "fit: {epoch: 2}\n")
    assert str(err.value).endswith("c.yaml:3: fit.epoch: unknown key 'epoch' in fit (did you mean 'epochs'?)")


def test_safe_names_from_file_stems() -> None:
    assert resolve_mod.safe_name("my config (copy)") == "my-config--copy-"
    assert resolve_mod.safe_name("..hidden") == "hidden"
    assert resolve_mod.safe_name("ü") == "run"


def test_overrides_assign_by_path() -> None:
    raw = {"fit": {"epochs": 1}, "model": {"layers": [{"Dense": {"units": 3}}]}}
    keys = apply_overrides(raw, ["fit.epochs=5", "model.layers[0].Dense.units=7"])
    assert raw["fit"]["epochs"] == 5 and raw["model"]["layers"][0]["Dense"]["units"] == 7
    assert set(keys) == {"fit.epochs", "model.layers[0].Dense.units"}
    with pytest.raises(KcliError):
        apply_overrides(raw, ["model.layers[3].Dense.units=1"])


def test_error_locations() -> None:
    assert key_path(("model", "layers", 2, "Dense")) == "model.layers[2].Dense"
    origins = {"model.layers[2]": (Path("c.yaml"), 9)}
    assert origin_of("model.layers[2].Dense.units", origins) == (Path("c.yaml"), 9)
    assert origin_of("fit.epochs", origins) is None
    err = ConfigError("bad", key="model.layers[2].Dense.units", line=9).located("c.yaml")
    assert str(err) == "c.yaml:9: model.layers[2].Dense.units: bad"


def test_config_differences_name_the_keys(tmp_path: Path) -> None:
    a = resolve_mod.resolve(_load(tmp_path, "seed: 1\n" + BASE))
    b = resolve_mod.resolve(_load(tmp_path, "seed: 1\n" + BASE, ["fit.epochs=3"]))
    assert differences(b, a) == {"fit.epochs": (1, 3)}
