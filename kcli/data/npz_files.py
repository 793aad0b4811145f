"""NumPy .npz files (and the datasets bundled with kcli, which are .npz files)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from kcli.config.source_rules import BUILTIN
from kcli.data.checks import check_numbers, file_key, reason
from kcli.data.splits import Arrays
from kcli.errors import DataError


def read_builtin(name: str, key: str = "data") -> Arrays:
    """A dataset shipped inside the package."""
    if name not in BUILTIN:
        raise DataError(f"unknown builtin dataset {name!r}; available: {', '.join(BUILTIN)}", key=f"{key}.name")
    with resources.files("kcli.data.bundled").joinpath(BUILTIN[name]).open("rb") as fh:
        with np.load(fh) as npz:
            return Arrays(npz["x"], npz["y"])


def read_npz(path: Path, x_key: str, y_key: str | None, key: str = "data") -> Arrays:
    """Arrays `x_key` and `y_key` of an .npz file (y_key None: features only)."""
    npz = _open_npz(path, key)
    with npz:
        keys = [k for k in (x_key, y_key) if k is not None]
        for k in keys:
            if k not in npz.files:
                raise DataError(f"{path} has no array {k!r}; it has: {', '.join(npz.files) or 'nothing'}",
                                key=f"{key}.{'x_key' if k == x_key else 'y_key'}")
        try:
            x = npz[x_key]
            y = npz[y_key] if y_key is not None else np.zeros((len(x),), np.float32)
        except Exception as exc:  # a truncated or corrupt member
            raise DataError(f"cannot read {path} (damaged or truncated?): {reason(exc)}",
                            key=file_key(key)) from None
    if x.ndim == 0 or y.ndim == 0:
        raise DataError(f"{path}: {x_key} and {y_key} must be arrays with one row per example", key=file_key(key))
    if len(x) != len(y):
        raise DataError(f"{path}: {x_key} has {len(x)} rows but {y_key} has {len(y)}", key=key)
    if len(x) == 0:
        raise DataError(f"{path} has 0 rows", key=file_key(key))
    check_numbers(x, f"{path}: array {x_key!r}", key)
    if y_key is not None:
        check_numbers(y, f"{path}: array {y_key!r}", key)
    return Arrays(x, y)


def _open_npz(path: Path, key: str) -> Any:
    try:
        npz = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"data file not found: {path}", key=file_key(key)) from None
    except IsADirectoryError:
        raise DataError(f"{path} is a directory, not an .npz file", key=file_key(key)) from None
    except Exception as exc:  # numpy raises OSError/ValueError/BadZipFile/EOFError for damaged files
        raise DataError(f"cannot read {path} as .npz: {reason(exc)}", key=file_key(key)) from None
    if not hasattr(npz, "files"):
        raise DataError(f"{path} is a single .npy array, not an .npz archive", key=file_key(key))
    return npz


def read_npz_arrays(path: Path, names: list[str], key: str) -> dict[str, np.ndarray]:
    """Named arrays of an .npz file, checked: numbers, all finite, one row per example each."""
    npz = _open_npz(path, key)
    with npz:
        for name in names:
            if name not in npz.files:
                raise DataError(f"{path} has no array {name!r}; it has: {', '.join(npz.files) or 'nothing'}",
                                key=file_key(key))
        try:
            found = {name: npz[name] for name in dict.fromkeys(names)}
        except Exception as exc:  # a truncated or corrupt member
            raise DataError(f"cannot read {path} (damaged or truncated?): {reason(exc)}", key=file_key(key)) from None
    lengths = {name: len(a) if a.ndim else -1 for name, a in found.items()}
    if len(set(lengths.values())) != 1 or -1 in lengths.values():
        raise DataError(f"{path}: the arrays must have one row per example each; rows: "
                        f"{', '.join(f'{k} {v}' for k, v in lengths.items())}", key=file_key(key))
    if not next(iter(lengths.values())):
        raise DataError(f"{path} has 0 rows", key=file_key(key))
    for name, a in found.items():
        check_numbers(a, f"{path}: array {name!r}", key)
    return found
