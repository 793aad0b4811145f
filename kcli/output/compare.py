"""Several runs side by side: `kcli plot RUN [RUN ...]` draws their curves (or a sweep's trials), and
`kcli compare RUN RUN` lists how their configs and their numbers differ. Reads run directories only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kcli.config import loading as config_mod
from kcli.config.dump import differences
from kcli.config.keras_names import higher_is_better
from kcli.config.suggest import did_you_mean
from kcli.errors import DataError, RunError
from kcli.output.display import Display
from kcli.run import find, layout, pictures, records


def _history(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / layout.HISTORY_JSON
    rows = records.read_json(path)
    if rows is None:
        raise RunError(f"cannot read {path}: it is missing, unreadable or not JSON", key="RUN")
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


def _histories(found: list[Path]) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Each run's history, and the runs without a readable one (a run that failed in its first epoch): those
    are left out of a plot of the others, an error only when no run has one."""
    histories, unread = {}, []
    for run in found:
        try:
            histories[run.name] = _history(run)
        except RunError:
            if len(found) == 1 or (run is found[-1] and not histories):
                raise
            unread.append(run.name)
    return histories, unread


def plot(refs: list[str], runs_dir: Path, metric: str | None, output: Path | None, display: Display) -> Path:
    """One picture: the runs' curves of `metric` (default val_loss when every run has it, else loss), or for a
    sweep folder its metric per trial and each parameter against it."""
    from kcli.sweep import record as sweep_record

    if len(refs) == 1 and sweep_record.is_sweep(refs[0], runs_dir):
        return _plot_sweep(sweep_record.find(refs[0], runs_dir), output, display)
    found = [find.find_run(ref, runs_dir) for ref in refs]
    histories, unread = _histories(found)
    logged = sorted({k for rows in histories.values() for row in rows for k in row if k != "epoch"})
    metric = metric or ("val_loss" if all(any("val_loss" in r for r in rows) for rows in histories.values())
                        else "loss")
    if metric not in logged:
        raise DataError(f"no run logged {metric!r}{did_you_mean(metric, logged)}; logged: {', '.join(logged)}",
                        key="--metric")
    series = {name: [(r["epoch"], r[metric]) for r in rows if r.get(metric) is not None]
              for name, rows in histories.items()}
    target = output or Path(f"plot-{metric}.png")
    _check_target(target)
    drawn = {name: points for name, points in series.items() if points}
    if not drawn:   # logged as empty only (e.g. validation never ran)
        raise DataError(f"no run logged a value of {metric!r}", key="--metric")
    lacking = [name for name in series if name not in drawn]
    if lacking:   # the picture counts and draws only the runs that logged it; the others are named here
        display.warning(f"{', '.join(lacking)} did not log {metric!r}: not drawn")
    if unread:
        display.warning(f"{', '.join(unread)} has no readable {layout.HISTORY_JSON} (no epoch finished?): not drawn")
    pictures.overlay(drawn, metric, target, f"{metric} of {len(drawn)} run{'s' if len(drawn) > 1 else ''}")
    display.note(f"written: {target}")
    return target


def _plot_sweep(folder: Path, output: Path | None, display: Display) -> Path:
    from kcli.sweep import record as sweep_record

    spec, study = sweep_record.results(folder)   # read-only: a received sweep.json opens nothing elsewhere
    trials = study.get_trials(deepcopy=False)
    metric = spec["metric"]
    values = [(t.number, t.value) for t in trials]
    params = {key: [(t.params[key], t.value) for t in trials if key in t.params and t.value is not None]
              for key in spec["parameters"]}
    target = output or folder / "sweep.png"
    _check_target(target)
    log = [k for k, p in spec["parameters"].items() if p.get("log")]
    pictures.sweep(values, params, metric, target, f"sweep {spec['name']}: {metric} ({spec['direction']})", log)
    display.note(f"written: {target}")
    return target


def _check_target(target: Path) -> None:
    if target.suffix.lower() != ".png":
        raise DataError(f"{target}: pictures are written as .png", key="--output")
    if not target.parent.is_dir():
        raise DataError(f"the folder {target.parent} does not exist; create it first", key="--output")


def compare(first: str, second: str, runs_dir: Path, display: Display) -> None:
    """Config differences key by key, then every number both runs report: last epoch, best, test metrics."""
    a, b = (find.find_run(ref, runs_dir) for ref in (first, second))
    configs = []
    for run in (a, b):
        try:
            configs.append(config_mod.load(run / layout.CONFIG).config)
        except Exception as exc:  # a damaged config.yaml: say which run
            raise RunError(f"{run / layout.CONFIG} cannot be read: {exc}", key="RUN") from None
    differ = differences(configs[1], configs[0])
    differ.pop("name", None)
    numbers = {"a": _numbers(a), "b": _numbers(b)}
    keys = sorted(numbers["a"].keys() | numbers["b"].keys())
    rows = [(k, numbers["a"].get(k), numbers["b"].get(k)) for k in keys]
    display.compare(a.name, b.name, differ, rows)


def _numbers(run: Path) -> dict[str, float]:
    """`last <value>` of the final epoch, `best <value>` over the epochs, `test <metric>` of metrics.json."""
    rows = _history(run)
    out: dict[str, float] = {}
    if rows:
        for key, value in rows[-1].items():
            if key != "epoch" and isinstance(value, (int, float)):
                out[f"last {key}"] = float(value)
        for key in {k for r in rows for k in r if k != "epoch"}:
            values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
            if values:
                out[f"best {key}"] = float(max(values) if higher_is_better(key) else min(values))
        out["epochs"] = float(len(rows))
    metrics = records.read_json(run / layout.METRICS)
    if isinstance(metrics, dict):
        for key, value in metrics.items():
            if isinstance(value, (int, float)):
                out[f"test {key}"] = float(value)
    record = records.load_record(run, "RUN")
    if isinstance(record.get("epoch_seconds"), list) and record["epoch_seconds"]:
        out["seconds per epoch"] = sum(record["epoch_seconds"]) / len(record["epoch_seconds"])
    return out
