"""The Keras-argument rules kcli.config.keras_rules owns for both `kcli validate` (no TensorFlow) and the model
build (kcli.model): name look-up order, key paths, metric kinds, messages; and keras_names' live signatures."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from kcli.config import keras_rules as rules
from kcli.config.keras_names import Signature, live_function_signature, live_signature
from kcli.config.models import GraphNode, Spec
from kcli.errors import ConfigError
from tests.conftest import REPO


def test_the_rules_load_without_tensorflow() -> None:
    probe = ("import sys, kcli.config.keras_names, kcli.config.keras_rules; "
             "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(("name", "loose", "expected"), [
    ("my_layers.py:MyDense", False, ("file", "my_layers.py:MyDense")),
    ("Dense", False, ("keras", "Dense")),
    ("MyDense", False, ("user", "MyDense")),
    ("adam", True, ("keras", "Adam")),
    ("adam", False, None),
    ("mean_squared_error", True, ("keras", "MeanSquaredError")),
    ("Dence", True, None),
])
def test_names_are_found_in_one_order(name: str, loose: bool, expected: tuple[str, str] | None) -> None:
    keras_classes = ["Dense", "Adam", "MeanSquaredError"]
    assert rules.find(name, keras_classes, {"MyDense": object}, loose) == expected


def test_a_keras_class_wins_over_a_user_class_of_the_same_name() -> None:
    assert rules.find("Dense", ["Dense"], ["Dense"]) == ("keras", "Dense")


def test_key_paths() -> None:
    assert rules.layer_key(2, "/abs/my_layers.py:MyDense") == "model.layers[2].MyDense"
    assert rules.node_key(0, "Dense") == "model.graph[0].Dense"
    assert rules.optimizer_key(Spec.of("Adam")) == "compile.optimizer"
    assert rules.optimizer_key(Spec.of("Adam", {"learning_rate": 0.1})) == "compile.optimizer.Adam"
    assert rules.loss_key(Spec.of("mse")) == "compile.loss"
    assert rules.loss_key(Spec.of("Huber", {"delta": 2}), "price") == "compile.loss.price.Huber"
    assert rules.metric_key(1) == "compile.metrics[1]"
    assert rules.metric_key(0, "price") == "compile.metrics.price[0]"


def test_a_graph_node_names_its_layer_unless_the_arguments_do() -> None:
    node = GraphNode(name="h1", layer=Spec.of("Dense", {"units": 4}))
    assert rules.node_spec(node) == Spec.of("Dense", {"name": "h1", "units": 4})
    assert rules.node_spec(node, {"dtype": "float32"}).args == {"name": "h1", "dtype": "float32", "units": 4}
    named = GraphNode(name="h1", layer=Spec.of("Dense", {"units": 4, "name": "mine"}))
    assert rules.node_spec(named).args["name"] == "mine"


def test_a_learning_rate_schedule_is_a_spec_under_its_own_key() -> None:
    assert rules.schedule_of({"learning_rate": 0.01}, "compile.optimizer.Adam") is None
    spec, key = rules.schedule_of({"learning_rate": {"ExponentialDecay": {"decay_steps": 10}}}, "k") or (None, "")
    assert spec == Spec.of("ExponentialDecay", {"decay_steps": 10}) and key == "k.learning_rate"


def test_which_metrics_are_classes() -> None:
    assert not rules.metric_is_class(Spec.of("accuracy"), [])
    assert rules.metric_is_class(Spec.of("AUC", {"curve": "PR"}), [])
    assert rules.metric_is_class(Spec.of("m.py:MyMetric"), [])
    assert rules.metric_is_class(Spec.of("MyMetric"), ["MyMetric"])


def test_trainable_of_an_application_is_kcli_s() -> None:
    assert rules.application_args({"weights": None, "trainable": False}) == ({"weights": None}, False)
    assert rules.application_args({"alpha": 0.5}) == ({"alpha": 0.5}, True)


def test_unknown_names_say_what_and_suggest() -> None:
    error = rules.unknown("layer", "Dence", ["Dense", "Conv2D"], "model.layers[0].Dence", rules.LAYER_HINT)
    assert str(error) == ("model.layers[0].Dence: unknown layer 'Dence' (did you mean 'Dense'?); layers come from "
                          "keras.layers or from `imports`")
    assert str(rules.unknown_model_class("Nett", "model.class")) == (
        "model.class: unknown model class 'Nett': name it as file.py:Class or module:Class, or list its file under "
        "`imports`")


def test_signature_names_the_first_unknown_then_the_first_missing_argument() -> None:
    sig = Signature(frozenset({"units", "activation"}), ("units",))
    sig.check({"units": 3, "activation": "relu"}, "k")
    with pytest.raises(ConfigError, match=r"^k: unknown argument 'unitz' \(did you mean 'units'\?\)$"):
        sig.check({"unitz": 3}, "k")
    with pytest.raises(ConfigError, match=r"^k: missing required argument 'units'$"):
        sig.check({"activation": "relu"}, "k")
    Signature(None, ()).check({"anything": 1}, "k")


class _Base:
    def __init__(self, name: str | None = None, **kwargs: Any) -> None:
        pass


class _Child(_Base):
    def __init__(self, units: int, *, use_bias: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)


class _Closed:
    def __init__(self, a: int, b: int = 0) -> None:
        pass


# Layer ends the chain of accepted names and adds the legacy ones it takes through **kwargs.
_FakeLayer = type("Layer", (), {"__init__": lambda self, name=None, **kwargs: None,
                                "__module__": "keras.src.layers.layer"})
_OnLayer = type("OnLayer", (_FakeLayer,), {"__init__": lambda self, rate, **kwargs: None})


def test_live_signatures_follow_the_init_chain() -> None:
    assert live_signature(_Child) == Signature({"units", "use_bias", "name"}, ["units"])
    assert live_signature(_Closed) == Signature({"a", "b"}, ["a"])
    assert live_signature(_OnLayer) == Signature({"rate", "name", "input_dim", "input_shape"}, ["rate"])
    assert live_signature(_Base).accepted == {"name"}   # **kwargs reaching object: nothing more accepted


def test_live_function_signatures() -> None:
    def model(include_top: bool = True, weights: str | None = "imagenet", *, classes: int = 1000) -> None: ...

    def open_ended(x: int, **kwargs: Any) -> None: ...

    assert live_function_signature(model) == Signature(frozenset({"include_top", "weights", "classes"}), ())
    assert live_function_signature(open_ended) == Signature(None, ())
