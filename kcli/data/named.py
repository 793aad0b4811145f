"""Named inputs and several outputs: each input from its CSV columns or npz array, each output's labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kcli.config.model_io import Ports, Tree
from kcli.config.models import DataConfig
from kcli.data.checks import file_key
from kcli.data.csv_files import _label_column, _need_columns, csv_table
from kcli.data.csv_reader import csv_header
from kcli.data.npz_files import read_npz_arrays
from kcli.data.splits import Arrays
from kcli.errors import DataError
from kcli.files import remote


def read_ports(src: dict[str, Any], key: str, data: DataConfig, ports: Ports) -> Arrays:
    """One split for named inputs and/or several outputs: each input from its CSV columns or npz array, each
    output's labels from `data.labels` (npz default: the array named like the output)."""
    source = src["source"]
    if source not in ("npz", "csv"):
        raise DataError(f"named inputs and several outputs read source npz or csv, not {source}", key="data.source")
    path = remote.local_file(src["path"], file_key(key)) if remote.is_url(src["path"]) else Path(src["path"] or "")
    labels = label_sources(data, ports)
    if source == "csv":
        header = csv_header(path, key)
        _need_columns(path, header, [c for p in ports.inputs for c in p.columns or ()] + list(labels.values()), key)
        table = csv_table(path, header, key)
        x: Tree = {p.name: table[:, [header.index(c) for c in p.columns or ()]] for p in ports.inputs}
        ys = {o: _label_column(table[:, header.index(c)]) for o, c in labels.items()}
    else:
        found = read_npz_arrays(path, [*(p.array or p.name for p in ports.inputs), *labels.values()], key)
        x = {p.name: found[p.array or p.name] for p in ports.inputs}
        ys = {o: found[a] for o, a in labels.items()}
    if not ports.named:
        x = next(iter(x.values()))   # type: ignore[union-attr]
    y: Tree = ys if ports.several_outputs else next(iter(ys.values()))
    return Arrays(x, y)


def label_sources(data: DataConfig, ports: Ports) -> dict[str, str]:
    """Output name -> label column (csv) or array (npz); one output is named `output`."""
    if not ports.several_outputs:
        column = data.label if data.source == "csv" else data.y_key or "y"
        return {"output": column or ""}
    given = data.labels or {}
    if data.source == "csv":
        return {o: given[o] for o in ports.outputs}
    return {o: given.get(o, o) for o in ports.outputs}
