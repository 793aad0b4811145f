"""Nothing a received file says may act: a run's config.yaml names no code but the run's own (evaluate, predict,
export, train --resume), and names from data are printed as text, never as markup or terminal escapes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.conftest import run_cli, run_json
from tests.helpers import assert_user_error, copy_as_received, tiny_project, train_ok

DATA_FN = '''\
import numpy as np
import tensorflow as tf


def make(data, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = np.eye(3, dtype="float32")[np.argmax(x[:, :3], axis=1)]
    part = lambda a, b: tf.data.Dataset.from_tensor_slices((a, b)).batch(8)
    return part(x[:24], y[:24]), None, part(x[24:], y[24:])
'''


def _evil(marker: Path) -> str:
    """A Python file that leaves `marker` behind if it is imported, or if anything it defines is called."""
    return f'''\
import keras
open({str(marker)!r}, "w").write("imported")


def make(*args, **kwargs):
    open({str(marker)!r}, "w").write("called")


class Evil(keras.layers.Layer):
    pass
'''


@pytest.fixture(scope="module")
def own_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run this user trained, whose data comes from a Python function (copied into RUN/code/)."""
    folder = tmp_path_factory.mktemp("own")
    (folder / "data_fn.py").write_text(DATA_FN)
    config = tiny_project(folder, data={"source": "python", "function": "data_fn.py:make", "path": None,
                                        "validation": None, "test": None, "one_hot": None}, fit={"epochs": 1})
    return train_ok(config, folder / "runs")


@pytest.fixture
def received(own_run: Path, tmp_path: Path) -> Path:
    """A copy of the own run, as if it was received from someone (its code/ is still the trusted copy)."""
    return copy_as_received(own_run, tmp_path)


def _edit(run: Path, change: Any) -> None:
    """Edit the run's config.yaml mapping in place with `change(raw)`."""
    raw = yaml.safe_load((run / "config.yaml").read_text())
    change(raw)
    (run / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def _set(path: str, value: Any) -> Any:
    """A change that sets `a.b[0].c` (dots and list indexes) in the config mapping."""
    def change(raw: dict[str, Any]) -> None:
        parts = path.replace("[", ".").replace("]", "").split(".")
        target: Any = raw
        for part in parts[:-1]:
            target = target[int(part)] if part.isdigit() else target.setdefault(part, {})
        last = parts[-1]
        target[int(last) if last.isdigit() else last] = value
    return change


def _hostile(evil: str) -> list[tuple[str, Any, str]]:
    """(what, config change, key the refusal names): every way config.yaml can name code."""
    return [
        ("data.function file", _set("data.function", f"{evil}:make"), "data.function"),
        ("data.function os:system", _set("data.function", "os:system"), "the module 'os'"),
        ("imports", _set("imports", [evil]), "imports[0]"),
        ("layer file", _set("model.layers[0]", {f"{evil}:Evil": {}}), "model.layers[0]"),
        ("layer module", _set("model.layers[1]", "kcli_evil_probe:Evil"), "the module 'kcli_evil_probe'"),
        ("model.class", lambda raw: raw["model"].update({"layers": None, "class": f"{evil}:Evil"}), "model.class"),
        ("schedule", _set("compile.optimizer", {"Adam": {"learning_rate": {f"{evil}:Evil": {}}}}),
         "compile.optimizer.Adam.learning_rate"),
        ("callback", _set("fit.callbacks", [{"LearningRateScheduler": {"schedule": f"{evil}:make"}}]),
         "fit.callbacks[0]"),
    ]


HOSTILE_IDS = [what for what, _, _ in _hostile("e.py")]


@pytest.fixture
def evil(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(evil.py, marker): the file, and an importable module `kcli_evil_probe` with the same body."""
    marker = tmp_path / "ran"
    (tmp_path / "evil.py").write_text(_evil(marker))
    (tmp_path / "kcli_evil_probe.py").write_text(_evil(marker))
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path / "evil.py", marker


@pytest.mark.parametrize("case", range(len(HOSTILE_IDS)), ids=HOSTILE_IDS)
def test_a_received_config_names_no_code_but_the_runs_own(received: Path, evil: tuple[Path, Path], tmp_path: Path,
                                                         case: int) -> None:
    evil_py, marker = evil
    what, change, key = _hostile(str(evil_py))[case]
    _edit(received, change)
    np.save(tmp_path / "x.npy", np.zeros((2, 4), np.float32))
    commands = [("evaluate", received), ("predict", received, "--input", tmp_path / "x.npy"),
                ("export", received, "--format", "keras")]
    for command in commands:
        for trust in ([], ["--trust-code"]):   # --trust-code trusts the run's own code/, nothing else
            line = assert_user_error(run_cli(*command, *trust), "would run with your rights")
            assert key in line and "config.yaml" in line, line
            assert not marker.exists(), (what, command, trust)
    assert not (received / "export").exists() and not list(received.glob("eval-*"))


def test_the_own_run_still_runs_its_own_code(own_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_cli("evaluate", own_run)
    assert result.exit_code == 0, result.stderr
    assert json.loads((own_run / "eval-test.json").read_text())["examples"] == 8
    monkeypatch.setenv("KCLI_HOME", str(tmp_path / "another-user"))   # the same run, received by someone else
    line = assert_user_error(run_cli("evaluate", own_run), "loading this run would run Python code")
    assert "code/data_fn.py" in line and "--trust-code" in line
    result = run_cli("evaluate", own_run, "--trust-code")
    assert result.exit_code == 0, result.stderr


def _interrupted(run: Path) -> None:
    (run / "run.json").write_text(json.dumps({**run_json(run), "status": "failed"}))


def test_resume_of_a_received_run_runs_no_code_it_names(received: Path, evil: tuple[Path, Path]) -> None:
    evil_py, marker = evil
    _interrupted(received)
    _edit(received, _set("data.function", f"{evil_py}:make"))
    for trust in ([], ["--trust-code"]):
        line = assert_user_error(run_cli("train", "--resume", received, *trust), "would run with your rights")
        assert "data.function" in line and str(evil_py) in line
    assert not marker.exists()
    assert run_json(received)["status"] == "failed"


def test_resume_runs_the_runs_own_trusted_code(received: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _interrupted(received)
    source = Path(yaml.safe_load((received / "config.yaml").read_text())["data"]["function"].rsplit(":", 1)[0])
    assert source.is_file() and source.parent != received / "code"
    monkeypatch.setenv("KCLI_HOME", str(tmp_path / "another-user"))
    assert_user_error(run_cli("train", "--resume", received), "loading this run would run Python code")
    result = run_cli("train", "--resume", received, "--trust-code")
    assert result.exit_code == 0, result.stderr
    assert run_json(received)["status"] == "completed"


# ---- names from data are printed as text: never markup, never terminal control ----

CLASS_NAMES = ["[/]", "[link=http://x]a[/link]", "\x1b]0;pwned\x07", "<b>", ":smile:"]
SHOWN = ["[/]", "[link=http://x]a[/link]", "\\x1b]0;pwned\\x07", "<b>", ":smile:"]   # how each reads on screen


def _no_control(result: Any) -> None:
    """Neither stream carries a raw ESC, BEL or other control character (newlines and tabs aside)."""
    for stream in (result.stdout, result.stderr):
        assert not [c for c in stream if not c.isprintable() and c not in "\n\t"], stream


def _first_column(stdout: str, title: str) -> list[str]:
    """The first cells of the ASCII table titled `title` (without its header row)."""
    lines = stdout.splitlines()
    rows = []
    for line in lines[[i for i, line in enumerate(lines) if line.strip() == title][0] + 1:]:
        if not line.startswith(("|", "+")):
            break
        if line.startswith("|") and not line.startswith("|-"):
            rows.append(line.split("|")[1].strip())
    return rows[1:]


@pytest.fixture(scope="module")
def named_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CSV run whose string labels are hostile class names."""
    folder = tmp_path_factory.mktemp("names")
    rng = np.random.default_rng(0)
    rows = [f"{a:.3f},{b:.3f},{CLASS_NAMES[i % 5]}" for i, (a, b) in enumerate(rng.normal(size=(50, 2)))]
    (folder / "t.csv").write_text("a,b,target\n" + "\n".join(rows) + "\n", encoding="utf-8")
    config = folder / "config.yaml"
    config.write_text("seed: 1\ndata: {source: csv, path: t.csv, label: target, test_split: 0.4}\n"
                      "model: {input_shape: [2], layers: [{Dense: {units: 5}}]}\n"
                      "compile: {loss: {SparseCategoricalCrossentropy: {from_logits: true}}}\n"
                      "fit: {epochs: 1}\nsave: [keras]\n")
    run = train_ok(config, folder / "runs")
    assert sorted(run_json(run)["classes"]) == sorted(CLASS_NAMES)
    return run


def test_class_names_are_shown_as_text_by_evaluate(named_run: Path) -> None:
    result = run_cli("evaluate", named_run)
    assert result.exit_code == 0, (result.stderr, result.exception)
    _no_control(result)
    assert sorted(_first_column(result.stdout, "Per class")) == sorted(SHOWN)
    assert [r["class"] for r in json.loads((named_run / "eval-test.json").read_text())["per_class"]] == \
        run_json(named_run)["classes"]   # the file keeps the names as they are


def test_class_names_are_shown_as_text_by_predict(named_run: Path, tmp_path: Path) -> None:
    rows = np.random.default_rng(3).normal(size=(40, 2)).astype(np.float32)
    np.save(tmp_path / "x.npy", rows)
    out = tmp_path / "p.csv"
    assert run_cli("predict", named_run, "--input", tmp_path / "x.npy", "--output", out).exit_code == 0
    import csv
    predicted = {row["predicted"] for row in csv.DictReader(out.open(encoding="utf-8"))}
    assert len(predicted) > 1 and "\x1b]0;pwned\x07" in predicted
    result = run_cli("predict", named_run, "--input", tmp_path / "x.npy")
    assert result.exit_code == 0, (result.stderr, result.exception)
    _no_control(result)
    counted = _first_column(result.stdout, "Predicted classes")
    assert sorted(counted) == sorted(SHOWN[CLASS_NAMES.index(p)] for p in predicted)


def test_error_lines_show_data_as_text(named_run: Path, tmp_path: Path) -> None:
    hostile = tmp_path / "\x1b]0;pwned\x07[/]x[link=http:x]y.csv"
    line = assert_user_error(run_cli("evaluate", named_run, "--data", hostile),
                             "data file not found: " + str(tmp_path) + "/\\x1b]0;pwned\\x07[/]x[link=http:x]y.csv")
    assert "\x1b" not in line and "\x07" not in line


@pytest.mark.parametrize("name, shown", [("a\x1b[31mb", "'a\\x1b[31mb'"), ("a\nb", "'a\\nb'"),
                                         ("a\u202eb", "'a\\u202eb'")])
def test_a_layer_name_with_control_characters_is_refused(tmp_path: Path, name: str, shown: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"model": {"input_shape": [2], "layers": ["Flatten", {"Dense": {
        "units": 2, "name": name}}]}, "compile": {"loss": "mse"}}))
    line = assert_user_error(run_cli("validate", config), f"model.layers[1]: Dense.name {shown} holds a control")
    assert "\x1b" not in line


def test_names_in_pictures_are_text_not_mathtext(tmp_path: Path) -> None:
    from kcli.run import pictures

    pictures.confusion(np.eye(2, dtype=np.int64), tmp_path / "c.png", "run on $\\fooo$ (a data file's name)")
    pictures.history([{"epoch": 1, "$\\x$": 0.5}], tmp_path / "h.png", "$\\undefined{")
    assert (tmp_path / "c.png").stat().st_size > 0 and (tmp_path / "h.png").stat().st_size > 0
