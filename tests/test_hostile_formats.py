"""Hostile file formats: a TFRecord length that would crash TensorFlow, folders and JSON nested too deep to walk
or parse, a run's files too big or too strange to embed in its report: each ends in one line or a calm page."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import tiny_project

SPARSE = {"SparseCategoricalCrossentropy": {"from_logits": True}}
ROOT = Path(__file__).resolve().parents[1]


def _crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), bit by bit: enough for an 8-byte length field."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _masked(crc: int) -> int:
    """TFRecord's masked CRC of a header, as its writer stores it."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _tfrecord_project(folder: Path) -> tuple[Path, Path, list[int]]:
    """A TFRecord file of 6 examples (x, y) and a config reading it; returns (config, file, each record's byte)."""
    import tensorflow as tf

    path, starts = folder / "t.tfrecord", []
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(6):
            starts.append(path.stat().st_size if path.exists() else 0)
            feature = {"x": tf.train.Feature(float_list=tf.train.FloatList(value=[i / 6])),
                       "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 2]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
            writer.flush()
    config = tiny_project(folder, splits=(), data={"source": "tfrecord", "path": "t.tfrecord", "label": "y",
                                                   "features": {"x": "float", "y": "int"}, "validation": None,
                                                   "test": None, "one_hot": None, "batch_size": 8},
                          model={"input_shape": None, "layers": [{"Dense": {"units": 2}}]},
                          compile={"loss": SPARSE, "metrics": None}, fit={"epochs": 1})
    return config, path, starts


@pytest.mark.parametrize("stream", [False, True])
def test_a_tfrecord_length_beyond_the_file_with_a_valid_checksum_is_one_line_not_a_crash(tmp_path: Path,
                                                                                        stream: bool) -> None:
    config, path, starts = _tfrecord_project(tmp_path)
    damaged = bytearray(path.read_bytes())
    length = (2**40).to_bytes(8, "little")   # record 2 claims a terabyte, its header's checksum valid
    damaged[starts[1]:starts[1] + 12] = length + _masked(_crc32c(length)).to_bytes(4, "little")
    path.write_bytes(bytes(damaged))
    # a subprocess: TensorFlow reading this length ends the process with SIGSEGV
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KCLI_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-m", "kcli", "train", str(config), "--runs-dir", str(tmp_path / "runs"),
                           "--set", f"data.stream={str(stream).lower()}"], capture_output=True, text=True,
                          timeout=120, env=env, cwd=tmp_path)
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    expected = (f"data.path: {path} is damaged: record 2 (at byte {starts[1]}) is cut short: its length field says "
                f"{2**40} bytes, the file has {len(damaged) - starts[1] - 16} more; copy the file again")
    assert len(lines) == 1 and expected in lines[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
