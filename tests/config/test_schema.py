"""`kcli schema`: the JSON Schema editors use, from the same models that validate configs."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from kcli.config import schema as schema_mod
from tests.conftest import CONFIGS, run_cli

SCHEMA_LINE = "# yaml-language-server: $schema=../kcli/config/config.schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    shipped = json.loads(schema_mod.SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(shipped)
    return jsonschema.Draft202012Validator(shipped)


def test_shipped_schema_is_the_generated_one(tmp_path: Path) -> None:
    """If this fails after a config change: kcli schema --output kcli/config/config.schema.json"""
    assert schema_mod.SCHEMA_FILE.read_text() == schema_mod.text()
    result = run_cli("schema", "--output", tmp_path / "s.json")
    assert result.exit_code == 0 and (tmp_path / "s.json").read_text() == schema_mod.text()
    assert json.loads(run_cli("schema").stdout)["title"] == "kcli config"
    result = run_cli("schema", "--output", tmp_path / "missing" / "s.json")
    assert result.exit_code == 2 and result.stderr.startswith("error: --output: the folder")


@pytest.mark.parametrize("config", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_bundled_configs_validate_and_name_the_schema(validator: jsonschema.Draft202012Validator,
                                                      config: str) -> None:
    from kcli.config.compose import compose

    text = (CONFIGS / config).read_text()
    assert text.splitlines()[0] == SCHEMA_LINE
    raw = yaml.safe_load(text)
    if "extends" in raw:   # a partial config: the schema describes what it composes to
        raw = compose(CONFIGS / config)[0]
    assert list(validator.iter_errors(raw)) == []


BASE = {"model": {"input_shape": [4], "layers": [{"Dense": {"units": 3}}]}, "compile": {"loss": "mse"}}


@pytest.mark.parametrize("change", [
    {"epoch": 3},                                                            # unknown top-level key
    {"fit": {"epochs": "five"}},                                             # wrong type
    {"fit": {"epochs": 0}},                                                  # out of range
    {"data": {"batch_size": 0}},
    {"data": {"validation_split": 1.5}},
    {"data": {"source": "feather"}},                                         # not a source
    {"name": "../escape"},                                                   # not a safe run name
    {"save": ["pickle"]},
    {"model": {"input_shape": [4], "layers": [{"Dense": {"unit": 3}}]}},     # Keras's own argument names
    {"model": {"input_shape": [4], "layers": [{"Dense": {"units": 3}, "ReLU": None}]}},  # two in one entry
    {"compile": {"loss": "mse", "optimizer": {"Adam": {"learning_rat": 0.1}}}},
    {"fit": {"callbacks": [{"EarlyStopping": {"patiense": 2}}]}},
    {"fit": {"checkpoint": {"mode": "maximum"}}},
    {"distribute": "everywhere"},
    {"extends": 3},
    {"model": {"input_shape": [4], "layers": ["Dens"]}},                   # no imports: Keras's names only
    {"model": {"input_shape": [4], "layers": [{"Dens": {"units": 3}}]}},
    {"fit": {"callbacks": ["EarlyStoping"]}},
    {"model": {"input_shape": [4], "graph": [{"name": "a", "layer": {"Dense": {"unit": 3}}}]}},
    {"model": {"input_shape": [4], "graph": [{"name": "a", "layer": "Dens"}]}},
    {"model": {"input_shape": [4], "graph": [{"name": "a", "layer": "ReLU", "input": ["b"]}]}},
])
def test_held_back_mistakes_are_rejected(validator: jsonschema.Draft202012Validator, change: dict) -> None:
    config = {**BASE, **change}
    assert list(validator.iter_errors(BASE)) == []
    assert list(validator.iter_errors(config)), change


def test_fields_carry_descriptions_and_defaults() -> None:
    shipped = schema_mod.schema()
    batch = shipped["$defs"]["DataConfig"]["properties"]["batch_size"]
    assert batch["default"] == 32 and "Keras's fit default" in batch["description"]
    assert "validate every N epochs" in shipped["$defs"]["FitConfig"]["properties"]["validation_freq"]["description"]
    assert "run directory" in shipped["properties"]["name"]["description"]
    dense = shipped["$defs"]["LayerSpec"]["anyOf"][2]["properties"]["Dense"]
    assert "units" in dense["properties"] and dense["additionalProperties"] is False
    assert "Dense" in shipped["$defs"]["LayerSpec"]["anyOf"][0]["enum"]


def test_a_graph_validates(validator: jsonschema.Draft202012Validator) -> None:
    from tests.model.test_graph import GRAPH

    config = {**BASE, "model": {"input_shape": [4], "graph": GRAPH, "output": "logits"}}
    assert list(validator.iter_errors(config)) == []


def test_names_from_imports_are_accepted(validator: jsonschema.Draft202012Validator) -> None:
    config = {**BASE, "imports": ["my_layers.py"],
              "model": {"input_shape": [4], "layers": [{"MyDense": {"units": 3}}, "ReLU"]}}
    assert list(validator.iter_errors(config)) == []
    ref = {**BASE, "model": {"input_shape": [4], "layers": [{"my_layers.py:MyDense": {"units": 3}}]}}
    assert list(validator.iter_errors(ref)) == []
