"""The two wire formats: TF Serving's REST API (row and columnar JSON, {"b64": ...} bytes) and the Open
Inference Protocol v2 (typed tensors in JSON, and Triton's binary tensor extension that tritonclient sends).

Readers turn a body into request columns (input name -> one value per row); writers turn named output arrays
into the answer each protocol's clients expect. A body that does not fit is a BadInput naming what is wrong.
"""

from __future__ import annotations

import json
import math
import struct
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kcli.errors import capped, first_line
from kcli.serve.convert import BadInput, base64_bytes
from kcli.serve.model import ServedModel
from kcli.use.signature import Tensor

V2_TYPES = {"BOOL": "?", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "INT8": "<i1",
            "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8"}
V2_OF = {"float16": "FP16", "float32": "FP32", "float64": "FP64", "int8": "INT8", "int16": "INT16", "int32": "INT32",
         "int64": "INT64", "uint8": "UINT8", "bool": "BOOL", "string": "BYTES"}
TF_OF = {"float16": "DT_HALF", "float32": "DT_FLOAT", "float64": "DT_DOUBLE", "int8": "DT_INT8", "int16": "DT_INT16",
         "int32": "DT_INT32", "int64": "DT_INT64", "uint8": "DT_UINT8", "bool": "DT_BOOL", "string": "DT_STRING"}
HEADER_LENGTH = "inference-header-content-length"


def _json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object (NaN and Infinity allowed, as TF Serving's parser does)."""
    try:
        doc = json.loads(body, parse_int=_whole_number)
    except RecursionError:
        raise BadInput("the body is not valid JSON: it is nested too deeply") from None
    except _TooManyDigits as exc:
        raise BadInput(f"the body is not valid JSON: a number has {exc.args[0]:,} digits (at most "
                       f"{sys.get_int_max_str_digits():,})") from None
    except ValueError as exc:
        raise BadInput(f"the body is not valid JSON ({first_line(exc)[:120]})") from None
    if not isinstance(doc, dict):
        raise BadInput("the body must be a JSON object")
    return doc


class _TooManyDigits(Exception):
    """A JSON whole number longer than Python converts (its digit count in args[0])."""


def _whole_number(text: str) -> int:
    """A JSON whole number; one past Python's digit limit is refused by name instead of its cut-off message."""
    try:
        return int(text)
    except ValueError:   # past sys.get_int_max_str_digits
        raise _TooManyDigits(len(text.lstrip("-"))) from None


# ---- TF Serving REST ----

@dataclass
class TfsRequest:
    """A predict request: its columns, row count, and whether it was in the row ("instances") format."""

    columns: dict[str, Any]
    rows: int
    row_format: bool


def tfs_request(body: bytes, model: ServedModel) -> TfsRequest:
    """`{"instances": [...]}` (a row per item; an object per row for named inputs) or `{"inputs": ...}`."""
    doc = _json(body)
    signature = doc.get("signature_name")
    if signature not in (None, "", "serving_default"):
        raise BadInput(f"unknown signature_name {capped(signature)}; this model has serving_default")
    if ("instances" in doc) == ("inputs" in doc):
        raise BadInput('give exactly one of "instances" (a list of rows) or "inputs" (columns)')
    names = [t.name for t in model.inputs]
    if "instances" in doc:
        rows = doc["instances"]
        if not isinstance(rows, list):
            raise BadInput('"instances" must be a list of rows')
        if rows and all(isinstance(r, dict) for r in rows) and not all(set(r) == {"b64"} for r in rows):
            columns = {}
            for name in dict.fromkeys(k for r in rows for k in r):
                lacking = next((i for i, r in enumerate(rows, start=1) if name not in r), None)
                if lacking is not None:
                    raise BadInput(f"instances: data row {lacking} lacks input {capped(name)} that other rows have")
                columns[name] = [r[name] for r in rows]
        elif len(names) == 1:
            columns = {names[0]: rows}
        else:
            raise BadInput(f"the model has named inputs ({', '.join(names)}): each instance is an object "
                           "with a value for each")
        return TfsRequest(_bytes(columns, model), len(rows), True)
    inputs = doc["inputs"]
    if isinstance(inputs, dict):
        columns = inputs
    elif len(names) == 1:
        columns = {names[0]: inputs}
    else:
        raise BadInput(f'"inputs" must be an object with a list of rows for each input ({", ".join(names)})')
    counts = {}
    for name, values in columns.items():
        if not isinstance(values, list):
            raise BadInput(f'"inputs" {capped(name)} must be a list with one value per row')
        counts[name] = len(values)
    if len(set(counts.values())) > 1:
        raise BadInput(f'the inputs have different row counts: {", ".join(f"{k} {v}" for k, v in counts.items())}')
    return TfsRequest(_bytes(columns, model), next(iter(counts.values()), 0), False)


def _bytes(columns: dict[str, Any], model: ServedModel) -> dict[str, Any]:
    """{"b64": ...} values of text inputs as bytes (a bare string stays text)."""
    text = {t.name for t in model.inputs if t.dtype == "string"}
    return {k: [_unwrap(v, f"input {capped(k)}: data row {i}") for i, v in enumerate(vs, start=1)]
            if k in text and isinstance(vs, list) else vs for k, vs in columns.items()}


def _unwrap(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise BadInput(f'{where} is an object; binary values are written {{"b64": "<base64>"}}')
        return base64_bytes(value["b64"], where)
    if isinstance(value, list):
        return [_unwrap(v, where) for v in value]
    return value


def tfs_response(answers: dict[str, np.ndarray], row_format: bool) -> dict[str, Any]:
    """`{"predictions": [...]}` (row format; an object per row when there are several outputs) or
    `{"outputs": ...}` (columnar), as TF Serving answers."""
    lists = {name: _listed(a) for name, a in answers.items()}
    if len(lists) == 1:
        only = next(iter(lists.values()))
        return {"predictions": only} if row_format else {"outputs": only}
    if not row_format:
        return {"outputs": lists}
    rows = len(next(iter(lists.values())))
    return {"predictions": [{name: values[i] for name, values in lists.items()} for i in range(rows)]}


def _listed(a: np.ndarray) -> list[Any]:
    return a.astype(str).tolist() if a.dtype.kind in "OUS" else a.tolist()


def tfs_status(model: ServedModel) -> dict[str, Any]:
    """GET /v1/models/NAME."""
    return {"model_version_status": [{"version": str(model.version), "state": "AVAILABLE",
                                      "status": {"error_code": "OK", "error_message": ""}}]}


def tfs_metadata(model: ServedModel) -> dict[str, Any]:
    """GET /v1/models/NAME/metadata: the serving_default signature as TF Serving shows it."""
    def info(t: Tensor) -> dict[str, Any]:
        dims = [{"size": "-1", "name": ""}] + [{"size": str(d), "name": ""} for d in t.shape]
        return {"dtype": TF_OF[t.dtype], "tensor_shape": {"dim": dims, "unknown_rank": False}, "name": t.name}

    signature = {"inputs": {t.name: info(t) for t in model.inputs},
                 "outputs": {t.name: info(t) for t in model.outputs},
                 "method_name": "tensorflow/serving/predict"}
    return {"model_spec": {"name": model.name, "signature_name": "", "version": str(model.version)},
            "metadata": {"signature_def": {"signature_def": {"serving_default": signature}}}}


# ---- Open Inference Protocol v2 ----

@dataclass
class V2Request:
    """An infer request: columns, row count, the outputs asked for, which come back as binary, and its id."""

    columns: dict[str, Any]
    rows: int
    outputs: list[str]
    binary: set[str] = field(default_factory=set)
    id: str | None = None


def v2_request(body: bytes, header_length: str | None, model: ServedModel) -> V2Request:
    """`{"inputs": [{"name", "shape", "datatype", "data"}], "outputs": [...]}`, with tensors in the binary
    extension (Inference-Header-Content-Length) as tritonclient sends them."""
    json_end = len(body)
    if header_length is not None:
        try:
            json_end = int(header_length)
        except ValueError:
            json_end = -1
        if not 0 <= json_end <= len(body):
            raise BadInput(f"Inference-Header-Content-Length {capped(header_length)} does not fit a body of "
                           f"{len(body)} bytes")
    doc = _json(body[:json_end])
    binary, offset = body[json_end:], 0
    tensors = doc.get("inputs")
    if not isinstance(tensors, list) or not tensors:
        raise BadInput('"inputs" must be a list of tensors {"name", "shape", "datatype", "data"}')
    by_name = {t.name: t for t in model.inputs}
    columns, rows = {}, set()
    for i, tensor in enumerate(tensors):
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise BadInput(f"inputs[{i}] must be an object with a name, shape, datatype and data")
        name = tensor["name"]
        if name not in by_name:
            raise BadInput(f"unknown input {capped(name)}; the model's inputs are: {', '.join(by_name)}")
        if name in columns:   # which copy to use would be a guess
            raise BadInput(f"input {capped(name)} is given twice (inputs[{i}]); send each input once")
        shape = _shape(tensor.get("shape"), name)
        size = (tensor.get("parameters") or {}).get("binary_data_size") if isinstance(
            tensor.get("parameters"), dict) else None
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise BadInput(f"input {capped(name)}: binary_data_size {capped(size)} does not fit the "
                               f"{len(binary) - offset} bytes left in the body")
            array = _from_binary(binary[offset:offset + size], tensor.get("datatype"), shape, name)
            offset += size
        else:
            array = _from_json(tensor.get("data"), tensor.get("datatype"), shape, name)
        columns[name] = array
        rows.add(shape[0])
    if len(rows) > 1:
        raise BadInput(f"the inputs have different batch sizes (first dimensions): {sorted(rows)}")
    wanted, binary_out = _wanted_outputs(doc, model)
    request_id = doc.get("id")
    return V2Request(columns, rows.pop(), wanted, binary_out, request_id if isinstance(request_id, str) else None)


def _shape(shape: Any, name: str) -> list[int]:
    if (not isinstance(shape, list) or not shape or
            not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise BadInput(f"input {capped(name)}: shape must be a list of sizes >= 0, the first the batch size")
    return shape


def _from_json(data: Any, datatype: Any, shape: list[int], name: str) -> np.ndarray:
    """A v2 tensor's `data` (flat or nested, row-major) as an array of `shape`."""
    flat = _flatten(data, name)
    if len(flat) != math.prod(shape):
        raise BadInput(f"input {capped(name)}: shape {shape} needs {math.prod(shape)} values, data has "
                       f"{len(flat)}")
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in flat):
            raise BadInput(f"input {capped(name)}: BYTES data must be strings")
        return np.asarray(flat, dtype=object).reshape(shape)
    if datatype not in V2_TYPES:
        raise BadInput(f"input {capped(name)}: unknown datatype {capped(datatype)}; use one of "
                       f"{', '.join([*V2_TYPES, 'BYTES'])}")
    bad = next((i for i, v in enumerate(flat) if isinstance(v, bool) != (datatype == "BOOL") or
                not isinstance(v, (int, float))), None)
    if bad is not None:
        raise BadInput(f"input {capped(name)}: data[{bad}] is {capped(flat[bad])}, not a {datatype} value")
    try:
        return np.asarray(flat, dtype=np.dtype(V2_TYPES[datatype])).reshape(shape)
    except (OverflowError, ValueError):
        raise BadInput(f"input {capped(name)}: a value does not fit {datatype}") from None


def _flatten(data: Any, name: str) -> list[Any]:
    if not isinstance(data, list):
        raise BadInput(f"input {capped(name)}: data must be a list of values (or binary_data_size in parameters)")
    if not any(isinstance(v, list) for v in data):
        return data
    out: list[Any] = []
    for v in data:
        out.extend(_flatten(v, name) if isinstance(v, list) else [v])
    return out


def _from_binary(raw: bytes, datatype: Any, shape: list[int], name: str) -> np.ndarray:
    """A tensor in Triton's binary extension: little-endian values, BYTES as 4-byte length + bytes each."""
    count = math.prod(shape)
    if datatype == "BYTES":
        items, pos = [], 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise BadInput(f"input {capped(name)}: truncated BYTES element")
            (length,) = struct.unpack_from("<I", raw, pos)
            if pos + 4 + length > len(raw):
                raise BadInput(f"input {capped(name)}: a BYTES element says {length} bytes, fewer are left")
            items.append(raw[pos + 4:pos + 4 + length])
            pos += 4 + length
        if len(items) != count:
            raise BadInput(f"input {capped(name)}: shape {shape} needs {count} elements, the data has {len(items)}")
        return np.asarray(items + [None], dtype=object)[:-1].reshape(shape)
    if datatype not in V2_TYPES:
        raise BadInput(f"input {capped(name)}: unknown datatype {capped(datatype)}")
    dtype = np.dtype(V2_TYPES[datatype])
    if len(raw) != count * dtype.itemsize:
        raise BadInput(f"input {capped(name)}: shape {shape} of {datatype} needs {count * dtype.itemsize} bytes, "
                       f"binary_data_size is {len(raw)}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def _wanted_outputs(doc: dict[str, Any], model: ServedModel) -> tuple[list[str], set[str]]:
    """The outputs asked for (all by default) and those to send in binary."""
    names = [t.name for t in model.outputs]
    params = doc.get("parameters") if isinstance(doc.get("parameters"), dict) else {}
    asked = doc.get("outputs")
    if asked is None:
        return names, set(names) if params.get("binary_data_output") is True else set()
    if not isinstance(asked, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in asked):
        raise BadInput('"outputs" must be a list of {"name": ...} objects')
    for o in asked:
        if o["name"] not in names:
            raise BadInput(f"unknown output {capped(o['name'])}; the model's outputs are: {', '.join(names)}")
    binary = {o["name"] for o in asked if isinstance(o.get("parameters"), dict)
              and o["parameters"].get("binary_data") is True}
    return [o["name"] for o in asked], binary


def v2_response(model: ServedModel, request: V2Request, answers: dict[str, np.ndarray]
                ) -> tuple[bytes, dict[str, str]]:
    """The infer answer's body and headers (JSON, then the binary outputs when asked for)."""
    outputs, blobs = [], []
    types = {t.name: t.dtype for t in model.outputs}
    for name in request.outputs:
        a = answers[name]
        entry: dict[str, Any] = {"name": name, "datatype": V2_OF[types[name]], "shape": list(a.shape)}
        if name in request.binary:
            blob = _to_binary(a, types[name])
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = _listed(a.reshape(-1))
        outputs.append(entry)
    doc: dict[str, Any] = {"model_name": model.name, "model_version": str(model.version), "outputs": outputs}
    if request.id is not None:
        doc["id"] = request.id
    head = json.dumps(doc).encode()
    if not blobs:
        return head, {"content-type": "application/json"}
    return head + b"".join(blobs), {"content-type": "application/octet-stream",
                                    "inference-header-content-length": str(len(head))}


def _to_binary(a: np.ndarray, dtype: str) -> bytes:
    if dtype == "string":
        return b"".join(struct.pack("<I", len(b)) + b for b in (str(v).encode() for v in a.reshape(-1)))
    return np.ascontiguousarray(a, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()


def v2_metadata(model: ServedModel) -> dict[str, Any]:
    """GET /v2/models/NAME."""
    def info(t: Tensor) -> dict[str, Any]:
        return {"name": t.name, "datatype": V2_OF[t.dtype], "shape": [-1, *t.shape]}

    return {"name": model.name, "versions": [str(model.version)], "platform": "tensorflow_keras",
            "inputs": [info(t) for t in model.inputs], "outputs": [info(t) for t in model.outputs]}


