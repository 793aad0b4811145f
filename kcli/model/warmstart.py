"""`model.init_from`: start from an earlier model's weights ("re-create the network, then load_weights").

The source is a run directory (its model.keras), a .keras file or a .weights.h5 file. Layers are matched by
name; when no name matches (a model built anew names its layers anew), by order among the layers that hold
weights. Each match either loads, or, when a weight's shape differs, fails (or is skipped with
`skip_mismatch: true`); the result is a list the train command shows and records.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import keras
import numpy as np

from kcli.errors import ConfigError

KEY = "model.init_from"
Outcome = tuple[str, str, str]   # (layer, "loaded" | "skipped", from where or why)


def warm_start(model: keras.Model, source: str, skip_mismatch: bool, classes: dict[str, type]) -> list[Outcome]:
    """Copy matching layers' weights from `source` into `model`; returns one outcome per layer with weights."""
    donor = _donor(Path(source), model, classes)
    targets = [layer for layer in _flat(model) if layer.weights]
    donors = {layer.name: layer for layer in _flat(donor) if layer.weights}
    pairs = [(t, donors[t.name]) for t in targets if t.name in donors]
    if not pairs:   # fall back to order
        pairs = list(zip(targets, [layer for layer in _flat(donor) if layer.weights]))
    if not pairs:
        raise ConfigError(f"{source} has no layer with weights that matches this model's layers", key=KEY)
    outcomes = [_copy(target, found, skip_mismatch) for target, found in pairs]
    paired = {id(t) for t, _ in pairs}
    outcomes += [(t.name, "skipped", "no matching layer in the source") for t in targets if id(t) not in paired]
    if not any(status == "loaded" for _, status, _ in outcomes):
        raise ConfigError(f"no layer could be loaded from {source} (shapes differ everywhere)", key=KEY)
    return outcomes


def _flat(model: keras.Model) -> list[keras.layers.Layer]:
    return list(model._flatten_layers(include_self=False, recursive=True))


def _donor(path: Path, model: keras.Model, classes: dict[str, type]) -> keras.Model:
    from kcli.config.check import init_source

    path = init_source(path)
    try:
        if path.name.endswith(".weights.h5"):
            donor = keras.models.clone_model(model)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # the file's optimizer state: a warm start takes weights only
                donor.load_weights(path)
            return donor
        if path.suffix == ".keras":
            return keras.models.load_model(path, custom_objects=classes, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises ValueError/TypeError/... for files that do not fit
        text = " ".join(str(exc).split())[:240] or type(exc).__name__
        raise ConfigError(f"cannot read {path}: {text}", key=KEY) from None
    raise ConfigError(f"{path}: expected a run directory, a .keras or a .weights.h5 file", key=KEY)


def _copy(target: keras.layers.Layer, donor: keras.layers.Layer, skip_mismatch: bool) -> Outcome:
    ours, theirs = target.get_weights(), donor.get_weights()
    shapes = [(np.shape(a), np.shape(b)) for a, b in zip(ours, theirs)]
    if len(ours) != len(theirs) or any(a != b for a, b in shapes):
        why = (f"shapes differ: {[s for s, _ in shapes]} here, {[np.shape(b) for b in theirs]} in "
               f"{donor.name!r}")
        if not skip_mismatch:
            raise ConfigError(f"layer {target.name!r}: {why}; set model.skip_mismatch: true to skip it", key=KEY)
        return target.name, "skipped", why
    target.set_weights(theirs)
    return target.name, "loaded", f"from {donor.name!r}"
