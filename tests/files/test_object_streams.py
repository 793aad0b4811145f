"""Streamed tables read straight from object storage (moto's S3-API server on localhost): no copy, the numbers of
the same local files, epochs from the store again when there is no cache (a store error retried, then the run
stops resumable), a SIGKILL then `--resume` equal to an uninterrupted run; image folders and TFRecord from a
prefix."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import REPO, only_run, run_cli, run_json, write_config
from tests.files import test_object_storage as storage
from tests.files.test_object_storage import BUCKET, _config, _history
from tests.helpers import assert_same_run, assert_user_error, train_ok

server, store = storage.server, storage.store   # the module's own moto server and bucket

STREAMED = "  batch_size: 16\n  stream: true\n"


def _streamed(folder: Path, path: str, val: str, epochs: int = 1, extra: str = "") -> Path:
    config = _config(folder, path, val)
    text = config.read_text().replace("  batch_size: 16\n", STREAMED).replace("epochs: 1", f"epochs: {epochs}")
    config.write_text(extra + text)
    return config


@pytest.fixture
def copies() -> Iterator[dict[Any, Path]]:
    """The objects this process copied (files/remote.py), emptied for the test."""
    from kcli.files import remote

    before = dict(remote._copies)
    remote._copies.clear()
    yield remote._copies
    remote._copies.update(before)


def test_a_streamed_table_reads_the_objects_without_copying(store: dict[str, Any], tmp_path: Path,
                                                           copies: dict[Any, Path]) -> None:
    """CSV shards and Parquet shards from a prefix stream block by block from the store (nothing copied) with the
    history of the same local folder streamed; run.json records the objects."""
    local = store["local"]
    reference = train_ok(_streamed(tmp_path / "local", str(local / "shards"), str(local / "val.csv")),
                         tmp_path / "runs-local")
    s3 = train_ok(_streamed(tmp_path / "s3", f"s3://{BUCKET}/shards", f"s3://{BUCKET}/val.csv"), tmp_path / "runs-s3")
    parquet = _streamed(tmp_path / "pq", f"s3://{BUCKET}/pq/", f"s3://{BUCKET}/val.parquet")
    parquet.write_text(parquet.read_text().replace("source: csv", "source: parquet"))
    pq = train_ok(parquet, tmp_path / "runs-pq")
    assert _history(s3) == _history(pq) == _history(reference)
    assert copies == {}   # read from the store, not copied into the temporary folder
    recorded = run_json(s3)["data_files"]
    assert sorted(recorded) == [f"s3://{BUCKET}/shards/part-{i}.csv" for i in (0, 1)] + [f"s3://{BUCKET}/val.csv"]


def test_without_a_cache_each_epoch_reads_the_store_again(store: dict[str, Any], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """No room for the cache: every epoch reads the objects again; a store error is read again (the blocks already
    given skipped) with the numbers of an untroubled run; one that persists stops the run resumable with one line
    naming data.path and the URL, as a vanished object does."""
    from kcli.data import stream
    from kcli.files import remote

    local = store["local"]
    reference = train_ok(_streamed(tmp_path / "ref", str(local / "shards"), str(local / "val.csv"), 2),
                         tmp_path / "runs-ref")
    monkeypatch.setattr(stream.Cache, "writer", lambda self, source: None)
    monkeypatch.setattr(remote, "RETRY_WAIT", 0.01)
    opened: list[str] = []
    failing = {"times": 0}
    open_input = remote.open_input

    def flaky(info: remote.Info, random_access: bool = False) -> Any:
        opened.append(info.url)
        if failing["times"] and info.url.endswith("part-1.csv") and len(opened) > 6:
            failing["times"] -= 1
            raise OSError("AWS Error NETWORK_CONNECTION during GetObject operation: connection reset")
        return open_input(info, random_access)

    monkeypatch.setattr(remote, "open_input", flaky)
    config = _streamed(tmp_path / "s3", f"s3://{BUCKET}/shards", f"s3://{BUCKET}/val.csv", 2)
    failing["times"] = 2   # twice in epoch 2: the third attempt reads it
    run = train_ok(config, tmp_path / "runs")
    assert_same_run(run, reference)
    # part-1 read by the pass before training, then in each of 2 epochs, and the 2 failed attempts
    assert opened.count(f"s3://{BUCKET}/shards/part-1.csv") == 1 + 2 + 2
    failing["times"], opened[:] = 3, []
    line = assert_user_error(run_cli("train", config, "--runs-dir", tmp_path / "failed"),
                             f"data.path: s3://{BUCKET}/shards/part-1.csv: cannot reach")
    assert "(read 3 times)" in line
    failed = only_run(tmp_path / "failed")
    assert run_json(failed)["status"] == "failed" and run_json(failed)["epochs_completed"] == 1
    assert f"kcli train --resume {failed}" in line
    # an object deleted between epochs: the line a vanished local file gives
    store["s3"].put_object(Bucket=BUCKET, Key="going/part-0.csv", Body=(local / "shards/part-0.csv").read_bytes())
    config = _streamed(tmp_path / "going", f"s3://{BUCKET}/going/", f"s3://{BUCKET}/val.csv", 2)
    read = stream.TableReader._blocks

    def deleting(reader: stream.TableReader, path: Any) -> Any:
        if reader.epoch == 1 and reader.key == "data":
            store["s3"].delete_object(Bucket=BUCKET, Key="going/part-0.csv")
        return read(reader, path)

    monkeypatch.setattr(stream.TableReader, "_blocks", deleting)
    line = assert_user_error(run_cli("train", config, "--runs-dir", tmp_path / "gone"),
                             f"data.path: s3://{BUCKET}/going/part-0.csv is gone (it was there when the run began)")
    assert "kcli train --resume" in line


SIGNALLER = '''\
import os, signal
import keras

class Signaller(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if os.environ.get("KCLI_TEST_EPOCH") and epoch + 1 == int(os.environ["KCLI_TEST_EPOCH"]):
            os.kill(os.getpid(), signal.SIGKILL)
'''


def test_sigkill_then_resume_against_the_store_equals_an_uninterrupted_run(store: dict[str, Any],
                                                                            tmp_path: Path) -> None:
    (tmp_path / "signaller.py").write_text(SIGNALLER)
    config = _streamed(tmp_path, f"s3://{BUCKET}/shards/", f"s3://{BUCKET}/val.csv", 3, "imports: [signaller.py]\n")
    text = config.read_text().replace("fit: {epochs: 3}", "fit: {epochs: 3, callbacks: [Signaller], checkpoint: "
                                      "{interval: 0}}")
    config.write_text(text.replace("  stream: true\n", "  stream: true\n  shuffle: true\n"))
    command = [sys.executable, "-m", "kcli", "train", str(config), "--runs-dir", str(tmp_path / "killed")]
    killed = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "KCLI_TEST_EPOCH": "2", "PYTHONPATH": str(REPO)})
    try:
        reference = train_ok(config, tmp_path / "reference")   # in this process, while the other one starts
        _, err = killed.communicate(timeout=300)
    finally:
        if killed.poll() is None:
            killed.kill()
            killed.wait()
    assert killed.returncode == -9, err[-2000:]
    run_dir = only_run(tmp_path / "killed")
    resumed = run_cli("train", "--resume", run_dir)
    assert resumed.exit_code == 0, resumed.stderr
    assert run_json(run_dir)["resumed"][0]["epoch"] == 1
    assert_same_run(run_dir, reference)


def _png(path: Path, value: int) -> bytes:
    import io

    from PIL import Image

    sink = io.BytesIO()
    Image.fromarray(np.full((6, 6, 3), value, np.uint8)).save(sink, format="PNG")
    return sink.getvalue()


def test_an_image_folder_from_a_prefix_trains_as_the_local_folder(store: dict[str, Any], tmp_path: Path) -> None:
    for cls, base in (("circle", 40), ("square", 200)):
        for i in range(4):
            body = _png(tmp_path, base + 5 * i)
            store["s3"].put_object(Bucket=BUCKET, Key=f"shapes/{cls}/{i}.png", Body=body)
            (tmp_path / "shapes" / cls).mkdir(parents=True, exist_ok=True)
            (tmp_path / "shapes" / cls / f"{i}.png").write_bytes(body)
    runs = []
    for where, path in (("s3", f"s3://{BUCKET}/shapes/"), ("local", str(tmp_path / "shapes"))):
        (tmp_path / where).mkdir()
        config = write_config(tmp_path / where, f"""\
            seed: 1
            data: {{source: images, path: '{path}', image_size: [6, 6], batch_size: 4, validation_split: 0.25}}
            model:
              input_shape: [6, 6, 3]
              layers: [{{Rescaling: {{scale: 0.0039}}}}, Flatten, {{Dense: {{units: 2}}}}]
            compile: {{optimizer: adam, loss: {{SparseCategoricalCrossentropy: {{from_logits: true}}}}}}
            fit: {{epochs: 2}}
            save: [keras]
        """)
        runs.append(train_ok(config, tmp_path / f"runs-{where}"))
    assert _history(runs[0]) == _history(runs[1])
    assert run_json(runs[0])["classes"] == ["circle", "square"]
    assert "kcli-objects" not in (runs[0] / "run.json").read_text()   # the URL is recorded, not the copy
    assert f"s3://{BUCKET}/shapes/" in (runs[0] / "config.yaml").read_text()
    text = (tmp_path / "s3" / "config.yaml").read_text()
    missing = write_config(tmp_path, text.replace("shapes/", "nope/"), "m.yaml")
    assert_user_error(run_cli("train", missing, "--runs-dir", tmp_path / "none"),
                      f"data.path: not found: s3://{BUCKET}/nope")


def test_a_tfrecord_prefix_trains_as_the_local_files(store: dict[str, Any], tmp_path: Path) -> None:
    """TFRecord shards under a prefix (tf.train.Example records; copied here, TensorFlow reads local files): the
    history of the same local files."""
    from tests.data.test_streams import write_tfrecord

    local = store["local"]
    for name in ("shards/part-0.csv", "shards/part-1.csv", "val.csv"):
        target = (tmp_path / "records" / name).with_suffix(".tfrecord")
        target.parent.mkdir(parents=True, exist_ok=True)
        write_tfrecord(local / name, target)
        store["s3"].put_object(Bucket=BUCKET, Key=f"records/{name}".replace(".csv", ".tfrecord"),
                               Body=target.read_bytes())
    runs = []
    for where, base in (("s3", f"s3://{BUCKET}/records"), ("local", str(tmp_path / "records"))):
        config = _config(tmp_path / where, f"{base}/shards/", f"{base}/val.tfrecord", "tfrecord")
        config.write_text(config.read_text().replace(
            "  batch_size: 16\n", "  batch_size: 16\n  features: {a: float, b: float, c: float, label: int}\n"))
        runs.append(train_ok(config, tmp_path / f"runs-{where}"))
    assert _history(runs[0]) == _history(runs[1]) and "val_loss" in _history(runs[0])[0]


def test_a_prefix_too_large_for_the_temporary_disk_is_one_line(store: dict[str, Any],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    from collections import namedtuple

    from kcli.errors import DataError
    from kcli.files import remote

    store["s3"].put_object(Bucket=BUCKET, Key="big/a/0.png", Body=b"x" * 3_000_000)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**10, 10**10 - 10**6, 10**6))
    with pytest.raises(DataError, match=r"s3://data/big/: its 3.0 MB do not fit the temporary folder \(1.0 MB free"):
        remote.local_folder(f"s3://{BUCKET}/big/", "data.path", (".png",))


def test_auto_streams_by_the_listed_sizes(store: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """`stream: auto` decides by the sizes the store lists (nothing read); a table read whole is copied."""
    from kcli.config.models import DataConfig
    from kcli.data import table_files
    from kcli.files import remote

    objects = table_files.table_sources(f"s3://{BUCKET}/shards/", "csv", "data")
    sizes = [(store["local"] / "shards" / name).stat().st_size for name in ("part-0.csv", "part-1.csv")]
    assert [(o.url, o.size) for o in objects] == [(f"s3://{BUCKET}/shards/part-{i}.csv", sizes[i]) for i in (0, 1)]
    assert all(isinstance(o, remote.Info) for o in objects)
    data = DataConfig(source="csv", path=f"s3://{BUCKET}/shards/", label="label")
    monkeypatch.setattr(table_files, "STREAM_ABOVE", sum(sizes))
    assert not table_files.should_stream(objects, data)
    monkeypatch.setattr(table_files, "STREAM_ABOVE", sum(sizes) - 1)
    assert table_files.should_stream(objects, data)
    copies = table_files.local_files(objects, "data")
    assert [p.read_bytes() for p in copies] == [(store["local"] / "shards" / n).read_bytes()
                                               for n in ("part-0.csv", "part-1.csv")]


def test_a_read_broken_mid_object_goes_on_after_the_blocks_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """A store error after some blocks: the object is read again from its start and the blocks already given are
    skipped, so the reader sees every block once, in order."""
    from kcli.files import remote

    monkeypatch.setattr(remote, "RETRY_WAIT", 0.0)
    info = remote.Info("s3://b/t.csv", 10, None)
    attempts = []

    def read() -> Iterator[int]:
        attempts.append(1)
        for block in range(5):
            if len(attempts) < 3 and block == len(attempts) + 1:   # the 1st read breaks after 2 blocks, the 2nd after 3
                raise OSError("AWS Error NETWORK_CONNECTION: connection reset")
            yield block

    assert list(remote.read_retried(info, "data.path", read)) == [0, 1, 2, 3, 4] and len(attempts) == 3
