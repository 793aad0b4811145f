"""A finished run's model loaded back: model.keras (Keras's safe_mode on, only the run's trusted code), or, when
Keras cannot deserialize it (a custom class without get_config), the model rebuilt from config.yaml with
model.weights.h5 loaded into it."""

from __future__ import annotations

import zipfile
from typing import TYPE_CHECKING

from kcli.errors import RunError, first_line
from kcli.files import readable
from kcli.run.artifacts import quiet_absl, run_registry
from kcli.run.find import FinishedRun
from kcli.run.layout import ARTIFACTS, CONFIG

if TYPE_CHECKING:
    import keras


def load_model(run: FinishedRun) -> keras.Model:
    """model.keras with Keras's safe_mode on and the run's custom classes; when model.keras cannot be
    deserialized (a custom class without get_config), the model rebuilt from config.yaml + code/ with
    model.weights.h5 loaded into it."""
    import keras

    artifacts = run.record.get("artifacts") or {}
    registry = run_registry(run)
    classes = registry.classes
    problem = f"run {run.path} has no model.keras (its config's `save` left it out)"
    why = readable.problem(run.path / ARTIFACTS["keras"], run.path)   # never a FIFO or a file outside the run
    if "keras" in artifacts and why is not None:
        problem = f"cannot load {run.path / ARTIFACTS['keras']}: it {why}"
    elif "keras" in artifacts and not zipfile.is_zipfile(run.path / ARTIFACTS["keras"]):
        # Keras says "File not found" for any file that is not a zip archive, which hides the real reason
        problem = f"cannot load {run.path / ARTIFACTS['keras']}: it cannot be read as a Keras model (not a .keras zip)"
    elif "keras" in artifacts:
        try:
            with quiet_absl():
                model = keras.models.load_model(run.path / ARTIFACTS["keras"], custom_objects=classes,
                                                safe_mode=True)
            run.loaded_from = ARTIFACTS["keras"]
            return model
        except Exception as exc:  # Keras raises TypeError/ValueError/... for missing classes or bad files
            problem = f"cannot load {run.path / ARTIFACTS['keras']}: {first_line(exc)}"
    if "weights" not in artifacts:
        raise RunError(problem, key="RUN")
    why = readable.problem(run.path / ARTIFACTS["weights"], run.path)
    if why is not None:
        raise RunError(f"{problem}; and {run.path / ARTIFACTS['weights']} {why}", key="RUN")
    from kcli.model import build as model_mod  # Keras and the data stage, only when model.keras cannot serve

    try:
        model = model_mod.rebuild(run.config, registry)
        model.load_weights(run.path / ARTIFACTS["weights"])
    except Exception as exc:  # a damaged weights file, or code that no longer builds
        raise RunError(f"{problem}; rebuilding from {CONFIG} and {ARTIFACTS['weights']} failed too: "
                       f"{first_line(exc)}", key="RUN") from None
    run.loaded_from = f"{CONFIG} + {ARTIFACTS['weights']}"
    return model
