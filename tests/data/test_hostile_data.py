"""Hostile or damaged data files and stores: each is one line naming the file (or key) before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.helpers import assert_user_error, tiny_project

SPARSE = {"SparseCategoricalCrossentropy": {"from_logits": True}}


@pytest.mark.parametrize("uri", ["file:///etc", "sqlite:///{tmp}/text.db", "mysql://kcli:pw@127.0.0.1:9/none"])
def test_a_tracking_store_that_cannot_be_used_is_one_line_before_the_run_folder(tmp_path: Path, uri: str) -> None:
    pytest.importorskip("mlflow")
    (tmp_path / "text.db").write_text("not a database\n")
    uri = uri.format(tmp=tmp_path)
    config = tiny_project(tmp_path, tracking={"mlflow": {"uri": uri}})
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    line = assert_user_error(result, "tracking.mlflow.uri: cannot log to MLflow: ")
    assert ":pw@" not in line   # a password in the URI is never printed
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def _tfrecord_project(folder: Path, records: int = 60) -> tuple[Path, Path, list[int]]:
    """A TFRecord file of `records` examples (x, y) and a config reading it; returns (config, file, the byte where
    each record begins)."""
    import tensorflow as tf

    path, starts = folder / "train.tfrecord", []
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(records):
            starts.append(path.stat().st_size if path.exists() else 0)
            feature = {"x": tf.train.Feature(float_list=tf.train.FloatList(value=[i / records])),
                       "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 2]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
            writer.flush()
    config = tiny_project(folder, splits=(), data={"source": "tfrecord", "path": "train.tfrecord", "label": "y",
                                                   "features": {"x": "float", "y": "int"}, "validation": None,
                                                   "test": None, "one_hot": None, "batch_size": 8},
                          model={"input_shape": None, "layers": [{"Dense": {"units": 2}}]},
                          compile={"loss": SPARSE, "metrics": None}, fit={"epochs": 1})
    return config, path, starts


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("where", ["header", "data", "checksum"])
def test_a_damaged_tfrecord_file_names_its_record_and_byte_before_training(tmp_path: Path, where: str,
                                                                           stream: bool) -> None:
    config, path, starts = _tfrecord_project(tmp_path)
    content = path.read_bytes()
    if where == "checksum":
        damaged = bytearray(content)
        damaged[starts[40] + 14] ^= 0xFF   # a byte of record 41's data
        path.write_bytes(bytes(damaged))
        expected = f"data.path: {path} is damaged: record 41 (at byte {starts[40]}) does not match its checksum"
    else:
        cut = starts[40] + (5 if where == "header" else 20)   # inside record 41's length field, or its data
        path.write_bytes(content[:cut])
        expected = (f"data.path: {path} is damaged: it ends inside record 41 (byte {starts[40]}; the file has {cut} "
                    "bytes)" if where == "header" else
                    f"data.path: {path} is damaged: record 41 (at byte {starts[40]}) is cut short")
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs", "--set", f"data.stream={str(stream).lower()}")
    assert_user_error(result, expected)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_init_refuses_a_header_with_empty_names_and_training_too(tmp_path: Path) -> None:
    (tmp_path / "blank.csv").write_text("a,,,label\n1,2,3,0\n4,5,6,1\n")
    assert_user_error(run_cli("init", "--data", tmp_path / "blank.csv", "--label", "label", "--output",
                              tmp_path / "blank.yaml"),
                      f"--data: {tmp_path / 'blank.csv'}: column(s) 2, 3 of the header have no name")
    assert not (tmp_path / "blank.yaml").exists()
    (tmp_path / "wide.csv").write_text("a,b,label\n1,2,0\n1,2,3,4\n")
    assert_user_error(run_cli("init", "--data", tmp_path / "wide.csv", "--label", "label", "--output",
                              tmp_path / "wide.yaml"), "wide.csv: data row 2 has 4 values, the header 3")
    (tmp_path / "one.csv").write_text("a,,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(20)))
    config = tiny_project(tmp_path, splits=(), data={"source": "csv", "path": "one.csv", "label": "label",
                                                     "validation": None, "test": None, "one_hot": None},
                          model={"input_shape": None, "layers": [{"Dense": {"units": 2}}]},
                          compile={"loss": SPARSE})
    assert_user_error(run_cli("train", config, "--runs-dir", tmp_path / "runs"),
                      f"data.path: {tmp_path / 'one.csv'}: column(s) 2 of the header have no name")


def test_init_keeps_header_names_as_training_reads_them(tmp_path: Path) -> None:
    (tmp_path / "spaced.csv").write_text("a, b ,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(30)))
    assert run_cli("init", "--data", tmp_path / "spaced.csv", "--label", "label", "--output",
                   tmp_path / "spaced.yaml").exit_code == 0
    assert "' b ': {kind: number}" in (tmp_path / "spaced.yaml").read_text()
    result = run_cli("train", tmp_path / "spaced.yaml", "--runs-dir", tmp_path / "runs", "--set", "fit.epochs=1")
    assert result.exit_code == 0, result.stderr


def test_init_reads_a_large_sparse_csv_in_bounded_memory(tmp_path: Path) -> None:
    import tracemalloc

    from kcli.starter import data as starter_data

    line = "".join(f"{i % 7},{'' if i % 50 else i},,{'x' if i % 2 else ''},{i * 0.5},,{i % 2}\n"
                   for i in range(1000))
    path = tmp_path / "sparse.csv"
    with path.open("w") as fh:
        fh.write("a,b,c,d,e,f,label\n")
        fh.write("1,,2,,,3,0\n")
        for _ in range(400):   # 400k rows, 7 MB
            fh.write(line)
    tracemalloc.start()
    try:
        columns = starter_data.describe_csv(path, "label")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak   # every row held as Python lists took > 100 MB
    kinds = {c.name: (c.kind, c.detail, c.missing) for c in columns}
    assert kinds["a"] == ("number", "0 .. 6", 0) and kinds["d"] == ("category", "1 values: x", 200_001)
    assert kinds["b"] == ("number", "0 .. 950", 392_001) and kinds["c"][2] == 400_000
    assert kinds["label"][0] == "label: class ids"


def _image_folder(folder: Path, cut: tuple[str, ...] = ()) -> Path:
    """Two classes of 16 x 16 JPEG and PNG images; the files named in `cut` lose their second half."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (folder / "pics" / label).mkdir(parents=True)
        for i in range(4):
            pixels = tf.constant(rng.integers(0, 255, (16, 16, 3)), tf.uint8)
            for suffix, encode in ((".jpg", tf.io.encode_jpeg), (".png", tf.io.encode_png)):
                name = folder / "pics" / label / f"{i}{suffix}"
                content = encode(pixels).numpy()
                name.write_bytes(content[:len(content) // 2] if f"{label}/{name.name}" in cut else content)
    return folder / "pics"


def _image_config(folder: Path, channels: int = 3, **data: object) -> Path:
    return tiny_project(folder, splits=(), data={"source": "images", "path": "pics", "image_size": [16, 16],
                                                 "validation": None, "test": None, "one_hot": None, "batch_size": 4,
                                                 **data},
                        model={"input_shape": [16, 16, channels], "layers": ["Flatten", {"Dense": {"units": 2}}]},
                        compile={"loss": SPARSE}, fit={"epochs": 1})


def test_a_truncated_image_is_one_line_naming_it_before_training(tmp_path: Path) -> None:
    pics = _image_folder(tmp_path, cut=("b/2.jpg", "b/3.png"))
    result = run_cli("train", _image_config(tmp_path), "--runs-dir", tmp_path / "runs")
    assert_user_error(result, f"data.path: {pics / 'b' / '2.jpg'} is damaged or cut short: it does not decode as an "
                              "image (and 1 more bad image file(s)); remove it or replace it")
    assert not (tmp_path / "runs").exists()


def test_an_image_keras_cannot_decode_to_the_color_mode_is_one_line(tmp_path: Path) -> None:
    pics = _image_folder(tmp_path)
    gif = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")
    (pics / "a" / "9.gif").write_bytes(gif)   # TensorFlow decodes a GIF to 3 channels only
    result = run_cli("train", _image_config(tmp_path, channels=1, color_mode="grayscale"), "--runs-dir",
                     tmp_path / "runs")
    assert_user_error(result, f"data.path: {pics / 'a' / '9.gif'} decodes, but not to 1 channel(s) as "
                              "data.color_mode asks")
    assert not (tmp_path / "runs").exists()


def test_skip_bad_images_leaves_out_truncated_images_and_says_so(tmp_path: Path) -> None:
    import json

    pics = _image_folder(tmp_path, cut=("a/0.png", "b/1.jpg"))
    result = run_cli("train", _image_config(tmp_path, skip_bad_images=True), "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.stderr
    run = next((tmp_path / "runs").iterdir())
    assert json.loads((run / "run.json").read_text())["data_notes"] == [
        f"skipped 2 file(s) of {pics} that are not images (data.skip_bad_images): a/0.png, b/1.jpg"]
    # kcli predict on a cut image names it too (TensorFlow's decode failed with "unexpected InvalidArgumentError")
    assert_user_error(run_cli("predict", run, "--input", pics / "a" / "0.png", "--output", tmp_path / "p.csv"),
                      f"--input: {pics / 'a' / '0.png'} is damaged or cut short")


def _streamed_csv(folder: Path, name: str = "train.csv", rows: int = 200, **changed: str) -> Path:
    """A CSV of `rows` rows (a, b, label 0/1); `changed` maps a 0-based row index (as text) to its whole line."""
    lines = [f"{i * 0.1:.1f},{i % 7},{i % 2}" for i in range(rows)]
    for index, line in changed.items():
        lines[int(index)] = line
    path = folder / name
    path.write_text("a,b,label\n" + "\n".join(lines) + "\n")
    return path


def _stream_config(folder: Path, loss: object = SPARSE, **data: object) -> Path:
    return tiny_project(folder, splits=(), data={"source": "csv", "path": "train.csv", "label": "label",
                                                 "stream": True, "validation": None, "test": None, "one_hot": None,
                                                 "batch_size": 8, **data},
                        model={"input_shape": None, "layers": [{"Dense": {"units": 2}}]},
                        compile={"loss": loss, "metrics": None}, fit={"epochs": 1})


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Streamed CSVs parsed in blocks of 256 bytes: a small file has many blocks."""
    from kcli.data import stream

    monkeypatch.setattr(stream, "BLOCK_BYTES", 256)


def test_a_streamed_label_outside_the_classes_names_its_file_and_row(tmp_path: Path, small_blocks: None) -> None:
    path = _streamed_csv(tmp_path, **{"170": "1.0,2,7"})
    result = run_cli("train", _stream_config(tmp_path), "--runs-dir", tmp_path / "runs")
    assert_user_error(result, f"compile.loss: the data labels (shape [] per example) do not fit loss "
                              f"SparseCategoricalCrossentropy with model output (None, 2): class ids must lie in 0..1, "
                              f"found 0..7 ({path}: data row 171 holds 7)")
    assert not (tmp_path / "runs").exists()
    # one-hot labels: a validation id the training labels lack (np.eye failed mid-run with an IndexError)
    _streamed_csv(tmp_path)
    val = _streamed_csv(tmp_path, "val.csv", rows=30, **{"20": "1.0,2,5"})
    config = _stream_config(tmp_path, {"CategoricalCrossentropy": {"from_logits": True}}, one_hot=True,
                            validation={"path": "val.csv"})
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    assert_user_error(result, f"data.validation.path: {val}: data row 21 holds 5, a class id outside 0..1")
    assert not (tmp_path / "runs").exists()


def test_a_bad_cell_far_down_a_streamed_csv_names_its_row_and_column(tmp_path: Path, small_blocks: None) -> None:
    path = _streamed_csv(tmp_path, **{"150": "oops,2,1"})
    line = assert_user_error(run_cli("train", _stream_config(tmp_path), "--runs-dir", tmp_path / "runs"),
                             f"data.path: {path}: data row 151, column 'a' is 'oops', not a number as in its first "
                             "rows (a streamed table takes each column's kind from its first block of rows")
    assert "CSV conversion" not in line
    path = _streamed_csv(tmp_path, **{"150": "1.5,2,1,9"})   # a row of 4 values: not a matter of blocks
    line = assert_user_error(run_cli("train", _stream_config(tmp_path), "--runs-dir", tmp_path / "runs"),
                             f"data.path: {path}: data row 151: CSV parse error: Expected 3 columns, got 4")
    assert "block" not in line
    path = _streamed_csv(tmp_path, **{"150": "1.5,2.5,1"})   # a decimal among whole numbers
    assert_user_error(run_cli("train", _stream_config(tmp_path), "--runs-dir", tmp_path / "runs"),
                      f"data.path: {path}: data row 151, column 'b' is '2.5', not a whole number as in its first rows")
    assert not (tmp_path / "runs").exists()


def test_the_image_decoders_complaints_are_not_shown_beside_kclis_line() -> None:
    from kcli.output import quiet

    assert quiet.is_noise(b"Improper call to JPEG library in state 201\n")
    assert quiet.is_noise(b"E0000 00:00:1796489558.477257    3761 jpeg_mem.cc:331] Premature end of JPEG data. "
                          b"Stopped at line 0/16\n")
    assert not quiet.is_noise(b"E0000 00:00:1796489558.477257    3761 op_kernel.cc:12] something else\n")
