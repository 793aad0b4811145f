"""The JSON Schema of a kcli config, for editors (VS Code's YAML extension completes and checks with it).

One source of truth: the pydantic models in models.py give the structure, descriptions and defaults; the names
of Keras layers, optimizers, losses, metrics and callbacks, and each class's constructor arguments where its
source settles them, come from keras_names.py (read from Keras's source, no TensorFlow). Your own classes
(`imports`) are names the schema cannot know, so any identifier is accepted as a name; a Keras class's
arguments are checked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kcli.config import keras_names
from kcli.config.models import Config

SCHEMA_FILE = Path(__file__).with_name("config.schema.json")   # shipped; `kcli schema` writes the same
SCHEMA_ID = "https://github.com/kcli-keras/kcli/config.schema.json"
# An identifier, a dotted module path or a file reference, optionally with `:Class` (your own classes).
_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-/\\]*(:[A-Za-z_][A-Za-z0-9_]*)?$"


def schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a config file."""
    out = Config.model_json_schema(by_alias=True, mode="validation")
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    out["$id"] = SCHEMA_ID
    out["title"] = "kcli config"
    out["properties"]["extends"] = {
        "description": "Config file(s) this one builds on, relative to this file: mappings merge, lists are "
                       "replaced, this file wins.",
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}
    defs = out["$defs"]
    _describe(out, defs)
    defs.pop("Spec", None)
    defs["LayerSpec"] = _spec("layers", "A layer of keras.layers (or your own): `Name` or `Name: {arguments}`.")
    defs["OptimizerSpec"] = _spec("optimizers", "An optimizer: `adam`, or `Adam: {learning_rate: 0.001}`.")
    defs["LossSpec"] = _spec("losses", "A loss: `mse`, or `CategoricalCrossentropy: {from_logits: true}`.")
    defs["MetricSpec"] = _spec("metrics", "A metric: `accuracy`, or `AUC: {name: auc}`.")
    defs["CallbackSpec"] = _spec("callbacks", "A callback: `TerminateOnNaN`, or `EarlyStopping: {patience: 3}`.")
    _point(defs["ModelConfig"]["properties"]["layers"], "LayerSpec")
    _point(defs["GraphNode"]["properties"]["layer"], "LayerSpec")
    _point(defs["CompileConfig"]["properties"]["optimizer"], "OptimizerSpec")
    _point(defs["CompileConfig"]["properties"]["loss"], "LossSpec")
    _point(defs["CompileConfig"]["properties"]["metrics"], "MetricSpec")
    _point(defs["FitConfig"]["properties"]["callbacks"], "CallbackSpec")
    defs["KerasLayerSpec"] = _strict(defs["LayerSpec"])
    defs["KerasCallbackSpec"] = _strict(defs["CallbackSpec"])
    # Without `imports` every name must be Keras's own (or a `file.py:Class` reference).
    out["allOf"] = [{
        "if": {"anyOf": [{"not": {"required": ["imports"]}}, {"properties": {"imports": {"maxItems": 0}}}]},
        "then": {"properties": {
            "model": {"properties": {
                "layers": {"items": {"$ref": "#/$defs/KerasLayerSpec"}},
                "graph": {"items": {"properties": {"layer": {"$ref": "#/$defs/KerasLayerSpec"}}}}}},
            "fit": {"properties": {"callbacks": {"items": {"$ref": "#/$defs/KerasCallbackSpec"}}}}}},
    }]
    return out


def _describe(top: dict[str, Any], defs: dict[str, Any]) -> None:
    """Field descriptions from the comments beside (or just above) each field in models.py: the comments
    that explain a default there are what an editor shows on hover, so they are written once."""
    for (cls, fld), comment in field_comments().items():
        holder = top if cls == "Config" else defs.get(cls)
        prop = (holder or {}).get("properties", {}).get("class" if fld == "class_" else fld)
        if prop is not None and "description" not in prop:
            prop["description"] = comment


def field_comments() -> dict[tuple[str, str], str]:
    """(class, field) -> its comment in models.py: the trailing one, else the block of lines right above."""
    import ast
    import inspect

    from kcli.config import models as config_mod

    source = inspect.getsource(config_mod).splitlines()
    found: dict[tuple[str, str], str] = {}
    for node in ast.parse("\n".join(source)).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for item in node.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                text = _comment_of(source, item.lineno - 1)
                if text:
                    found[(node.name, item.target.id)] = text
    return found


def _comment_of(lines: list[str], index: int) -> str:
    line = lines[index]
    if "  # " in line:
        return line.split("  # ", 1)[1].strip()
    above: list[str] = []
    while index > 0 and lines[index - 1].strip().startswith("#"):
        index -= 1
        above.insert(0, lines[index].strip().lstrip("#").strip())
    return " ".join(above)


def text() -> str:
    """The schema as the JSON text kcli ships and `kcli schema` prints."""
    return json.dumps(schema(), indent=1, sort_keys=False) + "\n"


def _point(prop: dict[str, Any], name: str) -> None:
    """Replace every reference to Spec under `prop` (an item, or the value itself) with `name`."""
    for key, value in list(prop.items()):
        if key == "$ref" and value.endswith("/Spec"):
            prop[key] = f"#/$defs/{name}"
        elif isinstance(value, dict):
            _point(value, name)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    _point(item, name)


def _spec(package: str, description: str) -> dict[str, Any]:
    names = sorted(keras_names.classes(package))
    loose = sorted(keras_names.aliases(package) - {"class_name", "config"})
    by_name: dict[str, Any] = {}
    for name, (module, attr) in sorted(keras_names.public(package).items()):
        if name in names:
            by_name[name] = _arguments(keras_names.signature_of(module, attr))
    if package == "layers":   # a keras.applications model is a layer too (kcli adds `trainable`)
        for name, (module, attr) in sorted(keras_names.applications().items()):
            sig = keras_names.function_signature(module, attr)
            accepted = None if sig.accepted is None else sig.accepted | {"trainable"}
            by_name[name] = _arguments(keras_names.Signature(accepted, sig.required))
        names = sorted([*names, *keras_names.applications()])
    return {
        "description": description,
        "anyOf": [
            {"type": "string", "enum": names + loose},
            {"type": "string", "pattern": _NAME_PATTERN},
            {"type": "object", "minProperties": 1, "maxProperties": 1, "properties": by_name,
             "propertyNames": {"pattern": _NAME_PATTERN},
             "additionalProperties": {"type": ["object", "null"]}},
        ],
    }


def _strict(spec: dict[str, Any]) -> dict[str, Any]:
    """A spec that takes only Keras's own names, or `file.py:Class` references."""
    names, _, mapping = spec["anyOf"]
    ref = {"type": "string", "pattern": r":[A-Za-z_][A-Za-z0-9_]*$"}
    return {"anyOf": [names, ref, {**mapping, "propertyNames": {"anyOf": [{"enum": names["enum"]}, ref]},
                                   "additionalProperties": {"type": ["object", "null"]}}]}


def _arguments(signature: keras_names.Signature) -> dict[str, Any]:
    """A Keras class's constructor arguments as an object schema (open when its source does not settle them)."""
    if signature.accepted is None:
        return {"type": ["object", "null"]}
    accepted = sorted(signature.accepted | ({"lr"} if "learning_rate" in signature.accepted else set()))
    return {"type": ["object", "null"], "properties": {a: {} for a in accepted}, "additionalProperties": False}
