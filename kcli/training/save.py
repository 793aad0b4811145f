"""What a run directory keeps besides checkpoints: the config, code and summary before fit; after it the best
weights (--keep-best), the test metrics and the final artifacts, each loaded back and checked against the model."""

from __future__ import annotations

import time
from pathlib import Path

import keras

from kcli import events
from kcli.config import dump as config_dump
from kcli.config import model_io as ports_mod
from kcli.data import fingerprint
from kcli.data.python_source import Stream
from kcli.errors import ExportFailed, TrainingFailed
from kcli.files import atomic
from kcli.model import build as model_mod
from kcli.model import outputs as outputs_mod
from kcli.run import artifacts, layout, records, state, trust, verify
from kcli.training.fit import stream_failures
from kcli.training.prepare import Prepared


def write_run_files(prep: Prepared, run_dir: Path, record: records.RunRecord, summary_text: str,
                    listener: events.Listener) -> None:
    """config.yaml (resolved), code/, summary.txt and what run.json records of the data and the warm start."""
    atomic.write_text(run_dir / layout.CONFIG, config_dump.dump(prep.cfg))
    record.update(imports={"files": layout.copy_code(run_dir, prep.registry.sources), "modules": prep.registry.modules},
                  features=prep.splits.train.columns if prep.splits else None,  # CSV column names, for predict
                  classes=prep.splits.class_names if prep.splits else None,   # image folders: names by class id
                  data_files=fingerprint.fingerprints(prep.cfg.data),   # resume and evaluate notice changed data
                  init_from={"source": prep.cfg.model.init_from, "layers": prep.warm} if prep.warm else None,
                  overrides=prep.loaded.overrides)
    atomic.write_text(run_dir / layout.SUMMARY, summary_text)
    problem = trust.remember([run_dir / f for f in record.data["imports"]["files"]], prep.registry.modules)
    if problem:
        listener(events.Warn(problem))


def finish_model(model: keras.Model, prep: Prepared, run_dir: Path, record: records.RunRecord, keep_best: bool,
                 listener: events.Listener, chief: bool = True) -> None:
    """--keep-best, test metrics (every worker of a cluster takes part), final artifacts (the chief only)."""
    splits = prep.splits
    assert splits is not None
    best = run_dir / state.CHECKPOINTS / state.BEST_WEIGHTS
    if keep_best and best.is_file():
        model.load_weights(best)
        listener(events.Note(f"restored the best weights ({record.data['best']['monitor']} = "
                             f"{record.data['best']['value']:.4f} at epoch {record.data['best']['epoch']})"))
    elif keep_best:
        listener(events.Note("--keep-best: nothing was monitored (no validation data and no fit.checkpoint.monitor)"
                             "; keeping the last weights"))
    if splits.test is not None:
        with stream_failures(prep, run_dir):
            metrics = (outputs_mod.evaluate(model, splits.test.dataset, None, None) if isinstance(splits.test, Stream)
                       else outputs_mod.evaluate(model, splits.test.x, splits.test.y, prep.cfg.data.batch_size,
                                               splits.test.w))
        records.write_json(run_dir / layout.METRICS, metrics)
        listener(events.Metrics("Test metrics", metrics))
    if not chief:
        return
    started = time.perf_counter()
    ports = ports_mod.of(prep.cfg.model, prep.cfg.data)
    written = artifacts.save_model(model, run_dir, list(prep.cfg.save or []), ports)
    saved = time.perf_counter()
    verified = _verify_artifacts(model, prep, run_dir, written, listener)
    record.update(artifacts=written, verified=verified, save_seconds=round(saved - started, 3),
                  verify_seconds=round(time.perf_counter() - saved, 3))


def _verify_artifacts(model: keras.Model, prep: Prepared, run_dir: Path, written: dict[str, str],
                      listener: events.Listener) -> dict[str, str]:
    """Load every artifact back with its own runtime and compare its outputs with the live model's on real
    rows; a run is only "completed" when they agree (or, for a .keras/.h5 that Keras cannot deserialize, when
    the weights can stand in for it)."""
    splits = prep.splits
    assert splits is not None
    real = next(a.x for a in (splits.test, splits.validation, splits.train) if a is not None)
    x = verify.samples(ports_mod.of(prep.cfg.model, prep.cfg.data), real)
    expected = verify.reference(model, x)
    custom = prep.registry.classes
    compute = verify.compute_dtype(model)
    report: dict[str, str] = {}
    for fmt, name in written.items():
        try:
            diff = verify.check(fmt, run_dir / name, x, expected, custom,
                                lambda: model_mod.rebuild(prep.cfg, prep.registry), compute)
        except verify.NotReloadable as exc:
            fallback = ("kcli evaluate/predict/export rebuild the model from config.yaml, code/ and "
                        "model.weights.h5 instead" if "weights" in written else
                        "and `save` has no weights to rebuild it from: add weights to `save`")
            hint = verify.not_reloadable_hint(model, custom)
            listener(events.Warn(f"{name} cannot be reloaded by Keras ({exc}). Fix {hint}; {fallback}"))
            report[fmt] = f"not reloadable: {exc}"
            continue
        except ExportFailed as exc:
            raise TrainingFailed(f"a saved artifact does not reproduce the trained model: {exc}") from None
        report[fmt] = f"ok: outputs within {diff:.1g} on {ports_mod.rows(x)} rows"
    return report
