"""`kcli init --data FILE.csv|.parquet --label COL` (or `--data FOLDER` of images): a working config for your data.

The column kinds are inferred from the file (every row is read, in blocks: numbers, categories, free text, empty
cells) and
written into the config as `data.columns`, so they can be checked and edited; the model is a sensible start:
the inputs kcli builds from the columns, two hidden layers, and the head and loss the label asks for.
TensorFlow-free (it only reads the file).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kcli.config.schema import SCHEMA_FILE
from kcli.data import csv_reader, tables
from kcli.data.column_stats import looks_like_text
from kcli.data.images import images_in
from kcli.errors import DataError, visible
from kcli.files import readable, remote
from kcli.files.atomic import write_text

MAX_CLASS_IDS = 20   # whole-number labels with at most this many distinct values are taken as class ids


@dataclass
class Column:
    name: str
    kind: str     # number | category | text | label: class names | label: class ids | label: numbers
    detail: str   # range, or values / classes
    missing: int = 0   # empty cells


def describe_csv(path: Path, label: str | None) -> list[Column]:
    """Every column's kind: numbers, categories, free text, the label; empty cells counted. The file (CSV or
    Parquet) is read as training reads it (pyarrow: the same names, the same empty cells) in blocks, so memory
    stays bounded."""
    header = _header(path)
    if label is None or label not in header:
        raise DataError(f"{path} has the columns {', '.join(header)}; name the label column with --label "
                        "(what the model should predict)", key="--label")
    tables.check_input_names([name for name in header if name != label], path, "--data")
    tallies = {name: _Tally() for name in header}
    rows = 0
    for block in _blocks(path, header):
        for name, tally in tallies.items():
            empty = tally.add(block.column(name))
            if name == label and empty is not None:
                raise DataError(f"{path}: data row {rows + empty + 1}: the label {name!r} is empty; every row needs "
                                "a label (drop those rows)", key="--label")
        rows += block.num_rows
    if rows == 0:
        raise DataError(f"{path} needs a header line and at least one row", key="--data")
    columns = []
    for name, tally in tallies.items():
        if name == label:
            columns.append(_label(name, tally, path))
        elif not tally.present:
            raise DataError(f"{path}: column {name!r} is empty in every row; drop it", key="--data")
        elif not tally.numbers and tally.is_text():
            columns.append(Column(name, "text", tally.text_detail(), tally.missing))
        elif not tally.numbers:
            shown = sorted(tally.values)
            count = f"more than {MAX_VALUES}" if tally.more else str(len(shown))
            detail = f"{count} values: {', '.join(shown[:5])}{', ...' if len(shown) > 5 else ''}"
            columns.append(Column(name, "category", detail, tally.missing))
        else:
            columns.append(Column(name, "number", f"{tally.low:g} .. {tally.high:g}", tally.missing))
    return columns


MAX_VALUES = 10_000   # distinct values remembered per column: memory stays bounded on any file
BLOCK_BYTES = csv_reader.CSV_BLOCK_BYTES   # bytes of CSV parsed per block (larger blocks: more memory, no faster)
BLOCK_ROWS = 65_536   # Parquet rows per block
TEXT_SAMPLE = 10_000   # filled cells of a column (its first) on which looks_like_text judges text vs category
PARQUET = (".parquet", ".pq")


@dataclass
class _Tally:
    """What the rows said about one column so far."""

    present: int = 0
    missing: int = 0
    numbers: bool = True   # every present cell is a number
    low: float = float("inf")
    high: float = float("-inf")
    values: set[str] = field(default_factory=set)   # up to MAX_VALUES distinct present values
    more: bool = False   # there were more
    sample: list[str] = field(default_factory=list)   # the first TEXT_SAMPLE filled cells

    def add(self, column: Any) -> int | None:
        """Count a block of the column (text, empty cells null); the index of its first empty cell, if any."""
        import pyarrow as pa
        import pyarrow.compute as pc

        nulls = column.null_count
        present = pc.drop_null(column)
        self.missing += nulls
        self.present += len(present)
        if self.numbers and len(present):
            try:
                bounds = pc.min_max(pc.cast(present, pa.float64()))
                self.low = min(self.low, bounds["min"].as_py())
                self.high = max(self.high, bounds["max"].as_py())
                self.numbers = math.isfinite(self.low) and math.isfinite(self.high)
            except pa.ArrowInvalid:   # a cell that is not a number
                self.numbers = False
        if not self.more:
            self.values.update(str(v) for v in pc.unique(present).to_pylist())
            if len(self.values) > MAX_VALUES:
                self.values, self.more = set(sorted(self.values)[:MAX_VALUES]), True
        if not self.numbers and len(self.sample) < TEXT_SAMPLE:   # copied out: no block of the file stays held
            self.sample.extend(present.slice(0, TEXT_SAMPLE - len(self.sample)).to_pylist())
        if not nulls:
            return None
        return int(pc.index(pc.is_null(column), True).as_py())


    def is_text(self) -> bool:
        """Free text rather than a category, by the one rule training uses (judged on the sample)."""
        return bool(self.sample) and looks_like_text(self.sample)

    def text_detail(self) -> str:
        """How many distinct texts; how long on average (over the sample: a whole 2 GB file's words cost seconds)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        sample = pa.array(self.sample, pa.string())
        characters = pc.mean(pc.utf8_length(sample)).as_py()
        words = pc.mean(pc.list_value_length(pc.utf8_split_whitespace(sample))).as_py()
        count = f"more than {MAX_VALUES}" if self.more else str(len(self.values))
        return f"{count} distinct; {characters:.0f} characters, {words:.1f} words on average"


def _header(path: Path) -> list[str]:
    """The column names as pyarrow reads them (the names training will use); empty or doubled names refused."""
    if _is_parquet(path):
        with csv_reader.reading(path, "--data"):
            return tables.column_names(_parquet(path), path, "--data")
    with csv_reader.reading(path, "--data"), csv_reader.open_rows(path, BLOCK_BYTES) as reader:
        return tables.column_names(reader, path, "--data")


def _blocks(path: Path, header: list[str]) -> Iterator[Any]:
    """The rows as pyarrow Tables of about BLOCK_BYTES, every column text (empty cells, NA, ... null)."""
    if not _is_parquet(path):
        yield from csv_reader.text_blocks(path, header, BLOCK_BYTES, "--data")
        return
    import pyarrow as pa

    with csv_reader.reading(path, "--data"):
        for batch in _parquet(path).iter_batches(batch_size=BLOCK_ROWS):   # typed cells as the CSV's text
            yield pa.table({name: batch.column(name).cast(pa.string()) for name in header})


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in PARQUET


def _parquet(path: Path) -> Any:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path)


def _label(name: str, tally: _Tally, path: Path) -> Column:
    if not tally.numbers:
        if tally.more:
            raise DataError(f"{path}: the label {name!r} holds more than {MAX_VALUES} different values: too many "
                            "classes to start from; is it the right column?", key="--label")
        classes = sorted(tally.values)
        return Column(name, "label: class names", f"{len(classes)} classes: {', '.join(classes[:6])}"
                      + (", ..." if len(classes) > 6 else ""))
    distinct = sorted({float(v) for v in tally.values}) if not tally.more else []
    if distinct and all(v == int(v) and v >= 0 for v in distinct) and len(distinct) <= MAX_CLASS_IDS:
        return Column(name, "label: class ids", f"{int(max(distinct)) + 1} classes (0 .. {int(max(distinct))})")
    return Column(name, "label: numbers", f"{tally.low:g} .. {tally.high:g} (regression)")


def classes_of(column: Column) -> int | None:
    """The class count of a classification label, None for regression."""
    if column.kind == "label: numbers":
        return None
    return int(column.detail.split(" ", 1)[0])


def csv_config(path: Path, label: str, columns: list[Column], config: Path, written: str | None = None) -> str:
    """The config text for a CSV or Parquet file (its path written relative to the config, or as `written`, a
    URL): no input_shape, so kcli builds one input per column, with the kinds it found written out as data.columns
    (edit them freely). Every name
    from the data goes out through the YAML emitter, every comment quoting data as escaped single-line text."""
    target = next(c for c in columns if c.name == label)
    features = [c for c in columns if c.name != label]
    classes = classes_of(target)
    head = classes or 1
    loss = "{SparseCategoricalCrossentropy: {from_logits: true}}" if classes else "mse"
    metrics = "[accuracy]" if classes else "[mae]"
    keys = {c.name: _scalar(c.name) for c in features}
    width = max(len(k) if len(k) <= LONG_KEY else 0 for k in keys.values()) + 20
    entries = "\n".join(_entry(keys[c.name], f"{{kind: {c.kind}}}", width)
                         + _comment(c.detail + _empty(c)) for c in features)
    missing = sum(c.missing for c in features if c.kind != "text")   # empty text is text: no policy needed
    what = target.kind.removeprefix("label: ")
    policy = (f"  missing: fill              # {missing} empty cell(s): numbers get the training mean, text a "
              "category of its own\n") if missing else ""
    return f"""# yaml-language-server: $schema={SCHEMA_FILE.resolve().as_uri()}
{_comment(f"Written by `kcli init --data {path.name} --label {label}`. The label holds {what} ({target.detail}).")}
# No model.input_shape: kcli builds one input per column and the preprocessing inside the model (numbers are
# standardized by a Normalization adapted on the training split; categories one-hot encoded, or embedded
# above 50 values). The kinds below are what kcli read; change a kind (number / category / text / ignore) as
# you like.
name: {_name(path)}
seed: 42
data:
  source: {"parquet" if _is_parquet(path) else "csv"}
  path: {_scalar(written or _relative(path, config))}
  label: {_scalar(label)}
{policy}  columns:
{_text_note([c.name for c in features if c.kind == "text"])}{entries}
  validation_split: 0.2
  test_split: 0.1
  batch_size: 32
model:
  layers:
    - Dense: {{units: 64, activation: relu}}
    - Dense: {{units: 64, activation: relu}}
    - Dense: {{units: {head}}}                  # {"one logit per class" if classes else "the predicted value"}
compile:
  optimizer: {{Adam: {{learning_rate: 0.001}}}}
  loss: {loss}
  metrics: {metrics}
fit:
  epochs: 50
  callbacks:
    - EarlyStopping: {{monitor: val_loss, patience: 5, restore_best_weights: true}}
"""


def _empty(column: Column) -> str:
    """The empty cells of a column, for its comment."""
    if not column.missing:
        return ""
    return f"; {column.missing} empty" + (" (read as empty text)" if column.kind == "text" else "")


def _text_note(names: list[str]) -> str:
    """The comment above data.columns that says what `kind: text` does by default and how to choose otherwise."""
    if not names:
        return ""
    return "\n".join("    " + line for line in (
        _comment(f"{', '.join(names)}: free text, a bag of words by default (output_mode: multi_hot, which of the "
                 "max_tokens:"),
        "# 20000 most frequent training words a row holds). To choose, write e.g. {kind: text, output_mode: tf_idf,",
        "# max_tokens: 5000} (or count), or for word order {kind: text, output_mode: int, sequence_length: 200}",
        "# (an Embedding of dim: 16, then GlobalAveragePooling1D or the `layers` you give).",
    )) + "\n"


_NOT_YAML = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")   # YAML 1.1
LONG_KEY = 120   # longer keys are written as explicit `? key` entries (YAML allows implicit keys of 1024 chars)


def _scalar(value: str) -> str:
    """A string from the data as one line of YAML that loads back to exactly it: as the YAML emitter writes it
    (quoted where YAML would read another type, a comment or structure), double-quoted with escapes when it
    holds line breaks or characters a reader cannot see (control, bidi, undecodable bytes)."""
    import yaml

    if visible(value) == value:
        text = yaml.safe_dump(value, width=math.inf, allow_unicode=True).removesuffix("\n...\n").rstrip("\n")
        if "\n" not in text:
            return text
    return yaml.safe_dump(value, default_style='"', width=math.inf, allow_unicode=False).rstrip("\n")


def _entry(key: str, value: str, width: int) -> str:
    """One `key: value` line of data.columns (`key` already YAML), padded to `width` for its comment."""
    if len(key) > LONG_KEY:
        return f"    ? {key}\n" + f"    : {value}".ljust(width + 6)
    return f"    {key}: {value}".ljust(width + 6)


def _comment(text: str) -> str:
    """`text` (quoting data) as one YAML comment line: no line break can end it, no character a YAML reader
    refuses (\\uffff) or a reader cannot see is in it (all shown as escapes)."""
    return "# " + _NOT_YAML.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), visible(text))


def describe_images(folder: Path) -> list[Column]:
    """One column per class sub-folder, with its image count."""
    classes = readable.subfolders(folder, "--data")
    counts = [(c.name, len(images_in(c, "--data", folder))) for c in classes]
    counts = [(name, n) for name, n in counts if n]
    if len(counts) < 2:
        raise DataError(f"{folder} needs one sub-folder of images per class (at least 2 with images); found "
                        f"{[name for name, _ in counts] or 'none'}", key="--data")
    return [Column(name, "class", f"{n} images") for name, n in counts]


def images_config(folder: Path, classes: list[Column], config: Path) -> str:
    kinds = "\n".join(_comment(f"  {c.name}: {c.detail}") for c in classes)
    return f"""# yaml-language-server: $schema={SCHEMA_FILE.resolve().as_uri()}
{_comment(f"Written by `kcli init --data {folder.name}`: {len(classes)} classes (sub-folders, in this order = "
          "class ids):")}
{kinds}
name: {_name(folder)}
seed: 42
data:
  source: images
  path: {_scalar(_relative(folder, config))}
  image_size: [64, 64]        # every image is resized to this; larger sizes see more detail and train slower
  color_mode: rgb
  validation_split: 0.2
  batch_size: 32
model:
  input_shape: [64, 64, 3]
  layers:
    - Rescaling: {{scale: 0.00392156862745098}}   # pixel values 0..255 -> 0..1
    - Conv2D: {{filters: 16, kernel_size: 3, activation: relu}}
    - MaxPooling2D
    - Conv2D: {{filters: 32, kernel_size: 3, activation: relu}}
    - MaxPooling2D
    - Flatten
    - Dense: {{units: 64, activation: relu}}
    - Dense: {{units: {len(classes)}}}
compile:
  optimizer: {{Adam: {{learning_rate: 0.001}}}}
  loss: {{SparseCategoricalCrossentropy: {{from_logits: true}}}}
  metrics: [accuracy]
fit:
  epochs: 20
  callbacks:
    - EarlyStopping: {{monitor: val_loss, patience: 4, restore_best_weights: true}}
"""


def _name(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "-", path.stem if path.is_file() else path.name).strip("._-")[:60] or "data"


def _relative(path: Path, config: Path) -> str:
    return os.path.relpath(path.resolve(), config.resolve().parent)


def init(data: Path | str, label: str | None, output: Path | None) -> tuple[Path, list[Column]]:
    """Write the config for `data` (a path, or a CSV object's URL, written into the config as it is); returns its
    path and the columns (or classes) found."""
    if remote.is_url(data):
        url = str(data)
        with remote.named_as_urls():
            local = remote.local_copy(url, "--data")
            target = _target(local, output)
            columns = describe_csv(local, label)
        write_text(target, csv_config(local, label or "", columns, target, written=url))
        return target, columns
    data = Path(data)
    if not data.is_dir() and not readable.present(data, "--data"):   # a FIFO or a link loop: one line
        raise DataError(f"not found: {data}", key="--data")
    target = _target(data, output)
    if data.is_dir():
        columns = describe_images(data)
        text = images_config(data, columns, target)
    else:
        columns = describe_csv(data, label)
        text = csv_config(data, label or "", columns, target)
    write_text(target, text)
    return target, columns


def _target(data: Path, output: Path | None) -> Path:
    """The config file to write (default: <data name>.yaml here), never an existing one."""
    target = output or Path(f"{_name(data)}.yaml")
    if target.exists():
        raise DataError(f"{target} already exists; choose another --output", key="--output")
    return target
