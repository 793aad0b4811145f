"""The model files of a run: written in a bug-safe order with room checked first, and the run's code that
loading them may use.

Keras 3.15's .h5 save strips the optimizer from the live model (keras-team/keras PR 23475), so everything
else is written before model.h5. Loading them back (model/load.py) may need the model rebuilt from its config.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kcli.files import atomic
from kcli.run.find import FinishedRun
from kcli.run.layout import ARTIFACTS, METRICS

if TYPE_CHECKING:
    import keras

    from kcli.config.code import Registry
    from kcli.config.model_io import Ports


# HDF5 writers (h5py, under save_weights and .keras/.h5) crash the process at exit when the disk fills
# mid-write (a segfault in h5py's object cleanup), so kcli checks for room before starting one.
HEADROOM = 64 << 10


def ensure_space(folder: Path, needed: int) -> None:
    """Raise ENOSPC (naming `folder`) unless its disk has `needed` bytes plus some headroom free."""
    free = shutil.disk_usage(folder).free
    if free < needed + HEADROOM:
        raise OSError(errno.ENOSPC, f"No space left on device: {free:,} bytes free, about "
                                    f"{needed + HEADROOM:,} needed", str(folder))


def model_bytes(model: keras.Model) -> int:
    """The size of every model and optimizer variable: what a weights or .keras file roughly holds."""
    variables = [*model.variables, *(getattr(model.optimizer, "variables", None) or [])]
    return sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize for v in variables)


def save_model(model: keras.Model, run_dir: Path, formats: list[str],
               ports: Ports) -> dict[str, str]:
    """Write the requested model artifacts (atomically, in bug-safe order); returns format -> file name."""
    written: dict[str, str] = {}
    for fmt, name in ARTIFACTS.items():
        if fmt not in formats:
            continue
        ensure_space(run_dir, model_bytes(model) * (3 if fmt == "savedmodel" else 1))
        with atomic.target(run_dir / name) as tmp:
            save_model_file(model, fmt, tmp, ports)
        written[fmt] = name
    return written


def save_model_file(model: keras.Model, fmt: str, path: Path, ports: Ports) -> None:
    """Write one artifact (weights / keras / savedmodel / h5) exactly at `path`."""
    if fmt == "weights":
        model.save_weights(path)
    elif fmt == "keras":
        model.save(path)
    elif fmt == "savedmodel":
        _export_savedmodel(model, path, ports)
    elif fmt == "h5":
        with quiet_absl():  # Keras logs a "legacy format" warning on every .h5 save
            model.save(path)
    else:
        raise ValueError(f"unknown format {fmt}")


def _export_savedmodel(model: keras.Model, path: Path, ports: Ports) -> None:
    """What model.export(format="tf_saved_model") writes (endpoints serve and serving_default, batch dimension
    None), but traced with training=False: Keras's own export leaves augmentation layers (RandomFlip, ...)
    random at inference. Named inputs: `serve` takes a dict of tensors by input name."""
    import keras

    specs = {p.name: keras.InputSpec(shape=(None, *p.shape), dtype=p.dtype) for p in ports.inputs}
    signature = specs if ports.named else specs[ports.inputs[0].name]
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", lambda x: model(x, training=False), input_signature=[signature])
    archive.write_out(str(path), verbose=False)


@contextlib.contextmanager
def quiet_absl() -> Iterator[None]:
    """Keras logs through absl: a legacy-format warning on every .h5 save, and on every load of a compiled
    model that its metrics are not built yet. Neither is news to a kcli user."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def remove_final_artifacts(run_dir: Path) -> None:
    """The model files and test metrics of a run that did not complete (a kill while they were written):
    never verified, so a resumed run writes them again."""
    for name in [*ARTIFACTS.values(), METRICS]:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def run_registry(run: FinishedRun) -> Registry:
    """The run's code in a registry locked to it (see trust.py), imported once per opened run."""
    from kcli.config import dump as config_mod
    from kcli.run import trust

    if run.registry is None:
        raw = config_mod.mapping(run.config)
        run.registry = trust.run_registry(run.path, run.record, run.trust_code, raw)
    return run.registry


def custom_objects(run: FinishedRun) -> dict[str, type]:
    """The classes of the code the run copied into code/ (and the modules it imported), by name; only code
    that may run (see trust.py)."""
    return run_registry(run).classes
