"""The pure modules, checked in milliseconds without TensorFlow: config parsing, overrides, error locations,
hold-out and one-hot, CSV line blocks, run lookup, the stderr filter, the trust rules."""

from __future__ import annotations

import importlib
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from kcli.config import loading as config_mod
from kcli.config import resolve as resolve_mod
from kcli.config.compose import origin_of
from kcli.config.dump import differences
from kcli.config.keys import key_path
from kcli.config.models import DataConfig
from kcli.config.overrides import apply_overrides
from kcli.data import checks, csv_files, csv_reader, labels
from kcli.data import splits as splits_mod
from kcli.distributed import cluster
from kcli.errors import ConfigError, KcliError, RunError
from kcli.output import quiet
from kcli.run import find, trust

BASE = "model: {input_shape: [4], layers: [Dense: {units: 2}]}\ncompile: {loss: mse}\n"


def _load(tmp_path: Path, text: str, overrides: list[str] | None = None) -> config_mod.LoadedConfig:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return config_mod.load(path, overrides)


def test_line_map_and_duplicates(tmp_path: Path) -> None:
    loaded = _load(tmp_path, "name: a\nfit:\n  epochs: 2\n" + BASE)
    path = tmp_path / "c.yaml"
    assert loaded.origins["fit.epochs"] == (path, 3) and loaded.origins["model.layers[0]"] == (path, 4)
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, BASE + "fit: {epochs: 1, epochs: 2}\n")
    assert "fit.epochs: duplicate key 'epochs' (lines 3 and 3)" in str(err.value)
    with pytest.raises(ConfigError, match="unknown key 'x'"):   # anchors and aliases are fine YAML
        _load(tmp_path, "x: &f {epochs: 3}\n" + BASE + "fit: *f\n")


def test_unknown_key_gets_a_suggestion(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, BASE + "fit: {epoch: 2}\n")
    assert str(err.value).endswith("c.yaml:3: fit.epoch: unknown key 'epoch' in fit (did you mean 'epochs'?)")


def test_safe_names_from_file_stems() -> None:
    assert resolve_mod.safe_name("my config (copy)") == "my-config--copy-"
    assert resolve_mod.safe_name("..hidden") == "hidden"
    assert resolve_mod.safe_name("ü") == "run"


def test_overrides_assign_by_path() -> None:
    raw = {"fit": {"epochs": 1}, "model": {"layers": [{"Dense": {"units": 3}}]}}
    keys = apply_overrides(raw, ["fit.epochs=5", "model.layers[0].Dense.units=7"])
    assert raw["fit"]["epochs"] == 5 and raw["model"]["layers"][0]["Dense"]["units"] == 7
    assert set(keys) == {"fit.epochs", "model.layers[0].Dense.units"}
    with pytest.raises(KcliError):
        apply_overrides(raw, ["model.layers[3].Dense.units=1"])


def test_error_locations() -> None:
    assert key_path(("model", "layers", 2, "Dense")) == "model.layers[2].Dense"
    origins = {"model.layers[2]": (Path("c.yaml"), 9)}
    assert origin_of("model.layers[2].Dense.units", origins) == (Path("c.yaml"), 9)
    assert origin_of("fit.epochs", origins) is None
    err = ConfigError("bad", key="model.layers[2].Dense.units", line=9).located("c.yaml")
    assert str(err) == "c.yaml:9: model.layers[2].Dense.units: bad"


def test_config_differences_name_the_keys(tmp_path: Path) -> None:
    a = resolve_mod.resolve(_load(tmp_path, "seed: 1\n" + BASE))
    b = resolve_mod.resolve(_load(tmp_path, "seed: 1\n" + BASE, ["fit.epochs=3"]))
    assert differences(b, a) == {"fit.epochs": (1, 3)}


def test_hold_out_is_seeded_and_keeps_file_order() -> None:
    arrays = splits_mod.Arrays(np.arange(20, dtype=np.float32).reshape(10, 2), np.arange(10))
    data = DataConfig(validation_split=0.2, test_split=0.3)
    train, val, test = splits_mod.hold_out(arrays, None, None, data, seed=3)
    assert (len(train), len(val), len(test)) == (5, 2, 3)
    for part in (train, val, test):
        assert list(part.y) == sorted(part.y)
    assert sorted([*train.y, *val.y, *test.y]) == list(range(10))
    again = splits_mod.hold_out(arrays, None, None, data, seed=3)
    assert list(again[1].y) == list(val.y)


def test_one_hot_infers_classes_from_every_split() -> None:
    splits = splits_mod.Splits(splits_mod.Arrays(np.zeros((3, 1)), np.array([0, 1, 1])),
                             test=splits_mod.Arrays(np.zeros((1, 1)), np.array([3])))
    assert labels.one_hot(splits, True) == 4
    assert splits.train.y.shape == (3, 4) and splits.test.y[0, 3] == 1


def test_check_numbers_names_the_first_bad_cell() -> None:
    x = np.ones((4, 3))
    x[2, 1] = np.inf
    with pytest.raises(KcliError) as err:
        checks.check_numbers(x, "f.csv", "data", ["a", "b", "c"])
    assert "inf at data row 3, column 'b'; 1 value(s)" in str(err.value)


def test_csv_matched_by_column_name(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("c,target,a,b\n3,1,1,2\n6,0,4,5\n")
    arrays = csv_files.read_csv_columns(path, csv_reader.csv_header(path), ["a", "b", "c"], "target", "data")
    np.testing.assert_array_equal(arrays.x, [[1, 2, 3], [4, 5, 6]])
    assert list(arrays.y) == [1, 0]
    with pytest.raises(KcliError, match="lacks the column"):
        csv_files.read_csv_columns(path, csv_reader.csv_header(path), ["a", "z"], "target", "data")


def test_line_blocks_end_at_line_breaks() -> None:
    from kcli.use.predict_input import _line_blocks

    text = b"".join(f"{i},{i}\n".encode() for i in range(1000)) + b"1000,1000"
    blocks = list(_line_blocks(io.BytesIO(text), 97, Path("x.csv")))
    assert all(b.endswith(b"\n") for b in blocks) and b"".join(blocks) == text + b"\n"


def test_parse_threads_follow_this_process_cpus() -> None:
    from kcli.use.predict_input import PARSE_THREADS

    assert 2 <= PARSE_THREADS <= max(2, min(8, len(os.sched_getaffinity(0))))


def test_latest_breaks_ties_within_one_second(tmp_path: Path) -> None:
    for name, ended in (("a-20260101-000000", "2026-01-01T00:00:00.000002+00:00"),
                        ("b-20260101-000000", "2026-01-01T00:00:00.000001+00:00"),
                        ("c-20260101-000000", None)):
        (tmp_path / name).mkdir()
        status = "completed" if ended else "interrupted"
        (tmp_path / name / "run.json").write_text(json.dumps({"status": status, "ended": ended,
                                                              "started": "2026-01-01T00:00:00+00:00"}))
    assert find.find_run("latest", tmp_path).name == "a-20260101-000000"
    assert find.find_run("latest", tmp_path, resumable=True).name == "c-20260101-000000"
    with pytest.raises(RunError, match="no completed run"):
        find.find_run("latest", tmp_path / "c-20260101-000000")


def test_stderr_filter_keeps_errors_and_drops_chatter() -> None:
    data = (b"I0000 00:00:1732712345.1   12 port.cc:153] oneDNN custom operations are on.\n"
            b"W1127 18:01:02.123456  123 file.cc:45] a warning\n"
            b"E1127 18:01:02.123456  123 file.cc:45] an error\n"
            b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
            b"error: kcli\n")
    assert quiet.filter_lines(data) == b"E1127 18:01:02.123456  123 file.cc:45] an error\nerror: kcli\n"


def test_stderr_filter_drops_tensorflows_lost_peer_logging() -> None:
    """A lost worker makes every collective op log the abort (kcli says it in one line of its own)."""
    data = (b"E0000 00:00:1795824715.566724   17954 base_collective_executor.cc:252] BaseCollectiveExecutor::"
            b"StartAbort UNAVAILABLE: Error reported from /job:worker/task:1: The following tasks are unhealthy\n"
            b"/job:worker/replica:0/task:1\n"
            b"The tasks have crashed. Check the task logs for an earlier error\n"
            b"\n"
            b"error: training stopped on worker 0: a worker of the cluster was lost\n")
    assert quiet.filter_lines(data) == b"error: training stopped on worker 0: a worker of the cluster was lost\n"


def test_tf_config_is_read_as_tensorflow_does() -> None:
    """The chief is `chief` 0 when there is one, else worker 0; mistakes name TF_CONFIG."""
    two = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}
    found = cluster.from_env({"TF_CONFIG": json.dumps(two)})
    assert found is not None and found.workers == 2 and not found.is_chief and found.address == "b:2"
    with_chief = {"cluster": {"chief": ["c:3"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}
    assert cluster.parse(with_chief).is_chief and cluster.parse(with_chief).workers == 2
    assert not cluster.parse({**with_chief, "task": {"type": "worker", "index": 0}}).is_chief
    assert cluster.from_env({"TF_CONFIG": " "}) is None
    for raw, message in [({"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}, "host:port"),
                         ({"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker", "index": 0}},
                          "parameter servers"),
                         ({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}, "outside"),
                         ({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": True}}, "must name")]:
        with pytest.raises(KcliError, match=message) as caught:
            cluster.parse(raw)
        assert caught.value.key == "TF_CONFIG"
    assert json.loads(cluster.local_config([5, 6], 1))["task"] == {"type": "worker", "index": 1}


def test_trust_store_remembers_hashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KCLI_HOME", str(tmp_path / "home"))
    run_dir = tmp_path / "run"
    (run_dir / "code").mkdir(parents=True)
    code = run_dir / "code" / "m.py"
    code.write_text("X = 1\n")
    record = {"imports": {"files": ["code/m.py"], "modules": ["some.module"]}}
    with pytest.raises(RunError, match="code/m.py, module some.module"):
        trust.allowed_code(run_dir, record, trust_code=False)
    assert trust.remember([code], ["some.module"]) is None
    assert trust.allowed_code(run_dir, record, trust_code=False).files == [code.resolve()]
    code.write_text("X = 2\n")
    with pytest.raises(RunError, match="code/m.py"):
        trust.allowed_code(run_dir, record, trust_code=False)


def test_main_module_does_not_run_on_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["kcli", "--version"])
    sys.modules.pop("kcli.__main__", None)
    importlib.import_module("kcli.__main__")   # would raise SystemExit if it ran the CLI


def test_runs_overview_survives_damaged_records(tmp_path: Path) -> None:
    for name, record in (("list", [1, 2]), ("strange", {"status": "completed", "best": {"value": "high"}}),
                         ("fine", {"status": "completed", "started": "2026-01-01T00:00:00+00:00"})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_text(json.dumps(record))
    rows = {row[0]: row for row in find.overview(tmp_path)}
    assert set(rows) == {"list", "strange", "fine"} and rows["fine"][1] == "completed"
    assert rows["strange"][1] == "damaged" and rows["list"][1] == "damaged"   # listed as such, not hidden
