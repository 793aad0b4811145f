"""Key paths: the one parser (lenient for keys kcli wrote, strict for keys the user typed)."""

from __future__ import annotations

import pytest

from kcli.config.keys import Item, KeyPathError, join_key, key_parts, key_path, parse, under
from kcli.config.overrides import Select, split_key_path
from kcli.errors import ConfigError


@pytest.mark.parametrize(("key", "parts"), [
    ("model.layers[2].units", ["model", "layers", 2, "units"]),
    ('data.columns["a.b"].kind', ["data", "columns", "a.b", "kind"]),
    ('data["x[red]"]', ["data", "x[red]"]),
    ("fit.callbacks[EarlyStopping].patience", ["fit", "callbacks", "EarlyStopping", "patience"]),
    ("a[0]b", ["a", 0, "b"]),
    ("a..b", ["a", "", "b"]),        # lenient: kept as text, never an error
    ("a[unclosed", ["a", "unclosed"]),
    ('a["broken', ["a", '"broken']),
])
def test_key_parts_reads_any_text(key: str, parts: list) -> None:
    assert key_parts(key) == parts


@pytest.mark.parametrize("loc", [("model", "layers", 0, "Dense"), ("data", "x.y", "z"), ("a", 'q"uote', 3), ("a", "")])
def test_key_path_and_key_parts_round_trip(loc: tuple) -> None:
    assert tuple(key_parts(key_path(loc))) == loc


def test_join_key_quotes_what_would_read_as_a_step() -> None:
    assert join_key("", "model") == "model"
    assert join_key("model", 2) == "model[2]"
    assert join_key("sweep.parameters", "fit.epochs") == 'sweep.parameters["fit.epochs"]'
    assert join_key("a", True) == "a.True"   # a bool is a key, not an index


def test_strict_parsing_names_items_and_refuses_malformed_parts() -> None:
    assert parse("fit.callbacks[EarlyStopping].patience", strict=True) == \
        ["fit", "callbacks", Item("EarlyStopping"), "patience"]
    assert parse("model.layers[ 1 ]", strict=True) == ["model", "layers", 1]
    assert parse("model.layers[name=fc1].units", strict=True) == ["model", "layers", Item("name=fc1"), "units"]
    for bad, message in [("a..b", "empty key"), (".a", "empty key"), ("a[", "bad list item ["),
                         ("a[ ]", "bad list item [ "), ('a["x"y', 'bad quoted key ["x"y'),
                         ('a["x', 'bad quoted key ["x')]:
        with pytest.raises(KeyPathError) as caught:
            parse(bad, strict=True)
        assert str(caught.value) == message, bad


def test_set_keys_are_parsed_by_the_same_parser() -> None:
    assert split_key_path("fit.callbacks[EarlyStopping]", "sweep.parameters") == \
        ["fit", "callbacks", Select("EarlyStopping")]
    with pytest.raises(ConfigError) as caught:
        split_key_path("fit..epochs", "sweep.parameters.x")
    assert str(caught.value) == "sweep.parameters.x: empty key"


def test_under_is_the_key_or_inside_it() -> None:
    assert under("model.layers[0].units", "model.layers")
    assert under("model.layers", "model.layers")
    assert under('data["a.b"]', "data")
    assert not under("model.layer", "model.layers")
    assert not under("model.layersx", "model.layers")
