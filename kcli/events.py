"""What kcli tells its caller while it works: plain records, no drawing.

The API and every stage below it report progress by calling a `Listener` with one of these events; they never
draw. The CLI's listener (kcli.output.display.Display) turns each event into Rich output; a notebook or a server
can pass its own function, or nothing (`ignore`), and read the returned results instead. Events carry data as
it is (names from a file stay data); drawing decides how to show it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class Event:
    """Base of everything a Listener receives."""


Listener = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The listener that drops every event (the API's default)."""


@dataclass(frozen=True)
class Collected:
    """A listener that keeps every event, in order (for tests and notebooks)."""

    events: list[Event] = field(default_factory=list)

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Event]) -> list[Any]:
        """The events of one type, in order."""
        return [e for e in self.events if isinstance(e, kind)]


@dataclass(frozen=True)
class Note(Event):
    """A side remark (dim on a terminal)."""

    message: str


@dataclass(frozen=True)
class Warn(Event):
    """Something the user should know that does not stop the work."""

    message: str


@dataclass(frozen=True)
class DataColumns(Event):
    """The columns of a table source and how each is used."""

    columns: Sequence[Any]


@dataclass(frozen=True)
class ConfigLines(Event):
    """Resolved config keys and values worth showing before training."""

    lines: Sequence[tuple[str, str]]


@dataclass(frozen=True)
class ModelSummaryReady(Event):
    """The built model's summary (a kcli.model.summary.ModelSummary; typed loosely so this module stays low)."""

    summary: Any
    variables: bool = False


@dataclass(frozen=True)
class WarmStart(Event):
    """What model.init_from loaded into each layer: (layer, outcome, detail) rows."""

    source: str
    outcomes: Sequence[tuple[str, str, str]]


@dataclass(frozen=True)
class TrainingStarted(Event):
    """fit begins: `epochs` in all, `steps` batches per epoch (None when unknown), resuming after `initial_epoch`."""

    epochs: int
    steps: int | None
    initial_epoch: int = 0


@dataclass(frozen=True)
class EpochBegin(Event):
    """Epoch `epoch` (0-based) starts."""

    epoch: int


@dataclass(frozen=True)
class BatchEnd(Event):
    """Batch `step` (0-based) ended with running averages `logs`."""

    step: int
    logs: Mapping[str, float]


@dataclass(frozen=True)
class EpochEnd(Event):
    """Epoch `epoch` (0-based) ended with its final `logs` (val_* where validation ran)."""

    epoch: int
    logs: Mapping[str, float]


@dataclass(frozen=True)
class TrainingEnded(Event):
    """fit returned or stopped (the progress display closes)."""


@dataclass(frozen=True)
class History(Event):
    """The training history: one row per epoch with the given columns."""

    rows: Sequence[Mapping[str, Any]]
    columns: Sequence[str]


@dataclass(frozen=True)
class Metrics(Event):
    """A titled set of metric values (test metrics, evaluate's results)."""

    title: str
    values: Mapping[str, float]


@dataclass(frozen=True)
class PerClass(Event):
    """Precision, recall and support of each class."""

    rows: Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class Predictions(Event):
    """predict's preview rows, the count per class, and where the predictions went."""

    preview: Sequence[tuple[Any, Any, Any, Any]]
    counts: Mapping[int, int]
    rows: int
    note: str
    label: str | None
    output: Path | str | None   # a URL (s3://...) when written to object storage
    show_rows: bool


@dataclass(frozen=True)
class Exported(Event):
    """An export was written to `path` and checked on `samples` inputs with max |difference| `diff`."""

    format: str
    path: Path | str   # a URL (s3://...) when written to object storage
    samples: int
    diff: float


@dataclass(frozen=True)
class RunFolder(Event):
    """Where the run was written and how it ended."""

    path: Path
    status: str


@dataclass(frozen=True)
class ConfigChecked(Event):
    """`validate` found the config at `path` valid: `verdict` says what was checked."""

    path: Path
    verdict: str


@dataclass(frozen=True)
class Error(Event):
    """A fatal problem said as it ends the work (a cluster that never came up, a worker that had to be killed)."""

    message: str
