"""Everything kcli draws: tables, progress and errors, through Rich. No other module prints.

On a terminal this draws boxes and live progress; when stdout is not a terminal (CI logs, pipes)
it prints ASCII tables and one plain line per epoch.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.markup import escape as _escape_markup
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from kcli import events
from kcli.errors import visible

if TYPE_CHECKING:
    from kcli.model.summary import ModelSummary
    from kcli.sweep.search import SweepTable


def text(value: Any) -> str:
    """Anything that came from data (a file, a label, a config, a message quoting them) as Rich-safe text:
    never markup, never a control character."""
    return _escape_markup(visible(value))


def _fmt(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


class Display:
    """The terminal: stdout for results, stderr for errors."""

    def __init__(self, out: Console | None = None, err: Console | None = None) -> None:
        # emoji off: `:smile:` in a class name is data, not a picture
        self.out = out or Console(highlight=False, emoji=False)
        self.err = err or Console(stderr=True, highlight=False, emoji=False)
        if out is None and not self.out.is_terminal and "COLUMNS" not in os.environ:
            self.out.width = 150  # logs and pipes: room for wide tables instead of Rich's 80 columns
        self._progress: TrainingProgress | None = None   # between TrainingStarted and TrainingEnded

    def __call__(self, event: events.Event) -> None:
        """Draw one event of the API (kcli.events): the CLI passes the Display as the API's listener."""
        if isinstance(event, events.TrainingStarted):
            self._progress = TrainingProgress(self, event.epochs, event.steps, event.initial_epoch)
            self._progress.start()
        elif isinstance(event, (events.EpochBegin, events.BatchEnd, events.EpochEnd, events.TrainingEnded)):
            self._on_progress(event)
        else:
            _DRAW[type(event)](self, event)

    def _on_progress(self, event: events.Event) -> None:
        progress = self._progress
        if progress is None:
            return
        if isinstance(event, events.EpochBegin):
            progress.epoch_begin(event.epoch)
        elif isinstance(event, events.BatchEnd):
            progress.batch_end(event.step, event.logs)
        elif isinstance(event, events.EpochEnd):
            progress.epoch_end(event.epoch, event.logs)
        else:
            progress.stop()
            self._progress = None

    @property
    def live(self) -> bool:
        """Whether stdout is an interactive terminal (boxes, colours, live progress)."""
        return self.out.is_terminal

    def _table(self, title: str | None = None) -> Table:
        shown = text(title) if title is not None else None   # titles quote names (model, source, sweep)
        return Table(title=shown, box=box.ROUNDED if self.live else box.ASCII, title_justify="left")

    def error(self, message: str) -> None:
        """One red line on stderr (a message that spans lines is joined into one)."""
        line = " ".join(part.strip() for part in message.splitlines() if part.strip())
        self.err.print(f"[bold red]error:[/] {text(line)}", soft_wrap=True)

    def warning(self, message: str) -> None:
        """One yellow line on stderr: something the user should know, not an error."""
        line = " ".join(part.strip() for part in message.splitlines() if part.strip())
        self.err.print(f"[bold yellow]warning:[/] {text(line)}", soft_wrap=True)

    def note(self, message: str) -> None:
        """A dim informational line."""
        self.out.print(f"[dim]{text(message)}[/]", soft_wrap=True)

    def data_columns(self, columns: Sequence[Any]) -> None:
        """What `kcli init --data` found: each column (or class folder), its kind and range."""
        table = self._table("Columns found")
        for name in ("column", "kind", "values"):
            table.add_column(name)
        for column in columns:
            table.add_row(text(column.name), text(column.kind), text(column.detail))
        self.out.print(table)

    def config(self, lines: Sequence[tuple[str, str]]) -> None:
        """The resolved config, short: one `key  value` line each."""
        table = Table.grid(padding=(0, 2))
        for key, value in lines:
            table.add_row(f"[bold]{text(key)}[/]", text(value))
        self.out.print(table)

    def summary(self, summary: ModelSummary, variables: bool = False) -> None:
        """The model summary table (and the trainable variables)."""
        self.out.print(self._summary_table(summary))
        self.out.print(_totals(summary))
        if variables:
            self.out.print(self._variables_table(summary))

    def _summary_table(self, summary: ModelSummary) -> Table:
        table = self._table(f'Model: "{summary.name}"')
        table.add_column("Layer (type)")
        table.add_column("Output Shape")
        table.add_column("Param #", justify="right")
        graph = any(row.connected for row in summary.rows)
        if graph:
            table.add_column("Connected to")
        frozen = any(row.frozen for row in summary.rows)
        if frozen:
            table.add_column("Trainable")
        for row in summary.rows:
            cells = [text(f"{row.name} ({row.kind})"), text(row.output_shape), f"{row.params:,}"]
            cells += [text(row.connected or "-")] if graph else []
            cells += [text(row.frozen or "yes")] if frozen else []
            table.add_row(*cells)
        return table

    def _variables_table(self, summary: ModelSummary) -> Table:
        table = self._table("Trainable variables")
        table.add_column("Variable")
        table.add_column("Shape")
        for path, shape, trainable in summary.variables:
            if trainable:
                table.add_row(text(path), str(shape))
        return table

    def history(self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
        """One row per epoch; validation cells empty on epochs without validation."""
        table = self._table("History")
        for col in columns:
            table.add_column(col, justify="right")
        for row in rows:
            table.add_row(*(_fmt(row.get(c)) for c in columns))
        self.out.print(table)

    def metrics(self, title: str, values: Mapping[str, float]) -> None:
        """A two-column table of metric values."""
        table = self._table(title)
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key, value in values.items():
            table.add_row(text(key), _fmt(float(value)))
        self.out.print(table)

    def predictions(self, preview: Sequence[tuple[Any, Any, Any, Any]], counts: Mapping[int, int], rows: int,
                    note: str, label: str | None, output: Path | str | None, show_rows: bool) -> None:
        """The first predictions (when not written to a file), counts per class, and where they went."""
        if show_rows:
            self.out.print(f"[bold]Predictions[/]: first {len(preview)} of {rows:,} ({text(note)})", soft_wrap=True)
            table = self._table()
            table.add_column("row", justify="right")
            if label is not None:
                table.add_column(text(label), justify="right")
            classifier = bool(preview) and preview[0][1] is not None
            if classifier:
                table.add_column("predicted", justify="right")
                table.add_column("probability", justify="right")
            table.add_column("outputs")
            for i, (lab, cls, prob, raw) in enumerate(preview):
                cells = [str(i)] + ([f"{float(lab):g}" if lab is not None else ""] if label is not None else [])
                cells += [text(cls), _fmt(prob)] if classifier else []
                values = " ".join(f"{float(v):.4g}" for v in raw[:8]) + (" ..." if len(raw) > 8 else "")
                table.add_row(*cells, values)
            self.out.print(table)
        if counts:
            table = self._table("Predicted classes")
            table.add_column("class", justify="right")
            table.add_column("count", justify="right")
            table.add_column("share", justify="right")
            for cls, n in sorted(counts.items()):
                table.add_row(text(cls), f"{n:,}", f"{n / max(rows, 1):.1%}")
            self.out.print(table)
        if output is not None:
            what = note if str(output).lower().endswith(".csv") else "raw model outputs"
            self.out.print(f"[green]wrote {rows:,} predictions:[/] {text(str(output))}  ({text(what)})",
                           soft_wrap=True)

    def compare(self, first: str, second: str, differ: Mapping[str, tuple[Any, Any]],
                rows: Sequence[tuple[str, float | None, float | None]]) -> None:
        """`kcli compare`: the config keys that differ, then the numbers with their difference."""
        table = self._table("Config differences")
        for col in ("key", first, second):
            table.add_column(text(col))
        for key, (a, b) in differ.items():
            table.add_row(text(key), text("" if a is None else str(a)), text("" if b is None else str(b)))
        if differ:
            self.out.print(table)
        else:
            self.note("the configs are the same (apart from the name)")
        table = self._table("Numbers")
        table.add_column("value")
        for col in (first, second, "second - first"):
            table.add_column(text(col), justify="right")
        for key, a, b in rows:
            delta = f"{b - a:+.4f}" if a is not None and b is not None else ""
            table.add_row(text(key), _fmt(a), _fmt(b), delta)
        self.out.print(table)

    def per_class(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Precision and recall of each class (from the confusion matrix)."""
        table = self._table("Per class")
        for col in ("class", "precision", "recall", "support"):
            table.add_column(col, justify="right")
        for row in rows:
            table.add_row(text(row["class"]), _fmt(row["precision"]), _fmt(row["recall"]), str(row["support"]))
        self.out.print(table)

    def exported(self, fmt: str, path: Path | str, samples: int, diff: float) -> None:
        """Where an export went and how it was checked."""
        self.out.print(f"[green]exported {fmt}:[/] {text(str(path))}", soft_wrap=True)
        self.note(f"checked: reloaded with its own runtime, {samples} inputs, max |difference| {diff:.2g}")

    def run_dir(self, path: Path, status: str) -> None:
        """Where the run was written."""
        colour = "green" if status == "completed" else "yellow"
        self.out.print(f"[{colour}]run {status}:[/] {text(str(path))}", soft_wrap=True)

    def yaml(self, text: str) -> None:
        """A YAML document, highlighted on a terminal, verbatim elsewhere."""
        if self.live:
            from rich.syntax import Syntax
            self.out.print(Syntax(text, "yaml", background_color="default"))
        else:
            self.out.print(text, markup=False, highlight=False, end="", soft_wrap=True)

    def warm_start(self, source: str, outcomes: Sequence[tuple[str, str, str]]) -> None:
        """What model.init_from loaded into each layer, and what it skipped and why."""
        table = self._table(f"Warm start from {source}")
        for column in ("layer", "", "detail"):
            table.add_column(column, overflow="fold")
        for layer, status, detail in outcomes:
            table.add_row(text(layer), f"[green]{status}[/]" if status == "loaded" else f"[yellow]{status}[/]",
                          text(detail))
        self.out.print(table)

    def origins(self, rows: Sequence[tuple[str, Any, str]]) -> None:
        """The resolved config, one value per row, with the file and line (or --set, or default) it came from:
        a table on a terminal, `key: value  # origin` lines elsewhere (for grep)."""
        if not self.live:
            for key, value, origin in rows:
                shown = json.dumps(value) if not isinstance(value, str) else value
                self.out.print(visible(f"{key}: {shown}  # {origin}"), markup=False, highlight=False, soft_wrap=True)
            return
        table = self._table("Resolved config")
        for column in ("key", "value", "from"):
            table.add_column(column, overflow="fold")
        for key, value, origin in rows:
            table.add_row(text(key), text(json.dumps(value) if not isinstance(value, str) else value),
                          text(origin))
        self.out.print(table)

    def runs(self, rows: Sequence[Sequence[str]]) -> None:
        """The table of `kcli runs`."""
        table = self._table("Runs")
        for col in ("run", "status", "epochs", "best validation", "test", "age"):
            table.add_column(col, justify="right" if col in ("epochs", "age") else "left")
        colours = {"completed": "green", "failed": "red", "interrupted": "yellow", "running": "cyan"}
        for run, status, *rest in rows:
            table.add_row(text(run), f"[{colours.get(status, 'white')}]{text(status)}[/]", *map(text, rest))
        self.out.print(table)

    def sweep(self, sweep: SweepTable) -> None:
        """The table of `kcli sweep show`: one row per trial, the best one marked."""
        name, metric, direction, rows, best = sweep.name, sweep.metric, sweep.direction, sweep.rows, sweep.best
        table = self._table(f"Sweep {name}: {direction} {metric}")
        keys = list(dict.fromkeys(k for row in rows for k in row["params"]))
        for col in ("trial", "state", *keys, metric, "seconds", "run"):
            table.add_column(text(col), justify="right" if col not in ("state", "run") else "left")
        colours = {"complete": "green", "pruned": "yellow", "fail": "red", "running": "cyan"}
        for row in rows:
            mark = " *" if row["trial"] == best else ""
            params = [f"{v:.4g}" if isinstance(v, float) else text(str(v if v is not None else ""))
                      for v in (row["params"].get(k) for k in keys)]
            seconds = f"{row['seconds']:.1f}" if row["seconds"] is not None else ""
            table.add_row(f"{row['trial']}{mark}", f"[{colours.get(row['state'], 'white')}]{text(row['state'])}[/]",
                          *params, _fmt(row["value"]), seconds, text(row["run"]))
        self.out.print(table)
        if best is None:
            self.note("no trial has completed yet")
            return
        self.out.print(f"[green]best: trial {best}[/] (*); its config: {text(str(sweep.best_file))}", soft_wrap=True)


class TrainingProgress:
    """Live epoch/step bars with running metrics on a terminal; one line per epoch elsewhere."""

    def __init__(self, display: Display, epochs: int, steps: int | None, initial_epoch: int = 0) -> None:
        self.display = display
        self.epochs = epochs
        self.steps = steps
        self.last_val: dict[str, float] = {}
        self._epoch_start = time.monotonic()
        self._bar: Progress | None = None
        if display.live:
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                 TextColumn("{task.fields[metrics]}"), console=display.out,
                                 refresh_per_second=10)
            self._epoch_task = self._bar.add_task("epoch", total=epochs, completed=initial_epoch, metrics="")
            self._step_task = self._bar.add_task("step ", total=steps, metrics="")

    def start(self) -> None:
        """Show the bars (a terminal only)."""
        if self._bar is not None:
            self._bar.start()

    def stop(self) -> None:
        """Take the bars down (training ended or stopped)."""
        if self._bar is not None:
            self._bar.stop()

    def epoch_begin(self, epoch: int) -> None:
        """Epoch `epoch` (0-based) starts."""
        self._epoch_start = time.monotonic()
        if self._bar is not None:
            self._bar.update(self._step_task, completed=0, description=f"step  (epoch {epoch + 1}/{self.epochs})")

    def batch_end(self, step: int, logs: Mapping[str, float]) -> None:
        """Batch `step` (0-based) ended with running averages `logs` (cheap: the bar redraws itself)."""
        if self._bar is not None:
            self._bar.update(self._step_task, completed=step + 1, metrics=_line(logs))

    def epoch_end(self, epoch: int, logs: Mapping[str, float]) -> None:
        """Epoch `epoch` (0-based) ended with final `logs` (val_* only where validation ran)."""
        self.last_val.update({k: v for k, v in logs.items() if k.startswith("val_")})
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        if self._bar is not None:
            self._bar.update(self._epoch_task, completed=epoch + 1, metrics=_line(self.last_val))
            self._bar.update(self._step_task, metrics=_line(train))
            return
        seconds = time.monotonic() - self._epoch_start
        self.display.out.print(f"epoch {epoch + 1}/{self.epochs}  {_line(logs)}  ({seconds:.1f}s)",
                               soft_wrap=True, highlight=False)


def _line(logs: Mapping[str, float]) -> str:
    return "  ".join(f"{text(k)} {_fmt(float(v))}" for k, v in logs.items())


def _totals(summary: ModelSummary) -> str:
    return (f" Total params: {summary.total:,}\n"
            f" Trainable params: {summary.trainable:,}\n"
            f" Non-trainable params: {summary.non_trainable:,}")


_DRAW: dict[type[events.Event], Callable[[Display, Any], None]] = {
    events.Note: lambda d, e: d.note(e.message),
    events.Warn: lambda d, e: d.warning(e.message),
    events.DataColumns: lambda d, e: d.data_columns(e.columns),
    events.ConfigLines: lambda d, e: d.config(e.lines),
    events.ModelSummaryReady: lambda d, e: d.summary(e.summary, e.variables),
    events.WarmStart: lambda d, e: d.warm_start(e.source, e.outcomes),
    events.History: lambda d, e: d.history(e.rows, e.columns),
    events.Metrics: lambda d, e: d.metrics(e.title, e.values),
    events.PerClass: lambda d, e: d.per_class(e.rows),
    events.Predictions: lambda d, e: d.predictions(e.preview, e.counts, e.rows, e.note, e.label, e.output,
                                                   e.show_rows),
    events.Exported: lambda d, e: d.exported(e.format, e.path, e.samples, e.diff),
    events.RunFolder: lambda d, e: d.run_dir(e.path, e.status),
    events.ConfigChecked: lambda d, e: d.note(f"{e.path}: {e.verdict}"),
    events.Error: lambda d, e: d.error(e.message),
}
