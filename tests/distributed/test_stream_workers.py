"""A streamed table on several workers (`data.stream` + `--workers 2`): each worker reads its own part of the rows,
every row once per epoch across the cluster, the same model on every worker, and an exact `--resume` after a
worker is killed.

The sharding rule itself is checked without TensorFlow over many shapes; the readers over real files (whole files
and windows of one file); one real 2-worker run, watched through a sitecustomize hook (the rows each worker's reader
hands to fit, and the weights each worker starts fit with); and a killed + resumed copy of that run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from kcli.data.stream_shard import Shard, part, shares
from tests.conftest import REPO, only_run, run_json
from tests.distributed.test_workers import _kill_worker_after_epoch
from tests.helpers import assert_same_run

ROWS = (70, 55, 76)   # 201 rows: 12 full global batches of 16 and a partial one of 9 (5 + 4 rows)
EPOCHS = 4
CONFIG = {
    "seed": 3,
    "data": {"source": "csv", "path": "shards", "label": "label", "stream": True, "batch_size": 16,
             "validation": {"path": "val.csv"}},
    "model": {"layers": [{"Dense": {"units": 4, "activation": "relu"}}, {"Dense": {"units": 2}}]},
    "compile": {"optimizer": {"SGD": {"learning_rate": 0.1, "momentum": 0.9}},
                "loss": {"SparseCategoricalCrossentropy": {"from_logits": True}}, "metrics": ["accuracy"]},
    "fit": {"epochs": EPOCHS},
    "distribute": "multi_worker",
    "save": ["keras"],
}

# Loaded by every worker process (PYTHONPATH): the ids of the rows each training reader hands to tf.data, one file
# per complete pass, and the weights each worker's model holds when fit begins (after adapting).
HOOK = '''
import json, os
TAP = os.environ.get("KCLI_TEST_TAP")
if TAP and os.environ.get("TF_CONFIG"):
    import itertools
    import numpy as np
    from kcli.data import stream
    rank = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    calls = itertools.count()
    groups, callback = stream.TableReader.groups, stream.EpochSetter.callback

    def tapped(self):
        if self.key != "data":
            yield from groups(self)
            return
        call, epoch, ids, batches = next(calls), self.epoch, [], 0
        for group in groups(self):
            ids.extend(int(v) for v in group[0]["id"].reshape(-1))
            batches += len(group[1])
            yield group
        with open(f"{TAP}/rows-{rank}-{os.getpid()}-{call}.json", "w") as fh:
            json.dump({"epoch": epoch, "ids": ids, "batches": batches}, fh)

    def watched(self):
        made = callback(self)
        def on_train_begin(logs=None):
            np.savez(f"{TAP}/weights-{rank}-{os.getpid()}.npz", *made.model.get_weights())
        made.on_train_begin = on_train_begin
        return made

    stream.TableReader.groups, stream.EpochSetter.callback = tapped, watched
'''


def write_table(folder: Path, rows: tuple[int, ...]) -> None:
    """CSV files of a learnable 2-class table with an `id` column numbering the rows across the files."""
    rng = np.random.default_rng(0)
    (folder / "shards").mkdir(parents=True)
    first = 0
    for i, n in enumerate(rows):
        x = rng.normal(size=(n, 2)) * [1.0, 50.0]
        lines = ["a,b,id,label"] + [f"{a:.4f},{b:.4f},{first + j},{int(a + b / 50 > 0)}"
                                    for j, (a, b) in enumerate(x)]
        (folder / "shards" / f"part-{i}.csv").write_text("\n".join(lines) + "\n")
        first += n
    (folder / "val.csv").write_text((folder / "shards" / "part-0.csv").read_text())


@pytest.mark.parametrize("workers", [2, 3, 4])
def test_the_rule_visits_every_row_once_with_equal_batches(workers: int) -> None:
    """TensorFlow-free: over many tables (files x rows) and batch sizes, the workers' pieces cover every row
    exactly once, each worker's share is within one row of the others' in the partial batch, and every worker has
    as many batches as one process has (one fewer when the partial batch has fewer rows than workers: dropped)."""
    rng = np.random.default_rng(workers)
    for _ in range(300):
        file_rows = [int(n) for n in rng.integers(0, 60, size=rng.integers(1, 7))]
        total = sum(file_rows)
        if total < workers:
            continue
        batch = workers * int(rng.integers(1, 9))
        seen = np.zeros(total, dtype=int)
        starts = np.cumsum([0, *file_rows])
        counts = []
        for k in range(workers):
            got = part(file_rows, batch, Shard(k, workers))
            for piece in got.pieces:
                seen[starts[piece.file] + piece.start:starts[piece.file] + piece.stop] += 1
            local = batch // workers
            counts.append(-(-got.rows // local) - got.drop_last)
            assert got.rows == shares(total, batch, workers)[k] and got.batches == counts[-1]
        assert (seen == 1).all(), (file_rows, batch)
        dropped = 0 < total % batch < workers
        assert counts == [total // batch + (0 if dropped else total % batch > 0)] * workers, (file_rows, batch)


@pytest.mark.parametrize("rows", [ROWS, (201,)], ids=["files>=workers", "one file: row windows"])
def test_the_readers_hand_out_every_row_once_per_epoch(tmp_path: Path, rows: tuple[int, ...]) -> None:
    """The training readers of 2 and 3 workers over real files (3 files, or 1 file cut into row windows), shuffled,
    epochs 0-2: every id exactly once per epoch across the workers, the same number of batches on each, an order
    that (seed, epoch) fixes and that changes with the epoch. Batch 8 on 2 workers leaves 1 row for the partial
    global batch: it is left out, another row each epoch."""
    from kcli.config import loading, model_io, resolve
    from kcli.data.load import load

    write_table(tmp_path, rows)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**CONFIG, "distribute": "none"}))
    left_out = []
    for workers, batch in ((2, 12), (3, 18), (2, 8)):   # partial global batches of 9, 3 (one row each) and 1 row
        orders: dict[tuple[int, int], list[int]] = {}
        for k in range(workers):
            cfg = resolve.resolve(loading.load(tmp_path / "c.yaml", [f"data.batch_size={batch}"]))
            splits = load(cfg.data, cfg.seed, model_io.of(cfg.model, cfg.data), None, None, Shard(k, workers))
            reader = splits.train.epoch_setter.reader
            for epoch in range(3):
                reader.epoch = epoch
                batches = list(reader.batches())
                assert len(batches) == (201 // batch if 201 % batch < workers else -(-201 // batch)), (workers, k)
                orders[k, epoch] = [int(v) for b in batches for v in b[0]["id"].reshape(-1)]
                again = [int(v) for b in reader.batches() for v in b[0]["id"].reshape(-1)]
                assert again == orders[k, epoch]
        for epoch in range(3):
            every = sorted(i for k in range(workers) for i in orders[k, epoch])
            if 201 % batch >= workers:
                assert every == list(range(201)), (workers, epoch)
            else:
                assert len(every) == len(set(every)) == 200 and set(every) <= set(range(201))
                left_out.append(set(range(201)) - set(every))
        assert orders[0, 0] != orders[0, 1]
    assert len(left_out) == 3 and len({frozenset(s) for s in left_out}) > 1   # not always the same row


def test_a_batch_that_does_not_divide_among_the_workers_is_one_line(tmp_path: Path) -> None:
    """Each worker takes an equal part of every batch, on one device: a batch size that does not divide by the
    workers, or workers of several replicas each, is a DataError naming its key (before any pass over the rows)."""
    from kcli.config import loading, model_io, resolve
    from kcli.data.load import load
    from kcli.errors import DataError

    write_table(tmp_path, ROWS)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**CONFIG, "distribute": "none"}))
    cfg = resolve.resolve(loading.load(tmp_path / "c.yaml"))
    ports = model_io.of(cfg.model, cfg.data)
    for shard, key, text in ((Shard(0, 3), "data.batch_size", "divides by 3 (not 16)"),
                             (Shard(0, 2, replicas=4), "data.stream", "these 2 workers hold 4 replicas")):
        with pytest.raises(DataError) as caught:
            load(cfg.data, cfg.seed, ports, None, None, shard)
        assert caught.value.key == key and text in caught.value.message


def _kcli(*args: str | Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return _ended(_started(*args, env=env), timeout)


def _started(*args: str | Path, env: dict[str, str]) -> subprocess.Popen:
    """`kcli ARGS` running; its output goes to temporary files (a full pipe nobody reads yet would stop it)."""
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    proc = subprocess.Popen([sys.executable, "-m", "kcli", *map(str, args)], cwd=REPO, stdout=out, stderr=err,
                            text=True, env=env)
    proc.outputs = (out, err)  # type: ignore[attr-defined]
    return proc


def _ended(proc: subprocess.Popen, timeout: float = 300) -> subprocess.CompletedProcess:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    texts = []
    for file in proc.outputs:  # type: ignore[attr-defined]
        file.seek(0)
        texts.append(file.read())
        file.close()
    return subprocess.CompletedProcess(proc.args, proc.returncode, *texts)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The table, the config, the hook, and one uninterrupted 2-worker run (the reference) with its taps; beside
    it (at the same time: the workers spend much of a run waiting on each other) the run of a last batch of one row
    (193 rows, 2 epochs) with its own taps, and the run whose worker is killed, then resumed."""
    folder = tmp_path_factory.mktemp("stream_workers")
    write_table(folder, ROWS)
    config = folder / "c.yaml"
    config.write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    hook, tap, last = folder / "hook", folder / "tap", folder / "last"
    hook.mkdir()
    tap.mkdir()
    (hook / "sitecustomize.py").write_text(HOOK)
    write_table(last, (70, 55, 68))
    (last / "tap").mkdir()
    (last / "c.yaml").write_text(yaml.safe_dump({**CONFIG, "fit": {"epochs": 2}}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", str(REPO))])}
    started = [_started("train", config, "--runs-dir", folder / "reference", "--workers", "2",
                        env={**env, "KCLI_TEST_TAP": str(tap)}),
               _started("train", last / "c.yaml", "--runs-dir", last / "runs", "--workers", "2",
                        env={**env, "KCLI_TEST_TAP": str(last / "tap")})]
    killed = _killed_run(config, folder / "killed", env)
    done, last_done = [_ended(proc) for proc in started]
    assert done.returncode == 0, done.stderr[-3000:]
    return {"folder": folder, "config": config, "reference": only_run(folder / "reference"), "tap": tap,
            "env": env, "last": last, "last_done": last_done, "killed": killed}  # type: ignore[dict-item]


def _killed_run(config: Path, runs: Path, env: dict[str, str]) -> dict[str, Any] | AssertionError:
    """The same 2-worker run with worker 1 SIGKILLed during epoch 3 (its exit code, stderr and run.json then), and
    its `--resume RUN --workers 2` when it stopped as expected; or why that failed (for the killed-worker test to
    report, not every test of the module)."""
    launcher = subprocess.Popen([sys.executable, "-m", "kcli", "train", str(config), "--runs-dir", str(runs),
                                 "--workers", "2", "--peer-timeout", "4"],
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True, env=env)
    try:
        _kill_worker_after_epoch(launcher, runs, index=1, epoch=2)
        _, err = launcher.communicate(timeout=60)
    except (AssertionError, subprocess.TimeoutExpired) as exc:
        return AssertionError(f"the killed run: {exc!r}")
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
    killed: dict[str, Any] = {"code": launcher.returncode, "err": err, "record": None, "resumed": None}
    if launcher.returncode == 1 and runs.is_dir():
        killed["record"] = run_json(only_run(runs))   # as the kill left it
        killed["resumed"] = _kcli("train", "--resume", only_run(runs), "--workers", "2", env=env)
    return killed


def test_two_workers_visit_every_row_once_per_epoch(project: dict[str, Path]) -> None:
    """The real run: in every epoch the two workers' readers handed out disjoint rows that together are the table,
    in 13 batches each (201 rows, global batch 16: worker 0 101 rows, worker 1 100)."""
    passes: dict[tuple[int, int], list[list[int]]] = {}
    for path in project["tap"].glob("rows-*.json"):
        rank = int(path.name.split("-")[1])
        record = json.loads(path.read_text())
        assert record["batches"] == 13, record
        passes.setdefault((rank, record["epoch"]), []).append(record["ids"])
    assert sorted(passes) == [(k, e) for k in (0, 1) for e in range(EPOCHS)]
    for (rank, epoch), seen in passes.items():
        assert all(ids == seen[0] for ids in seen), (rank, epoch)   # a pass read again (Keras's first batch) alike
    for epoch in range(EPOCHS):
        first, second = passes[0, epoch][0], passes[1, epoch][0]
        assert (len(first), len(second)) == (101, 100)
        assert sorted(first + second) == list(range(sum(ROWS))), epoch
    assert run_json(project["reference"])["status"] == "completed"


def test_every_worker_starts_from_the_same_model(project: dict[str, Path]) -> None:
    """Statistics learned alike by each worker from every training file: the adapted Normalization and the initial
    weights are equal on both workers when fit begins (exactly)."""
    files = {int(p.name.split("-")[1]): p for p in project["tap"].glob("weights-*.npz")}
    assert sorted(files) == [0, 1]
    with np.load(files[0]) as a, np.load(files[1]) as b:
        assert len(a.files) == len(b.files) > 0
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name])
        means = [a[n] for n in a.files if a[n].shape == (3,)]
    table = np.concatenate([np.loadtxt(p, delimiter=",", skiprows=1)
                            for p in sorted((project["folder"] / "shards").glob("*.csv"))])
    np.testing.assert_allclose(means[0], table[:, :3].mean(axis=0), rtol=1e-6)


def test_a_last_batch_of_one_row_is_left_out_without_a_crash(project: dict[str, Path]) -> None:
    """193 rows, global batch 16: the partial global batch holds 1 row, fewer than the 2 workers (TensorFlow crashed
    with SIGSEGV on the empty batch a worker would get). The run (the fixture's) completes; each epoch, 12 batches on
    each worker and 192 of the 193 rows, each once."""
    done, tap = project["last_done"], project["last"] / "tap"
    assert done.returncode == 0, done.stderr[-3000:]   # type: ignore[attr-defined]
    for epoch in range(2):
        passes = {}
        for path in tap.glob("rows-*.json"):
            record = json.loads(path.read_text())
            if record["epoch"] == epoch:
                assert record["batches"] == 12, record
                passes[int(path.name.split("-")[1])] = record["ids"]
        ids = passes[0] + passes[1]
        assert len(ids) == len(set(ids)) == 192 and set(ids) <= set(range(193)), epoch


def test_a_killed_worker_resumes_to_the_uninterrupted_run(project: dict[str, Path]) -> None:
    """SIGKILL of worker 1 during epoch 3 (the fixture's run, beside the reference); `kcli train --resume RUN
    --workers 2` continues from the last saved epoch and ends with the history and weights of the uninterrupted
    2-worker run."""
    killed = project["killed"]
    if isinstance(killed, AssertionError):
        raise killed
    assert killed["code"] == 1, killed["err"][-3000:]  # type: ignore[index]
    run_dir = only_run(project["folder"] / "killed")
    record = killed["record"]  # type: ignore[index]
    assert record["status"] == "interrupted" and 2 <= record["epochs_completed"] < EPOCHS, record
    resumed = killed["resumed"]  # type: ignore[index]
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert run_json(run_dir)["status"] == "completed"
    assert_same_run(run_dir, project["reference"])
