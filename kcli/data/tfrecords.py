"""`source: tfrecord`: TFRecord files of tf.train.Example records, read as a table of named columns.

    data:
      source: tfrecord
      path: data/train-*.tfrecord      # a file, a folder or a glob
      features: {age: float, city: string, zone: int, label: int}   # the feature spec: float | int | string
      label: label

Each feature holds one value per record (a record without it is a missing cell, handled by `data.missing`);
they are parsed with `tf.io.parse_example` and `VarLenFeature`s, a block of records at a time, and from there
on are columns like a CSV's: kinds, vocabularies, Normalization, streaming and its seeded order all apply.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from kcli.data.checks import file_key
from kcli.errors import DataError

RECORDS = 65536   # records parsed per block
KINDS = ("float", "int", "string")


def blocks(path: Path, features: dict[str, str] | None, key: str) -> Iterator[Any]:
    """The records of one file as pyarrow Tables of up to RECORDS rows, one column per feature."""
    import tensorflow as tf

    if not features:
        raise DataError("source tfrecord needs `features`: the name and kind (float, int, string) of every "
                        "feature to read", key="data.features")
    dtypes = {"float": tf.float32, "int": tf.int64, "string": tf.string}
    spec = {name: tf.io.VarLenFeature(dtypes[kind]) for name, kind in features.items()}
    _check_lengths(path, key)   # TensorFlow crashes (SIGSEGV) on a record length larger than the file
    first = end = 0   # records parsed, and the byte where the last of them ended
    try:
        for serialized in tf.data.TFRecordDataset(str(path)).batch(RECORDS):
            parsed = tf.io.parse_example(serialized, spec)
            rows = int(serialized.shape[0])
            yield _table({name: _column(parsed[name], rows, features[name], name, first, path, key)
                          for name in features})
            first += rows
            end += FRAMING * rows + int(tf.reduce_sum(tf.strings.length(serialized)))
    except tf.errors.OpError as exc:
        raise _damaged(path, str(exc.message), first, end, key) from None


FRAMING = 16   # bytes around each record: its length (8), the length's checksum (4), the data's checksum (4)


def _damaged(path: Path, message: str, first: int, start: int, key: str) -> DataError:
    """TensorFlow's complaint about a record as one line naming the record and its byte (TensorFlow says only the
    byte; `first` records end at byte `start`)."""
    found = re.search(r"(truncated|corrupted) record at (\d+)", message)
    if found is None:
        message = " ".join(message.split("\n")[0].split())
        message = re.sub(r"\s*\[Op:.*$", "", re.sub(r"\{\{.*?\}\}\s*", "", message))   # TensorFlow's op details
        return DataError(f"cannot read {path} as TFRecord (after record {first}): {message}", key=file_key(key))
    before, begin = _record_at(path, start, int(found.group(2)))
    what = "is cut short" if found.group(1) == "truncated" else "does not match its checksum"
    return DataError(f"{path} is damaged: record {first + before + 1} (at byte {begin}) {what}; copy the file again",
                     key=file_key(key))


def _record_at(path: Path, start: int, offset: int) -> tuple[int, int]:
    """(how many whole records lie between byte `start` and the record holding byte `offset`, the byte where that
    record begins), walking the records' length fields (TensorFlow names its header's or its data's byte)."""
    count, begin = 0, start
    for count, (begin, length) in enumerate(_frames(path, start)):
        if length is None or begin + FRAMING + length > offset:
            return count, begin
        count, begin = count + 1, begin + FRAMING + length
    return count, begin


def _check_lengths(path: Path, key: str) -> None:
    """One line naming the record and its byte when a record's header is cut or its length field claims more
    bytes than the rest of the file (a cut, or a damaged length), found before TensorFlow reads the file."""
    size = path.stat().st_size
    for number, (begin, length) in enumerate(_frames(path, 0), 1):
        if length is None:   # TensorFlow would end quietly where a cut leaves part of a record's header
            raise DataError(f"{path} is damaged: it ends inside record {number} (byte {begin}; the file has {size} "
                            "bytes): the file was cut short, copy it again", key=file_key(key))
        if begin + FRAMING + length > size and not _header_intact(path, begin):
            raise DataError(f"{path} is damaged: record {number} (at byte {begin}) does not match its checksum; "
                            "copy the file again", key=file_key(key))
        if begin + FRAMING + length > size:
            raise DataError(f"{path} is damaged: record {number} (at byte {begin}) is cut short: its length field "
                            f"says {length} bytes, the file has {max(size - begin - FRAMING, 0)} more; copy the "
                            "file again", key=file_key(key))


def _header_intact(path: Path, begin: int) -> bool:
    """Whether the length field of the record at byte `begin` matches its checksum (when it does not, the length
    is noise: a damaged header or no TFRecord file at all, not a cut)."""
    with path.open("rb") as fh:
        fh.seek(begin)
        head = fh.read(12)
    if len(head) < 12:
        return True   # the checksum itself is cut off: a cut
    return masked_crc(head[:8]) == int.from_bytes(head[8:], "little")


def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC-32C of a record's length field, as its writer stores it after the length."""
    crc = _crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of a few bytes, bit by bit (one record header, only when its length looks wrong)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _frames(path: Path, start: int) -> Iterator[tuple[int, int | None]]:
    """(the byte where each record from byte `start` on begins, the data length its header claims; None for a
    header the file cuts), to the end of the file: the one walk over the records' length fields."""
    begin = start
    with path.open("rb") as fh:
        fh.seek(start)
        while head := fh.read(8):
            length = int.from_bytes(head, "little") if len(head) == 8 else None
            yield begin, length
            if length is None:
                return
            begin += FRAMING + length
            fh.seek(begin)


def _column(sparse: Any, rows: int, kind: str, name: str, first: int, path: Path, key: str) -> Any:
    """One feature as a pyarrow array, null where a record lacks it."""
    import pyarrow as pa

    row_of = sparse.indices.numpy()[:, 0]
    counts = np.bincount(row_of, minlength=rows)
    if counts.size and counts.max() > 1:
        record = int(np.argmax(counts > 1))
        raise DataError(f"{path}: record {first + record + 1}: feature {name!r} holds {int(counts[record])} values; "
                        "kcli reads one value per feature and record", key=file_key(key))
    values = sparse.values.numpy()
    missing = counts == 0
    if kind == "string":
        texts: list[str | None] = [None] * rows
        for row, value in zip(row_of.tolist(), values.tolist()):
            texts[row] = value.decode("utf-8", errors="replace")
        return pa.array(texts, type=pa.string())
    dense = np.zeros(rows, np.float32 if kind == "float" else np.int64)
    dense[row_of] = values
    return pa.array(dense, mask=missing)


def _table(columns: dict[str, Any]) -> Any:
    import pyarrow as pa

    return pa.table(columns)


def read_table(path: Path, features: dict[str, str] | None, key: str) -> Any:
    """The whole file as one pyarrow Table."""
    import pyarrow as pa

    if not path.is_file():
        raise DataError(f"data file not found: {path}", key=file_key(key))
    parts = list(blocks(path, features, key))
    if not parts or sum(p.num_rows for p in parts) == 0:
        raise DataError(f"{path} holds no records", key=file_key(key))
    return pa.concat_tables(parts)
