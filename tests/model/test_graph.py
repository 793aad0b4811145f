"""Functional graphs in YAML (`model.graph`): the same numbers as a hand-written functional Keras script,
mistakes named by their node, and runs that reload and export like any other."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from tests.conftest import REPO, run_cli, run_json
from tests.helpers import assert_same_arrays, assert_same_as_plain_script, assert_user_error, tiny_project, train_ok

GRAPH = [
    {"name": "h1", "layer": {"Dense": {"units": 16, "activation": "relu"}}},
    {"name": "h2", "layer": {"Dense": {"units": 16}}},
    {"name": "skip", "layer": "Add", "inputs": ["h1", "h2"]},
    {"name": "drop", "layer": {"Dropout": {"rate": 0.2}}},
    {"name": "again", "share": "h2", "inputs": ["drop"]},
    {"name": "both", "layer": "Concatenate", "inputs": ["again", "input"]},
    {"name": "logits", "layer": {"Dense": {"units": 3}}},
]

PLAIN_FUNCTIONAL = """
import json, sys
import keras, numpy as np
folder = sys.argv[1]
train, val = np.load(f"{folder}/train.npz"), np.load(f"{folder}/val.npz")
x, y = train["x"].astype("float32"), np.eye(3, dtype="float32")[train["y"]]
vx, vy = val["x"].astype("float32"), np.eye(3, dtype="float32")[val["y"]]
keras.utils.set_random_seed(11)
inputs = keras.Input(shape=(4,), name="input")
h1 = keras.layers.Dense(16, activation="relu", name="h1")(inputs)
dense2 = keras.layers.Dense(16, name="h2")
h2 = dense2(h1)
skip = keras.layers.Add(name="skip")([h1, h2])
drop = keras.layers.Dropout(0.2, name="drop")(skip)
again = dense2(drop)
both = keras.layers.Concatenate(name="both")([again, inputs])
logits = keras.layers.Dense(3, name="logits")(both)
model = keras.Model(inputs, logits)
model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01),
              loss=keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
history = model.fit(x, y, batch_size=16, epochs=4, validation_data=(vx, vy), shuffle=True, verbose=0)
np.savez(f"{folder}/plain_weights.npz", *model.get_weights())
json.dump(history.history, open(f"{folder}/plain_history.json", "w"))
"""


@pytest.fixture(scope="module")
def graph_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("graph")
    config = tiny_project(folder, (("train.npz", 0, 100), ("val.npz", 1, 30)), seed=11,
                          data={"batch_size": 16, "test": None},
                          model={"layers": None, "graph": GRAPH},
                          compile={"optimizer": {"Adam": {"learning_rate": 0.01}}}, fit={"epochs": 4})
    return train_ok(config, folder / "runs")


def test_graph_equals_a_hand_written_functional_script(graph_run: Path) -> None:
    assert_same_as_plain_script(graph_run, PLAIN_FUNCTIONAL, graph_run.parent.parent)


def test_graph_run_is_verified_and_reloads_everywhere(graph_run: Path, tmp_path: Path) -> None:
    verified = run_json(graph_run)["verified"]
    assert set(verified) == {"weights", "keras", "savedmodel", "h5"}
    assert all(v.startswith("ok") for v in verified.values()), verified
    assert run_cli("evaluate", graph_run).exit_code == 0
    for fmt in ("h5", "tflite"):
        result = run_cli("export", graph_run, "--format", fmt, "--output", tmp_path / f"m.{fmt}")
        assert result.exit_code == 0, result.stderr


def test_summary_shows_connections(graph_run: Path) -> None:
    text = (graph_run / "summary.txt").read_text()
    assert "Connected to" in text and "h1[0][0], drop[0][0]" in text and "again" not in text
    assert "again[0][0]" not in text and "h2[1][0], input[0][0]" in text


@pytest.mark.parametrize("graph, expected", [
    ([{"name": "a", "layer": "ReLU", "inputs": ["inptu"]}],
     "model.graph[0].inputs: 'inptu' is not a node (did you mean 'input'?)"),
    ([{"name": "a", "layer": "ReLU", "inputs": ["b"]}, {"name": "b", "layer": "ReLU"}],
     "model.graph[0].inputs: 'b' comes later: a node takes only earlier nodes, so a graph has no cycles"),
    ([{"name": "a", "layer": "ReLU"}, {"name": "a", "layer": "ReLU"}], "model.graph[1].name: node name 'a' is taken"),
    ([{"name": "a", "layer": "ReLU", "share": "input"}],
     "model.graph[0]: give exactly one of `layer` (a new layer) or `share`"),
    ([{"name": "a", "share": "b"}], "model.graph[0].share: 'b' is not a node"),
    ([{"name": "a", "layer": {"Dense": {"unit": 3}}}],
     "model.graph[0].Dense: unknown argument 'unit' (did you mean 'units'?)"),
])
def test_graph_mistakes_name_the_node(tmp_path: Path, graph: list, expected: str) -> None:
    config = tiny_project(tmp_path, model={"layers": None, "graph": graph})
    line = assert_user_error(run_cli("train", config, "--runs-dir", tmp_path / "runs"), expected)
    assert_user_error(run_cli("validate", config), expected)
    assert line.startswith(f"error: {config}:")
    assert not (tmp_path / "runs").exists()


def test_shape_mistakes_name_the_node_and_its_inputs(tmp_path: Path) -> None:
    graph = [{"name": "a", "layer": {"Dense": {"units": 8}}}, {"name": "b", "layer": {"Dense": {"units": 5}}},
             {"name": "sum", "layer": "Add", "inputs": ["a", "b"]}]
    config = tiny_project(tmp_path, model={"layers": None, "graph": graph})
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    line = assert_user_error(result, "model.graph[2]: ")
    assert "(its inputs: a (None, 8), b (None, 5))" in line
    config = tiny_project(tmp_path, model={"layers": None, "graph": graph[:2], "output": "c"})
    assert_user_error(run_cli("validate", config), "model.output: no node 'c'")


# ---- precision ----

@pytest.mark.parametrize("precision, optimizer", [("mixed_float16", "LossScaleOptimizer"),
                                                  ("mixed_bfloat16", "Adam")])
def test_mixed_precision_keeps_float32_outputs(tmp_path: Path, precision: str, optimizer: str) -> None:
    """Float32 outputs; the optimizer (with its loss scale under mixed_float16) reloads whole from model.keras."""
    import warnings

    warnings.simplefilter("error", UserWarning)   # e.g. "Skipping variable loading for optimizer"
    config = tiny_project(tmp_path, compile={"precision": precision}, fit={"epochs": 2})
    run_dir = train_ok(config, tmp_path / "runs")
    assert keras.config.dtype_policy().name == "float32"   # the global policy is put back
    assert all(v.startswith("ok") for v in run_json(run_dir)["verified"].values())
    model = keras.models.load_model(run_dir / "model.keras")
    assert model.layers[0].dtype_policy.name == precision and model.layers[-1].name == "float32_output"
    assert model(np.ones((1, 4), np.float32)).dtype == "float32" and type(model.optimizer).__name__ == optimizer
    graph = [{"name": "h", "layer": {"Dense": {"units": 4}}}, {"name": "out", "layer": {"Dense": {"units": 3}}}]
    config = tiny_project(tmp_path, model={"layers": None, "graph": graph}, compile={"precision": precision})
    graph_model = keras.models.load_model(train_ok(config, tmp_path / "graph-runs") / "model.keras")
    assert graph_model(np.ones((1, 4), np.float32)).dtype == "float32"


def test_precision_with_a_model_class_is_refused(tmp_path: Path) -> None:
    config = tiny_project(tmp_path, model={"layers": None, "class": "net.py:Net"},
                          compile={"precision": "mixed_float16"})
    (tmp_path / "net.py").write_text("import keras\n\nclass Net(keras.Model):\n    def call(self, x):\n"
                                     "        return x\n")
    assert_user_error(run_cli("train", config, "--runs-dir", tmp_path / "runs"),
                      "compile.precision: a mixed precision needs `layers` or `graph`")


# ---- warm starts ----

@pytest.fixture(scope="module")
def donor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("donor")
    return train_ok(tiny_project(folder, name="donor"), folder / "runs")


FROZEN = {"optimizer": {"SGD": {"learning_rate": 0.0}}}   # training changes nothing: what was loaded stays


@pytest.mark.parametrize("source", ["run", "model.keras", "model.weights.h5"])
def test_init_from_loads_an_earlier_model(donor: Path, tmp_path: Path, source: str) -> None:
    init_from = str(donor if source == "run" else donor / source)
    config = tiny_project(tmp_path, model={"init_from": init_from}, compile=FROZEN, fit={"epochs": 1})
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    assert "Warm start from" in result.stdout and "loaded" in result.stdout   # the title may wrap
    run_dir = next((tmp_path / "runs").iterdir())
    assert [entry[1] for entry in run_json(run_dir)["init_from"]["layers"]] == ["loaded", "loaded"]
    assert run_cli("evaluate", run_dir).exit_code == 0   # the saved config.yaml reads back
    ours = keras.models.load_model(run_dir / "model.keras").get_weights()
    assert_same_arrays(ours, keras.models.load_model(donor / "model.keras").get_weights(), atol=0)


def test_init_from_a_graph_matches_by_order_and_reports_mismatches(donor: Path, tmp_path: Path) -> None:
    graph = [{"name": "a", "layer": {"Dense": {"units": 5, "activation": "relu"}}},
             {"name": "b", "layer": {"Dense": {"units": 3}}}]
    config = tiny_project(tmp_path, model={"layers": None, "graph": graph, "init_from": str(donor)}, compile=FROZEN)
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    assert_user_error(result, "model.init_from: layer 'a': shapes differ: [(4, 5), (5,)] here, [(4, 8), (8,)]")
    assert "skip_mismatch: true" in result.stderr and not (tmp_path / "runs").exists()
    config = tiny_project(tmp_path, model={"layers": None, "graph": graph, "init_from": str(donor),
                                           "skip_mismatch": True}, compile=FROZEN)
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    assert_user_error(result, "model.init_from: no layer could be loaded")   # b then takes 5 inputs, not 8
    graph[0]["layer"]["Dense"]["units"] = 8
    config = tiny_project(tmp_path, model={"layers": None, "graph": graph, "init_from": str(donor)}, compile=FROZEN)
    run_dir = train_ok(config, tmp_path / "runs")
    layers = run_json(run_dir)["init_from"]["layers"]
    assert layers == [["a", "loaded", "from 'dense'"], ["b", "loaded", "from 'dense_1'"]]


def test_init_from_mistakes(tmp_path: Path) -> None:
    config = tiny_project(tmp_path, model={"init_from": "nowhere.keras"})
    for command in ("validate", "train"):
        assert_user_error(run_cli(command, config), f"model.init_from: not found: {tmp_path / 'nowhere.keras'}")


def test_a_frozen_layer_keeps_its_weights(donor: Path, tmp_path: Path) -> None:
    layers = [{"Dense": {"units": 8, "activation": "relu", "trainable": False}}, {"Dense": {"units": 3}}]
    config = tiny_project(tmp_path, model={"layers": layers, "init_from": str(donor)})
    assert run_cli("validate", config).exit_code == 0
    run_dir = train_ok(config, tmp_path / "runs")
    assert "Non-trainable params: 40" in (run_dir / "summary.txt").read_text()
    ours = keras.models.load_model(run_dir / "model.keras").get_weights()
    theirs = keras.models.load_model(donor / "model.keras").get_weights()
    assert_same_arrays(ours[:2], theirs[:2], atol=0)                     # frozen: as loaded
    assert not np.array_equal(ours[2], theirs[2])                        # trained


# ---- keras.applications backbones ----

BACKBONE = {"MobileNetV2": {"include_top": False, "weights": None, "pooling": "avg", "alpha": 0.35}}


def _backbone_config(tmp_path: Path, **backbone: object) -> Path:
    args = {**BACKBONE["MobileNetV2"], **backbone}
    return tiny_project(tmp_path, (("train.npz", 0, 8),), data={"source": "synthetic", "samples": 16, "classes": 3,
                                                                 "path": None, "validation": None, "test": None,
                                                                 "one_hot": True},
                        model={"input_shape": [32, 32, 3], "layers": [{"MobileNetV2": args}, {"Dense": {"units": 3}}]})


def test_an_applications_model_is_a_layer(tmp_path: Path) -> None:
    """Built (not trained: tracing MobileNetV2 costs ~40 s on 2 cores) with the input shape that reaches it."""
    config = _backbone_config(tmp_path)
    assert run_cli("validate", config).exit_code == 0
    result = run_cli("summary", config)
    assert result.exit_code == 0, result.stderr
    reference = keras.applications.MobileNetV2(input_shape=(32, 32, 3), **BACKBONE["MobileNetV2"])
    assert f"Total params: {reference.count_params() + 1280 * 3 + 3:,}" in result.stdout


def test_backbone_weights_from_a_local_file_and_offline_imagenet(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    donor = keras.applications.MobileNetV2(input_shape=(32, 32, 3), **BACKBONE["MobileNetV2"])
    donor.save_weights(tmp_path / "backbone.weights.h5")
    assert run_cli("summary", _backbone_config(tmp_path, weights="backbone.weights.h5")).exit_code == 0
    result = run_cli("validate", _backbone_config(tmp_path, weights="backbone.weights.h5", alpha_typo=1))
    assert_user_error(result, "model.layers[0].MobileNetV2: unknown argument 'alpha_typo'")

    def offline(fname: str, origin: str, **kwargs: object) -> str:
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.src.utils.file_utils, "get_file", offline)
    monkeypatch.setattr(keras.src.applications.mobilenet_v2.file_utils, "get_file", offline)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    result = run_cli("summary", _backbone_config(tmp_path, weights="imagenet"))
    line = assert_user_error(result, "model.layers[0].MobileNetV2: weights: imagenet needs mobilenet_v2_weights_tf")
    assert f"place it at {tmp_path / 'keras-home' / 'models'}/mobilenet_v2_weights_tf" in line


def test_summary_plot_says_what_it_needs_or_draws(tmp_path: Path) -> None:
    import importlib.util
    import shutil

    graph = [{"name": "a", "layer": {"Dense": {"units": 4}}}, {"name": "b", "layer": "Add", "inputs": ["a", "a"]}]
    config = tiny_project(tmp_path, model={"layers": None, "graph": graph})
    result = run_cli("summary", config, "--plot", tmp_path / "model.png")
    if importlib.util.find_spec("pydot") is None or shutil.which("dot") is None:
        line = assert_user_error(result, "--plot: drawing needs")
        assert "pip install pydot" in line or "apt-get install graphviz" in line
        pytest.skip("pydot or Graphviz is not installed: the hint was checked, the drawing was not")
    assert result.exit_code == 0 and (tmp_path / "model.png").stat().st_size > 0


# ---- freezing and two-phase fine-tuning ----

def test_a_frozen_backbone_and_freeze_up_to_show_in_the_summary(tmp_path: Path) -> None:
    result = run_cli("summary", _backbone_config(tmp_path, trainable=False))
    assert result.exit_code == 0, result.stderr
    assert "frozen" in result.stdout and f"Trainable params: {1280 * 3 + 3:,}" in result.stdout

    config = _backbone_config(tmp_path)
    raw = yaml.safe_load(config.read_text())
    raw["model"]["freeze_up_to"] = "block_13_expand"
    config.write_text(yaml.safe_dump(raw))
    result = run_cli("summary", config)
    assert result.exit_code == 0, result.stderr
    reference = keras.applications.MobileNetV2(input_shape=(32, 32, 3), **BACKBONE["MobileNetV2"])
    for layer in reference.layers:   # what a hand-written fine-tuning script does
        layer.trainable = False
        if layer.name == "block_13_expand":
            break
    trainable = sum(int(np.prod(w.shape)) for w in reference.trainable_weights) + 1280 * 3 + 3
    assert f"Trainable params: {trainable:,}" in result.stdout and "partly (" in result.stdout


def test_freeze_mistakes(tmp_path: Path) -> None:
    config = tiny_project(tmp_path, model={"freeze_up_to": "dens"})
    assert_user_error(run_cli("train", config, "--runs-dir", tmp_path / "runs"),
                      "model.freeze_up_to: no layer 'dens' (did you mean 'dense'?)")
    config = tiny_project(tmp_path, model={"freeze_up_to": "dense_1"})
    assert_user_error(run_cli("train", config, "--runs-dir", tmp_path / "runs"),
                      "model.freeze_up_to: every layer is frozen: nothing is left to train")
    layers = [{"Dense": {"units": 8, "trainable": False}}, {"Dense": {"units": 3, "trainable": False}}]
    assert_user_error(run_cli("train", tiny_project(tmp_path, model={"layers": layers}), "--runs-dir",
                              tmp_path / "runs"), "model: every layer is frozen")
    assert not (tmp_path / "runs").exists()


def test_two_phase_fine_tuning_with_init_from_latest(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    layers = [{"Dense": {"units": 8, "activation": "relu", "trainable": False}}, {"Dense": {"units": 3}}]
    phase1 = train_ok(tiny_project(tmp_path, name="phase1", model={"layers": layers}), runs)
    (tmp_path / "phase2.yaml").write_text(yaml.safe_dump({
        "extends": "config.yaml", "name": "phase2",
        "model": {"layers": [{"Dense": {"units": 8, "activation": "relu"}}, {"Dense": {"units": 3}}],
                  "init_from": "latest:phase1", "freeze_up_to": "dense"},
        "compile": {"optimizer": {"Adam": {"learning_rate": 0.0001}}}}))
    phase2 = train_ok(tmp_path / "phase2.yaml", runs)
    saved = yaml.safe_load((phase2 / "config.yaml").read_text())["model"]
    assert saved["init_from"] == str(phase1.resolve()) and saved["freeze_up_to"] == "dense"
    first, second = (keras.models.load_model(r / "model.keras").get_weights() for r in (phase1, phase2))
    assert_same_arrays(second[:2], first[:2], atol=0)   # still frozen in phase 2
    assert not np.array_equal(second[2], first[2])      # the head trained on
    assert run_cli("evaluate", phase2).exit_code == 0
    raw = yaml.safe_load((tmp_path / "phase2.yaml").read_text())
    raw["model"]["init_from"] = "latest:phase0"
    (tmp_path / "phase2.yaml").write_text(yaml.safe_dump(raw))
    assert_user_error(run_cli("train", tmp_path / "phase2.yaml", "--runs-dir", runs),
                      f"model.init_from: no completed run named 'phase0' under {runs}")


def test_backbone_input_too_small_names_the_layer(tmp_path: Path) -> None:
    config = _backbone_config(tmp_path)
    raw = yaml.safe_load(config.read_text())
    raw["model"]["input_shape"] = [16, 16, 3]
    config.write_text(yaml.safe_dump(raw))
    assert_user_error(run_cli("summary", config), "model.layers[0].MobileNetV2: Input size must be at least 32x32")


def test_the_fine_tuning_examples_validate_and_phase_2_needs_phase_1(tmp_path: Path) -> None:
    for name in ("mobilenet_frozen.yaml", "mobilenet_finetune.yaml"):
        assert run_cli("validate", REPO / "configs" / name).exit_code == 0
    result = run_cli("summary", REPO / "configs" / "mobilenet_finetune.yaml", "--runs-dir", tmp_path)
    assert_user_error(result, f"model.init_from: no completed run named 'mobilenet-frozen' under {tmp_path}")
