"""A sweep's folder record, SWEEP/sweep.json: written by the sweep command (a later run of the same sweep must
search the same space), and read back, as a received file, to show or draw a sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kcli.errors import ConfigError, RunError
from kcli.run import records
from kcli.sweep.spec import DB, SPEC, Sweep
from kcli.sweep.study import load_study


def write_record(sw: Sweep) -> None:
    """sweep.json: the sweep's spec; a folder holding another sweep (other config, space or storage) is refused."""
    spec = {"name": sw.name, "config": str(sw.config), "config_sha256": sw.config_sha256, "overrides": sw.overrides,
            "storage": sw.storage, "direction": sw.direction,
            "sweep": sw.spec.model_dump(mode="json", exclude={"trials"})}
    path = sw.folder / SPEC
    if path.is_file():
        before = records.read_json(path)
        if not isinstance(before, dict):
            raise ConfigError(f"{path} is damaged (not a JSON object); move {sw.folder} away to start the sweep "
                              "over", key="sweep")
        if {k: v for k, v in before.items() if k != "trials"} != spec:
            changed = [{"config_sha256": "config (its contents changed)"}.get(k, k) for k in spec
                       if before.get(k) != spec[k]]
            raise ConfigError(f"{sw.folder} holds a sweep with a different {', '.join(changed)}; give this one "
                              "another sweep.name (only the number of trials may change)", key="sweep")
    sw.folder.mkdir(parents=True, exist_ok=True)
    records.write_json(path, {**spec, "trials": sw.trials})


def is_sweep(ref: str, runs_dir: Path) -> bool:
    """Whether `ref` names a sweep folder (itself, or under runs_dir)."""
    return _found(ref, runs_dir) is not None


def find(ref: str, runs_dir: Path) -> Path:
    """The sweep folder `ref` names (a folder, or a sweep's name under runs_dir)."""
    found = _found(ref, runs_dir)
    if found is None:
        raise RunError(f"no sweep {ref!r} (looked for {SPEC} in {ref} and {runs_dir / ref})", key="SWEEP")
    return found


def _found(ref: str, runs_dir: Path) -> Path | None:
    return next((c for c in (Path(ref), runs_dir / ref) if (c / SPEC).is_file()), None)


def results(folder: Path, storage: str | None = None) -> tuple[dict[str, Any], Any]:
    """A sweep folder's record and its study, for showing and drawing: read-only (see _folder_storage) unless
    `storage` is the sweep command's own."""
    spec = _read_spec(folder)
    return spec, load_study(spec["name"], storage or _folder_storage(folder, spec["name"], spec["storage"]), folder)


def _read_spec(folder: Path) -> dict[str, Any]:
    """What showing needs from SWEEP/sweep.json (a received file: each value checked to be what it should be):
    name, storage, direction, metric (texts) and parameters (key -> its spec)."""
    path = folder / SPEC
    try:
        raw = records.read_json(path)
        found = {"name": raw["name"], "storage": raw["storage"], "direction": raw["direction"],
                 "metric": raw["sweep"]["metric"]}
        parameters = raw["sweep"]["parameters"]
    except (OSError, ValueError, KeyError, TypeError):
        found, parameters = {}, None
    if not found or not all(isinstance(v, str) for v in found.values()) or not isinstance(parameters, dict) \
            or not all(isinstance(v, dict) for v in parameters.values()):
        raise RunError(f"{path} is not a kcli sweep record (name, storage, direction, sweep.metric, "
                       "sweep.parameters)", key="SWEEP")
    return {**found, "parameters": parameters}


def _folder_storage(folder: Path, name: str, recorded: str) -> str:
    """A read-only URL of SWEEP/sweep.db. Only a sweep whose study lives in its folder can be shown from the folder:
    a storage URL recorded elsewhere is refused, never opened (a received sweep.json must not make kcli create or
    write a database anywhere)."""
    from urllib.parse import quote

    if not (recorded.startswith("sqlite:///") and recorded.endswith(f"/{name}/{DB}")):
        raise RunError(f"{folder / SPEC} keeps the study at {recorded!r}, not in {folder}; `kcli sweep show` opens "
                       f"only {folder / DB}: run `kcli sweep CONFIG` with the sweep's config to see it", key="SWEEP")
    db = (folder / DB).resolve()
    if not db.is_file():
        raise RunError(f"{db} is missing: the sweep's study is not in its folder", key="SWEEP")
    return f"sqlite:///file:{quote(str(db))}?mode=ro&uri=true"
