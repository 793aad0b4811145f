"""Request values (JSON lists or typed v2 arrays, one value per row) -> the arrays `kcli predict` feeds the model.

The checks after the structure (NaN rows, empty cells, text in a number column, category values, image decoding
and resizing) are predict's own functions; this module only gets the request's values into the shapes those
functions read, and names the input and data row (counted from 1, as kcli predict counts) where they do not fit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kcli.data.checks import as_int, shape_fits
from kcli.errors import cut, first_line
from kcli.use.predict_input import array_features
from kcli.use.signature import Tensor

MAX_IMAGE_BYTES = 20 << 20    # one image's bytes; larger is a 400 before TensorFlow decodes it
MAX_IMAGE_PIXELS = 40_000_000  # width x height an image header may declare (a small file can declare a huge image)


class BadInput(ValueError):
    """A request that does not fit the model: answered 400 with this message (names the input, row, field)."""

SCALARS = (str, int, float, bool, type(None))


def numbers(values: Any, tensor: Tensor) -> np.ndarray:
    """An input's rows as a float64 (or int64) array of the tensor's per-row shape."""
    if isinstance(values, np.ndarray):
        arr = values
        if arr.dtype.kind not in "iuf":
            raise BadInput(f"input {tensor.name!r} holds {arr.dtype} values; it takes numbers ({tensor.dtype})")
    else:
        arr = _array(values, tensor)
    if arr.ndim == 1 and tensor.shape == (1,):   # one value per row for a (1,) input: a table cell
        arr = arr.reshape(-1, 1)
    if not shape_fits(tuple(arr.shape[1:]), tuple(None if d < 0 else d for d in tensor.shape)):
        raise BadInput(f"input {tensor.name!r}: each row has shape {list(arr.shape[1:])}, the model takes "
                       f"{list(tensor.shape)}")
    return arr


def _array(values: Any, tensor: Tensor) -> np.ndarray:
    """JSON rows as numbers; the first row that is not (text, true/false, null, a ragged or wrong shape) named."""
    want = tuple(None if d < 0 else d for d in tensor.shape)
    for row, value in enumerate(values, start=1):
        problem = _not_numbers(value)
        if problem is None:
            try:
                shape = np.shape(value)
            except ValueError:   # numpy refuses ragged lists
                shape, problem = (), "its lists have different lengths"
            if problem is None and not shape_fits(shape, want) and not (want == (1,) and shape == ()):
                problem = f"its shape is {list(shape)}"
        if problem is not None:
            raise BadInput(f"input {tensor.name!r}: data row {row}: {problem}; the model takes numbers of shape "
                           f"{list(tensor.shape)} per row")
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError, OverflowError):
        arr = np.asarray([], dtype=object)
    if arr.dtype.kind not in "iuf":   # a whole number past int64
        raise BadInput(f"input {tensor.name!r}: a value does not fit a 64-bit number")
    return arr


def _not_numbers(value: Any, where: str = "") -> str | None:
    """What in one row is not a number (a field path like [2] or [0][1]), or None."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            problem = _not_numbers(item, f"{where}[{i}]")
            if problem is not None:
                return problem
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        shown = _shown(value)
        return f"field {where} is {shown}, not a number" if where else f"{shown} is not a number"
    return None


def _shown(value: Any) -> str:
    """A request value in a message: short, as JSON would write it."""
    text = "true" if value is True else "false" if value is False else "null" if value is None else repr(value)
    return cut(text, 40)


def array_rows(values: Any, tensor: Tensor, scale: float | None) -> np.ndarray:
    """A one-input model's rows: numbers of its shape, finite, float32, scaled (predict's array_features)."""
    return array_features(numbers(values, tensor).astype(np.float64), scale, 1, f"input {tensor.name!r}")


def named_rows(values: Any, tensor: Tensor, scale: float | None) -> np.ndarray:
    """One named input's rows in its dtype: floats as array_rows, whole numbers for integer inputs, text as str
    objects."""
    if tensor.dtype == "string":
        texts = [_text(v, tensor, row) for row, v in enumerate(_flat_rows(values, tensor), start=1)]
        return np.asarray(texts, dtype=object).reshape(-1, *tensor.shape)
    arr = numbers(values, tensor)
    if np.dtype(tensor.dtype).kind in "iu":
        return as_int(arr, tensor.dtype, f"input {tensor.name!r}", "--input")
    return array_features(arr.astype(np.float64), scale, 1, f"input {tensor.name!r}", tensor.dtype)


def _flat_rows(values: Any, tensor: Tensor) -> list[Any]:
    """The values of a text input, row by row (a (1,) input: one value per row, bare or in a list)."""
    items = values.reshape(len(values), -1).tolist() if isinstance(values, np.ndarray) else list(values)
    if tensor.shape == (1,):
        return [v[0] if isinstance(v, list) and len(v) == 1 else v for v in items]
    return items


def _text(value: Any, tensor: Tensor, row: int) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if not isinstance(value, str):
        raise BadInput(f"input {tensor.name!r}: data row {row} is {_shown(value)}; it takes text")
    return value


def table_rows(columns: dict[str, Any], run: Any) -> dict[str, np.ndarray]:
    """Raw table cells by input name -> the arrays predict reads from a CSV (tables.read_split: empty cells,
    unknown categories and text in number columns handled as in a file)."""
    import pyarrow as pa

    from kcli.data import tables

    cells: dict[str, Any] = {}
    for port in run.ports.inputs:
        column = (port.columns or (port.name,))[0]
        tensor = Tensor(port.name, port.dtype, (1,))
        values = [None if v == "" else v for v in _flat_rows(columns[port.name], tensor)]
        for row, value in enumerate(values, start=1):
            if isinstance(value, bytes):
                values[row - 1] = value.decode("utf-8", "replace")
            elif not isinstance(value, SCALARS):
                raise BadInput(f"input {port.name!r}: data row {row} is a {type(value).__name__}; a table cell "
                               "is one value (a number, a text or null)")
        try:
            cells[column] = pa.array(values)
        except (pa.ArrowException, OverflowError):   # numbers and text mixed: read as text, as a CSV column is
            cells[column] = pa.array([None if v is None else str(v) for v in values], pa.string())
    table = pa.table(cells)
    return tables.read_split(table, run.config.data.columns or {}, Path("request"), "request", None).x


def images(values: Any, data: Any) -> np.ndarray:
    """Image bytes (JPEG, PNG, GIF, BMP) -> one float32 batch, decoded and resized as training read them."""
    import tensorflow as tf

    from kcli.data import images as image_source

    items = values.reshape(-1).tolist() if isinstance(values, np.ndarray) else list(values)
    decoded = []
    for row, content in enumerate(items, start=1):
        if isinstance(content, list) and len(content) == 1:
            content = content[0]
        if isinstance(content, str):   # a v2 JSON BYTES element: the image as base64 text
            content = base64_bytes(content, f"input 'image': data row {row}")
        if not isinstance(content, bytes):
            raise BadInput(f"input 'image': data row {row} is {_shown(content)}; send the image file's bytes "
                           'as {"b64": "..."} (TF Serving) or a BYTES tensor (v2)')
        problem = _image_problem(content)
        if problem is not None:
            raise BadInput(f"input 'image': data row {row} {problem}")
        try:
            decoded.append(image_source.decode_image(tf.constant(content), data))
        except (tf.errors.InvalidArgumentError, ValueError) as exc:
            raise BadInput(f"input 'image': data row {row} is not an image TensorFlow can decode "
                           f"({first_line(exc)[:120]})") from None
    return np.stack(decoded).astype(np.float32)


def _image_problem(content: bytes) -> str | None:
    """Why image bytes are refused before decoding: size, format, or a header declaring too many pixels."""
    from kcli.data.images import _MAGIC as MAGIC  # the file check's own list of image signatures

    if len(content) > MAX_IMAGE_BYTES:
        return f"is {len(content)} bytes; one image may have at most {MAX_IMAGE_BYTES}"
    if not content.startswith(MAGIC):
        return "is not a JPEG, PNG, GIF or BMP image"
    size = _declared_size(content)
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        return f"declares {size[0]} x {size[1]} pixels; at most {MAX_IMAGE_PIXELS} are decoded"
    return None


def _declared_size(content: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, GIF or BMP header, or a JPEG's frame header (None when it cannot be read)."""
    if content.startswith(b"\x89PNG") and len(content) >= 24:
        return int.from_bytes(content[16:20], "big"), int.from_bytes(content[20:24], "big")
    if content.startswith(b"GIF") and len(content) >= 10:
        return int.from_bytes(content[6:8], "little"), int.from_bytes(content[8:10], "little")
    if content.startswith(b"BM") and len(content) >= 26:
        return abs(int.from_bytes(content[18:22], "little", signed=True)), \
            abs(int.from_bytes(content[22:26], "little", signed=True))
    if content.startswith(b"\xff\xd8"):
        import tensorflow as tf

        try:
            height, width, _ = tf.image.extract_jpeg_shape(tf.constant(content)).numpy().tolist()
        except tf.errors.InvalidArgumentError:
            return None
        return int(width), int(height)
    return None


def base64_bytes(text: str, where: str) -> bytes:
    """Base64 text (TF Serving's {"b64": ...}) as bytes; a 400 naming `where` when it is not base64."""
    import base64
    import binascii

    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadInput(f"{where} is not valid base64") from None
