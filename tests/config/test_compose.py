"""Composition (`extends`), origins of values, list edits from the command line: config.py and compose.py
without TensorFlow."""

from __future__ import annotations

from pathlib import Path

import pytest

from kcli.config import loading as config_mod
from kcli.config import resolve as resolve_mod
from kcli.config.dump import dump
from kcli.errors import ConfigError
from tests.conftest import run_cli, tiny_npz
from tests.helpers import assert_user_error

BASE = """\
seed: 3
data: {source: npz, path: data/train.npz, batch_size: 16, one_hot: true}
imports: [layers.py]
model:
  input_shape: [4]
  layers:
    - Dense: {units: 8, activation: relu}
    - layers.py:Scale
    - Dense: {units: 3}
compile: {optimizer: adam, loss: {CategoricalCrossentropy: {from_logits: true}}, metrics: [accuracy]}
fit:
  epochs: 3
  callbacks: [TerminateOnNaN]
"""

LAYERS = """\
import keras


class Scale(keras.layers.Layer):
    def __init__(self, factor=1.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """base/base.yaml (with its data and Python file beside it) and exp/child.yaml extending it."""
    (tmp_path / "base" / "data").mkdir(parents=True)
    (tmp_path / "exp").mkdir()
    tiny_npz(tmp_path / "base" / "data", "train.npz")
    (tmp_path / "base" / "layers.py").write_text(LAYERS)
    (tmp_path / "base" / "base.yaml").write_text(BASE)
    (tmp_path / "exp" / "child.yaml").write_text(
        "extends: ../base/base.yaml\nname: child\ndata: {batch_size: 8}\nfit: {epochs: 5}\n")
    return tmp_path


def test_mappings_merge_lists_replace_paths_stay_with_their_file(tree: Path) -> None:
    loaded = config_mod.load(tree / "exp" / "child.yaml")
    cfg = resolve_mod.resolve(loaded)
    assert (cfg.name, cfg.seed, cfg.data.batch_size, cfg.fit.epochs) == ("child", 3, 8, 5)
    assert cfg.data.path == str(tree / "base" / "data" / "train.npz")
    assert cfg.imports == [str(tree / "base" / "layers.py")]
    assert cfg.model.layers[1].name == f"{tree / 'base' / 'layers.py'}:Scale"
    assert [c.name for c in cfg.fit.callbacks] == ["TerminateOnNaN"]
    assert "extends" not in dump(cfg)   # the saved config stands alone
    (tree / "exp" / "lists.yaml").write_text("extends: ../base/base.yaml\nfit: {callbacks: []}\n")
    assert config_mod.load(tree / "exp" / "lists.yaml").config.fit.callbacks == []


def test_origins_name_file_and_line(tree: Path) -> None:
    loaded = config_mod.load(tree / "exp" / "child.yaml", ["fit.epochs=7"])
    assert loaded.origins["data.batch_size"] == (tree / "exp" / "child.yaml", 3)
    assert loaded.origins["data.source"] == ((tree / "base" / "base.yaml").resolve(), 2)
    assert loaded.set_keys == {"fit.epochs": "fit.epochs=7"}


def test_errors_in_an_extended_file_name_that_file(tree: Path) -> None:
    base = tree / "base" / "base.yaml"
    base.write_text(BASE.replace("epochs: 3", "epochs: 3\n  epoch: 4"))
    with pytest.raises(ConfigError) as err:
        config_mod.load(tree / "exp" / "child.yaml")
    assert str(err.value).startswith(f"{base.resolve()}:13: fit.epoch: unknown key 'epoch'")
    result = run_cli("validate", tree / "exp" / "child.yaml")
    assert_user_error(result, f"{base.resolve()}:13: fit.epoch: unknown key 'epoch' in fit (did you mean 'epochs'?)")


def test_chains_and_lists_of_bases(tree: Path) -> None:
    (tree / "exp" / "a.yaml").write_text("extends: child.yaml\nfit: {epochs: 9}\n")
    (tree / "exp" / "b.yaml").write_text("extends: [child.yaml, more.yaml]\n")
    (tree / "exp" / "more.yaml").write_text("data: {batch_size: 4}\n")
    assert config_mod.load(tree / "exp" / "a.yaml").config.fit.epochs == 9
    cfg = config_mod.load(tree / "exp" / "b.yaml").config
    assert (cfg.data.batch_size, cfg.fit.epochs) == (4, 5)


@pytest.mark.parametrize("files, expected", [
    ({"x.yaml": "extends: x.yaml\n"}, "x.yaml:1: extends: extends makes a cycle: x.yaml -> x.yaml"),
    ({"x.yaml": "extends: y.yaml\n", "y.yaml": "extends: x.yaml\n"},
     "y.yaml:1: extends: extends makes a cycle: x.yaml -> y.yaml -> x.yaml"),
    ({"x.yaml": "extends: nope.yaml\n"}, "x.yaml:1: extends: extended file not found"),
    ({"x.yaml": "extends: {a: 1}\n"}, "extends: extends takes a file name or a list of file names"),
])
def test_extends_mistakes(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert_user_error(run_cli("validate", tmp_path / "x.yaml"), expected)


def test_an_extending_config_trains_and_its_run_stands_alone(tree: Path) -> None:
    from tests.helpers import train_ok

    run_dir = train_ok(tree / "exp" / "child.yaml", tree / "runs")
    saved = (run_dir / "config.yaml").read_text()
    assert "extends" not in saved and "batch_size: 8" in saved
    again = train_ok(run_dir / "config.yaml", tree / "runs-again")   # the saved config reproduces the run
    assert (again / "history.csv").read_text() == (run_dir / "history.csv").read_text()


# ---- list edits from the command line ----

@pytest.mark.parametrize("edit, check", [
    ("fit.callbacks[TerminateOnNaN]={EarlyStopping: {monitor: loss}}",
     lambda c: c.fit.callbacks[0].name == "EarlyStopping"),
    ("model.layers[name=fc1].Dense.units=64", lambda c: c.model.layers[2].args["units"] == 64),
    ("model.layers[Scale].Scale.factor=2.5", lambda c: c.model.layers[1].args == {"factor": 2.5}),
    ("fit.callbacks+={EarlyStopping: {monitor: loss, patience: 5}}",
     lambda c: [s.name for s in c.fit.callbacks] == ["TerminateOnNaN", "EarlyStopping"]),
    ("fit.callbacks-=TerminateOnNaN", lambda c: c.fit.callbacks == []),
    ("model.layers-=0", lambda c: c.model.layers[0].name.endswith(":Scale")),
    ("compile.metrics+=mae", lambda c: [m.name for m in c.compile.metrics] == ["accuracy", "mae"]),
])
def test_list_items_by_name_append_and_remove(tree: Path, edit: str, check) -> None:  # noqa: ANN001
    base = tree / "base" / "base.yaml"
    base.write_text(BASE.replace("- Dense: {units: 3}", "- Dense: {units: 3, name: fc1}"))
    loaded = config_mod.load(base, [edit])
    assert check(loaded.config), loaded.config
    assert len(loaded.set_keys) == 1


@pytest.mark.parametrize("edit, expected", [
    ("fit.callbacks[EarlyStopping].patience=5",
     "--set fit.callbacks[EarlyStopping].patience=5: fit.callbacks has no item [EarlyStopping]; it has: "
     "TerminateOnNaN"),
    ("model.layers[Dense].Dense.units=5", "model.layers has 2 items [Dense]; use an index"),
    ("model.layers[name=nope].Dense.units=5", "model.layers has no item [name=nope]; it has: Dense, "),
    ("fit.epochs+=1", "fit.epochs is not a list; += appends to lists"),
    ("fit.callbacks-=9", "fit.callbacks has 1 entries"),
    ("fit.callbacks[Term", "expected KEY=VALUE (or KEY+=VALUE, KEY-=ITEM)"),
    ("extends=other.yaml", "--set extends=other.yaml: extends is read from the file before --set applies"),
])
def test_list_edit_mistakes_say_what_exists(tree: Path, edit: str, expected: str) -> None:
    result = run_cli("validate", tree / "base" / "base.yaml", "--set", edit)
    assert_user_error(result, expected)


def test_an_error_in_an_appended_item_names_the_set(tree: Path) -> None:
    result = run_cli("validate", tree / "base" / "base.yaml", "--set", "fit.callbacks+={EarlyStopping: {patiense: 2}}")
    assert_user_error(result, "--set fit.callbacks+={EarlyStopping: {patiense: 2}}: fit.callbacks[1].EarlyStopping: "
                              "unknown argument 'patiense' (did you mean 'patience'?)")


def test_validate_origin_shows_where_each_value_came_from(tree: Path) -> None:
    result = run_cli("validate", tree / "exp" / "child.yaml", "--print", "--origin", "--set", "fit.epochs=7")
    assert result.exit_code == 0, result.stderr
    rows = {}
    for line in result.stdout.splitlines():   # not a terminal: `key: value  # origin`
        key, _, rest = line.partition(": ")
        value, _, origin = rest.partition("  # ")
        rows[key] = (value, origin)
    base = (tree / "base" / "base.yaml").resolve()
    assert rows["data.batch_size"] == ("8", f"{tree / 'exp' / 'child.yaml'}:3")
    assert rows["data.source"] == ("npz", f"{base}:2")
    assert rows["fit.epochs"] == ("7", "--set fit.epochs=7")
    assert rows["data.cache"] == ("true", "default")
    assert rows["model.layers[0].Dense.units"] == ("8", f"{base}:7")


# ---- dry run ----

def test_fast_dev_run_checks_everything_and_keeps_nothing(tree: Path) -> None:
    import tempfile

    before = set(Path(tempfile.gettempdir()).glob("kcli-fast-dev-run-*"))
    result = run_cli("train", tree / "exp" / "child.yaml", "--fast-dev-run", "--runs-dir", tree / "runs")
    assert result.exit_code == 0, result.stderr
    assert "fast dev run ok: one batch of each split, every artifact written and verified" in result.stdout
    assert "epoch 1/1" in result.stdout and "epoch 2/" not in result.stdout
    assert not (tree / "runs").exists()
    assert set(Path(tempfile.gettempdir()).glob("kcli-fast-dev-run-*")) == before
    result = run_cli("train", tree / "exp" / "child.yaml", "--fast-dev-run", "--set", "fit.epochs=0")
    assert_user_error(result, "--set fit.epochs=0: fit.epochs: Input should be greater than 0")
