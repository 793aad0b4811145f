"""Every user mistake: one line on stderr naming the file and config key, exit code 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli, tiny_npz, write_config

GOOD = """\
seed: 1
imports: {imports}
data:
  source: npz
  path: train.npz
  one_hot: {one_hot}
model:
  input_shape: {input_shape}
  layers:
    - Dense: {{units: 8, activation: relu}}
    - {layer}
compile:
  optimizer: {optimizer}
  loss: {loss}
  metrics: [{metric}]
fit:
  epochs: 1
"""
DEFAULTS = dict(imports="[]", one_hot="true", input_shape="[4]", layer="Dense: {units: 3}", optimizer="adam",
                loss="{CategoricalCrossentropy: {from_logits: true}}", metric="accuracy")


def config_with(folder: Path, **changes: str) -> Path:
    tiny_npz(folder)
    return write_config(folder, GOOD.format(**{**DEFAULTS, **changes}))


def assert_user_error(folder: Path, config: Path, *expected: str, static: bool = True) -> str:
    """`kcli train` refuses the config with one line; with `static`, `kcli validate` (which checks without
    TensorFlow) refuses it with the very same line."""
    runs = folder / "runs"
    result = run_cli("train", config, "--runs-dir", runs)
    assert result.exit_code == 2, (result.stdout, result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert str(config) in lines[0]
    for text in expected:
        assert text in lines[0], lines[0]
    assert not runs.exists() or not any(runs.iterdir()), "a user error must not create a run directory"
    if static:
        checked = run_cli("validate", config)
        assert (checked.exit_code, checked.stderr.strip()) == (2, lines[0])
    return lines[0]


def test_the_good_config_trains(tmp_path: Path) -> None:
    result = run_cli("train", config_with(tmp_path), "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.stderr


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    config = write_config(tmp_path, "model:\n  input_shape: [4\n  layers: [ReLU]\n")
    line = assert_user_error(tmp_path, config, "YAML syntax error", "column")
    assert f"{config}:3:" in line


def test_unknown_top_level_key(tmp_path: Path) -> None:
    config = config_with(tmp_path)
    config.write_text(config.read_text() + "fitt: {epochs: 2}\n")
    assert_user_error(tmp_path, config, "fitt: unknown key 'fitt'", "did you mean 'fit'?")


def test_unknown_layer_with_suggestion(tmp_path: Path) -> None:
    config = config_with(tmp_path, layer="Desne: {units: 3}")
    assert_user_error(tmp_path, config, "model.layers[1].Desne", "unknown layer 'Desne'", "did you mean 'Dense'?")


def test_bad_layer_argument_with_suggestion(tmp_path: Path) -> None:
    config = config_with(tmp_path, layer="Dense: {unit: 3}")
    line = assert_user_error(tmp_path, config, "model.layers[1].Dense: unknown argument 'unit' (did you mean 'units'?)")
    assert f"{config}:11:" in line  # the line of that layer in the file


def test_bad_layer_argument_value_is_keras_message(tmp_path: Path) -> None:
    config = config_with(tmp_path, layer="Dense: {units: 3, activation: relux}")
    assert_user_error(tmp_path, config, "model.layers[1].Dense", "relux", static=False)


def test_missing_required_layer_argument(tmp_path: Path) -> None:
    config = config_with(tmp_path, layer="Dense")
    assert_user_error(tmp_path, config, "model.layers[1].Dense: missing required argument 'units'")


def test_layer_that_does_not_fit_its_input(tmp_path: Path) -> None:
    config = config_with(tmp_path, layer="Conv2D: {filters: 2, kernel_size: 3}")
    assert_user_error(tmp_path, config, "model.layers[1].Conv2D", "(None, 8)", static=False)


def test_unknown_optimizer(tmp_path: Path) -> None:
    assert_user_error(tmp_path, config_with(tmp_path, optimizer="adamm"), "compile.optimizer",
                      "unknown optimizer 'adamm'", "did you mean")


def test_unknown_optimizer_argument(tmp_path: Path) -> None:
    config = config_with(tmp_path, optimizer="{Adam: {learning_rte: 0.1}}")
    assert_user_error(tmp_path, config, "compile.optimizer.Adam", "did you mean 'learning_rate'?")


def test_unknown_loss(tmp_path: Path) -> None:
    config = config_with(tmp_path, loss="categorical_crossentropyy")
    assert_user_error(tmp_path, config, "compile.loss", "unknown loss", "did you mean 'categorical_crossentropy'?")


def test_unknown_metric(tmp_path: Path) -> None:
    config = config_with(tmp_path, metric="acuracy")
    assert_user_error(tmp_path, config, "compile.metrics[0]", "unknown metric 'acuracy'", "did you mean 'accuracy'?")


def test_input_shape_that_does_not_match_the_data(tmp_path: Path) -> None:
    config = config_with(tmp_path, input_shape="[5]")
    assert_user_error(tmp_path, config, "model.input_shape", "[5]", "[4]", static=False)


def test_labels_that_do_not_fit_the_loss(tmp_path: Path) -> None:
    config = config_with(tmp_path, one_hot="false")
    assert_user_error(tmp_path, config, "compile.loss", "one_hot: true", "SparseCategoricalCrossentropy", static=False)


def test_sparse_labels_out_of_range(tmp_path: Path) -> None:
    config = config_with(tmp_path, one_hot="false", layer="Dense: {units: 2}",
                         loss="{SparseCategoricalCrossentropy: {from_logits: true}}")
    assert_user_error(tmp_path, config, "compile.loss", "class ids must lie in 0..1", static=False)


def test_missing_data_file(tmp_path: Path) -> None:
    config = config_with(tmp_path)
    (tmp_path / "train.npz").unlink()
    assert_user_error(tmp_path, config, "data.path", "data file not found", "train.npz")


def test_missing_config_file(tmp_path: Path) -> None:
    result = run_cli("train", tmp_path / "nope.yaml")
    assert result.exit_code == 2
    assert "nope.yaml: config file not found" in result.stderr


def test_import_that_fails_shows_the_error_inside(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import keras\n\nx = undefined_name + 1\n")
    config = config_with(tmp_path, imports="[broken.py]")
    assert_user_error(tmp_path, config, "imports[0]", "broken.py:3 failed to import",
                      "NameError: name 'undefined_name' is not defined", static=False)


def test_import_file_missing(tmp_path: Path) -> None:
    config = config_with(tmp_path, imports="[nowhere.py]")
    assert_user_error(tmp_path, config, "imports[0]", "Python file not found")


def test_wrong_type_of_value(tmp_path: Path) -> None:
    config = config_with(tmp_path)
    config.write_text(config.read_text().replace("epochs: 1", "epochs: many"))
    assert_user_error(tmp_path, config, "fit.epochs", "'many'")


@pytest.mark.parametrize("snippet, expected", [
    ("data:\n  source: npz\n  path: train.npz\n  label: y\n", "`label` is only used with source csv"),
    ("data:\n  validation_split: 0.2\n  validation: {path: v.npz}\n", "either `validation` or `validation_split`"),
])
def test_data_section_mistakes(tmp_path: Path, snippet: str, expected: str) -> None:
    config = write_config(tmp_path, snippet + "model: {input_shape: [4], layers: [ReLU]}\ncompile: {loss: mse}\n")
    assert_user_error(tmp_path, config, "data", expected)


def test_subclassed_model_refuses_h5(tmp_path: Path) -> None:
    net = "import keras\nclass Net(keras.Model):\n    def call(self, x):\n        return x\n"
    (tmp_path / "net.py").write_text(net)
    config = write_config(tmp_path, "model: {input_shape: [4], class: net.py:Net}\ncompile: {loss: mse}\nsave: [h5]\n")
    assert_user_error(tmp_path, config, "save", "h5 cannot hold a subclassed keras.Model")


@pytest.mark.parametrize("snippet, expected", [
    ("fit: {epochs: 1, checkpoint: {monitor: val_acc}}", "fit.checkpoint.monitor: monitor 'val_acc' is never logged"),
    ("fit: {epochs: 1, callbacks: [{EarlyStopping: {monitor: accurcy}}]}",
     "fit.callbacks[0].EarlyStopping.monitor: monitor 'accurcy' is never logged (did you mean 'accuracy'?)"),
    ("fit: {epochs: 1, callbacks: [EarlyStopping]}",
     "monitor 'val_loss' needs validation data (data.validation or data.validation_split)"),
])
def test_monitors_that_are_never_logged_fail_before_a_run(tmp_path: Path, snippet: str, expected: str) -> None:
    config = config_with(tmp_path)
    config.write_text(config.read_text().replace("fit:\n  epochs: 1\n", snippet + "\n"))
    assert_user_error(tmp_path, config, expected, static=False)


def test_validate_reports_unknown_datasets_and_syntax_errors_in_imports(tmp_path: Path) -> None:
    config = config_with(tmp_path)
    text = config.read_text().replace("source: npz\n  path: train.npz\n", "source: builtin\n  name: mnist\n")
    config.write_text(text)
    assert_user_error(tmp_path, config, "data.name: unknown builtin dataset 'mnist'; available: digits")
    (tmp_path / "broken.py").write_text("import keras\n\nclass X(keras.layers.Layer)\n    pass\n")
    config = config_with(tmp_path, imports="[broken.py]")
    assert_user_error(tmp_path, config, "imports[0]:", "broken.py:3 failed to import: SyntaxError")


def test_validate_build_checks_the_data_against_the_model(tmp_path: Path) -> None:
    config = config_with(tmp_path, input_shape="[5]")
    result = run_cli("validate", config)
    assert result.exit_code == 0, result.stderr   # the static checks cannot see the data's shape
    result = run_cli("validate", config, "--build")
    assert result.exit_code == 2 and "model.input_shape: input_shape [5] does not match the data" in result.stderr
    result = run_cli("validate", config_with(tmp_path, one_hot="false"), "--build")
    assert result.exit_code == 2 and "integer labels need data.one_hot: true" in result.stderr
