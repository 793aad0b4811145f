"""`kcli init --data FILE.csv --label COL` (or `--data FOLDER` of images): a working config for your data.

The column kinds are inferred from the file (every row is read: numbers, text categories, empty cells) and
written into the config as `data.columns`, so they can be checked and edited; the model is a sensible start:
the inputs kcli builds from the columns, two hidden layers, and the head and loss the label asks for.
TensorFlow-free (it only reads the file).
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

from kcli import readable
from kcli.data.images import images_in
from kcli.errors import DataError
from kcli.runs import write_text
from kcli.schema import SCHEMA_FILE

MAX_CLASS_IDS = 20   # whole-number labels with at most this many distinct values are taken as class ids


@dataclass
class Column:
    name: str
    kind: str     # number | category | label: class names | label: class ids | label: numbers
    detail: str   # range, or values / classes
    missing: int = 0   # empty cells


def describe_csv(path: Path, label: str | None) -> list[Column]:
    """Every column's kind: numbers, categories (text), the label; empty cells counted."""
    header, rows = _read(path)
    if label is None or label not in header:
        raise DataError(f"{path} has the columns {', '.join(header)}; name the label column with --label "
                        "(what the model should predict)", key="--label")
    columns = []
    for i, name in enumerate(header):
        values = [row[i].strip() for row in rows]
        present = [v for v in values if v != ""]
        if name == label:
            empty = next((n for n, v in enumerate(values) if v == ""), None)
            if empty is not None:
                raise DataError(f"{path}: data row {empty + 1}: the label {name!r} is empty; every row needs a "
                                "label (drop those rows)", key="--label")
            columns.append(_label(name, values, _numbers(values)))
            continue
        if not present:
            raise DataError(f"{path}: column {name!r} is empty in every row; drop it", key="--data")
        numbers = _numbers(present)
        if numbers is None:
            distinct = sorted(set(present))
            detail = f"{len(distinct)} values: {', '.join(distinct[:5])}{', ...' if len(distinct) > 5 else ''}"
            columns.append(Column(name, "category", detail, len(values) - len(present)))
        else:
            columns.append(Column(name, "number", f"{min(numbers):g} .. {max(numbers):g}",
                                  len(values) - len(present)))
    return columns


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            rows = [row for row in reader if row and any(v.strip() for v in row)]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}", key="--data") from None
    if not header or not rows:
        raise DataError(f"{path} needs a header line and at least one row", key="--data")
    short = next((n for n, row in enumerate(rows) if len(row) != len(header)), None)
    if short is not None:
        raise DataError(f"{path}: data row {short + 1} has {len(rows[short])} values, the header "
                        f"{len(header)}", key="--data")
    return header, rows


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def _numbers(values: list[str]) -> list[float] | None:
    numbers = [_number(v) for v in values]
    return None if any(n is None for n in numbers) else [float(n) for n in numbers if n is not None]


def _label(name: str, values: list[str], numbers: list[float] | None) -> Column:
    if numbers is None:
        classes = sorted(set(values))
        return Column(name, "label: class names", f"{len(classes)} classes: {', '.join(classes[:6])}"
                      + (", ..." if len(classes) > 6 else ""))
    distinct = sorted(set(numbers))
    if all(v == int(v) and v >= 0 for v in distinct) and len(distinct) <= MAX_CLASS_IDS:
        return Column(name, "label: class ids", f"{int(max(distinct)) + 1} classes (0 .. {int(max(distinct))})")
    return Column(name, "label: numbers", f"{min(numbers):g} .. {max(numbers):g} (regression)")


def classes_of(column: Column) -> int | None:
    """The class count of a classification label, None for regression."""
    if column.kind == "label: numbers":
        return None
    return int(column.detail.split(" ", 1)[0])


def csv_config(path: Path, label: str, columns: list[Column], config: Path) -> str:
    """The config text for a CSV file (its path written relative to the config): no input_shape, so kcli builds
    one input per column, with the kinds it found written out as data.columns (edit them freely)."""
    target = next(c for c in columns if c.name == label)
    features = [c for c in columns if c.name != label]
    classes = classes_of(target)
    head = classes or 1
    loss = "{SparseCategoricalCrossentropy: {from_logits: true}}" if classes else "mse"
    metrics = "[accuracy]" if classes else "[mae]"
    width = max(len(c.name) for c in features) + 20
    entries = "\n".join(f"    {_yaml_key(c.name)}: {{kind: {c.kind}}}".ljust(width + 6) + f"# {c.detail}"
                         + (f"; {c.missing} empty" if c.missing else "") for c in features)
    missing = sum(c.missing for c in features)
    what = target.kind.removeprefix("label: ")
    policy = (f"  missing: fill              # {missing} empty cell(s): numbers get the training mean, text a "
              "category of its own\n") if missing else ""
    return f"""# yaml-language-server: $schema={SCHEMA_FILE.resolve().as_uri()}
# Written by `kcli init --data {path.name} --label {label}`. The label holds {what} ({target.detail}).
# No model.input_shape: kcli builds one input per column and the preprocessing inside the model (numbers are
# standardized by a Normalization adapted on the training split; categories one-hot encoded, or embedded
# above 50 values). The kinds below are what kcli read; change a kind (number / category / ignore) as you like.
name: {_name(path)}
seed: 42
data:
  source: csv
  path: {_relative(path, config)}
  label: {_yaml_key(label)}
{policy}  columns:
{entries}
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


def _yaml_key(name: str) -> str:
    """A column name as a YAML key (quoted unless plain)."""
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_ .-]*", name) and not name.endswith(" ") else \
        '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


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
    kinds = "\n".join(f"#   {c.name}: {c.detail}" for c in classes)
    return f"""# yaml-language-server: $schema={SCHEMA_FILE.resolve().as_uri()}
# Written by `kcli init --data {folder.name}`: {len(classes)} classes (sub-folders, in this order = class ids):
{kinds}
name: {_name(folder)}
seed: 42
data:
  source: images
  path: {_relative(folder, config)}
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


def init(data: Path, label: str | None, output: Path | None) -> tuple[Path, list[Column]]:
    """Write the config for `data`; returns its path and the columns (or classes) found."""
    if not data.is_dir() and not readable.present(data, "--data"):   # a FIFO or a link loop: one line
        raise DataError(f"not found: {data}", key="--data")
    target = output or Path(f"{_name(data)}.yaml")
    if target.exists():
        raise DataError(f"{target} already exists; choose another --output", key="--output")
    if data.is_dir():
        columns = describe_images(data)
        text = images_config(data, columns, target)
    else:
        columns = describe_csv(data, label)
        text = csv_config(data, label or "", columns, target)
    write_text(target, text)
    return target, columns
