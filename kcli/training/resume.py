"""Where training begins: a new run directory at epoch 0, or `--resume`: an interrupted run's own config, code and
saved state, refused when the config or the data changed since."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kcli import events
from kcli.config import dump as config_dump
from kcli.config import loading as config_mod
from kcli.config import resolve as resolve_mod
from kcli.config.models import Config
from kcli.data import fingerprint
from kcli.distributed import strategy as distribute
from kcli.errors import RunError
from kcli.run import artifacts, find, layout, records, state, trust
from kcli.training import checkpoints
from kcli.training.prepare import STREAM_CACHE, Prepared, prepare


@dataclass
class Start:
    """Where training begins: epoch 0 of a new run, or the saved state of an interrupted one."""

    run_dir: Path
    record: records.RunRecord
    epoch: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, Any] | None = None


def new_run(prep: Prepared, runs_dir: Path, name: str) -> Start:
    """A fresh run directory under `runs_dir` for epoch 0."""
    run_dir = layout.new_run_dir(runs_dir, name)
    return Start(run_dir, records.RunRecord.start(run_dir, name, prep.cfg.seed))


def resume(path: Path | None, overrides: list[str] | None, ref: str, runs_dir: Path, allow_data_change: bool,
           listener: events.Listener = events.ignore, trust_code: bool = False) -> tuple[Prepared, Start]:
    """Rebuild the run's model from its saved config and load the state of its last completed epoch."""
    run_dir = find.find_run(ref, runs_dir, "--resume", resumable=True)
    record = state.resumable_record(run_dir)
    if path is not None or overrides:
        _same_config(path or run_dir / layout.CONFIG, overrides, config_mod.load(run_dir / layout.CONFIG).config)
    changed = fingerprint.changed_files(record.get("data_files") or {})
    if changed and not allow_data_change:
        raise RunError(f"the data changed since this run started: {', '.join(changed)}; continuing would train "
                       "on other data. Restore the files, or pass --allow-data-change to continue on the new "
                       "contents", key="--resume")
    # the run's config.yaml is data like any run file: it runs the run's own trusted code/, nothing it names else
    saved = config_dump.mapping(config_mod.load(run_dir / layout.CONFIG).config)
    lock = trust.run_lock(run_dir, record, trust_code, saved)
    prep = prepare(run_dir / layout.CONFIG, warm=False, stream_cache=run_dir.parent / STREAM_CACHE, lock=lock,
                   listener=listener)
    if changed:
        listener(events.Warn(f"continuing on changed data: {', '.join(changed)} (--allow-data-change)"))
        record["data_files"] = fingerprint.fingerprints(prep.cfg.data)
    with distribute.scope(prep.cfg.distribute):   # the optimizer's variables are made here, distributed
        # before anything is removed: a refusal loses nothing
        saved_state = checkpoints.load_state(run_dir, prep.model)
    state.remove_partial_files(run_dir)
    artifacts.remove_final_artifacts(run_dir)   # written by a process that died before it could verify them
    epoch = int(saved_state["epoch"])
    rows = [r for r in records.read_history(run_dir) if r.get("epoch", 0) <= epoch]
    return prep, Start(run_dir, records.RunRecord.resume(run_dir, record, epoch), epoch, rows, saved_state)


def _same_config(path: Path, overrides: list[str] | None, saved: Config) -> None:
    """Refuse to resume with a config that differs from the run's (naming the keys that differ)."""
    loaded = config_mod.load(path, overrides)
    mine = resolve_mod.resolve(loaded)
    if loaded.config.seed is None:
        mine.seed = saved.seed
    if loaded.config.name is None:
        mine.name = saved.name
    if mine.data.one_hot is True and isinstance(saved.data.one_hot, int):
        mine.data.one_hot = saved.data.one_hot   # the saved config records the inferred class count
    if mine.fit.class_weight == "balanced" and isinstance(saved.fit.class_weight, dict):
        mine.fit.class_weight = saved.fit.class_weight   # ... and the counted class weights
    differ = config_dump.differences(mine, saved)
    if differ:
        shown = ", ".join(f"{k}: {theirs!r} -> {mine!r}" for k, (theirs, mine) in list(differ.items())[:6])
        raise RunError(f"the config differs from the run's saved config (run's -> yours: {shown}); resume "
                       "without CONFIG to use the run's own, or start a new run", key="--resume")


def private_copy(run_dir: Path, tmp: Path) -> Path:
    """A worker's own copy of the run it resumes with the others (the chief alone writes the original)."""
    copy = tmp / run_dir.name
    # links stay links: followed, a code/ link (or a model.keras link) out of the run would pass as the run's own
    shutil.copytree(run_dir, copy, symlinks=True, ignore=shutil.ignore_patterns(".tmp-*"))
    record = records.load_record(copy, "--resume")
    record["status"] = "interrupted"   # the chief has marked the original running by now
    records.write_json(copy / layout.RUN_JSON, record)
    return copy
