"""Hostile paths and names: keys that look like path syntax, store/model/input/output paths that are FIFOs, link
loops, devices or unwritable folders, and cells too big to parse: each is one line naming the key, exit 2."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from kcli.config.keys import key_parts, key_path
from tests.conftest import run_cli
from tests.helpers import assert_user_error, tiny_project, train_ok

# ---- 5. a config key holding brackets or dots is quoted in key paths ----


@pytest.mark.parametrize("loc", [("data", "x[red]"), ("data", "a.b", 0, "c"), ("model", "layers", 2, "Dense"),
                                 ("data", 'q"]')])
def test_key_paths_quote_keys_that_look_like_path_syntax_and_read_back(loc: tuple) -> None:
    assert tuple(key_parts(key_path(loc))) == loc


@pytest.mark.parametrize("key", ["x[red]", "x[0]", "a.b"])
def test_unknown_key_with_brackets_or_dots_is_named_as_itself(tmp_path: Path, key: str) -> None:
    config = tiny_project(tmp_path, data={key: 1})
    line = assert_user_error(run_cli("validate", config), f"unknown key {key!r} in data")
    assert f'data["{key}"]' in line and "top level" not in line


def test_set_names_a_quoted_key_as_errors_spell_it(tmp_path: Path) -> None:
    config = tiny_project(tmp_path)
    assert_user_error(run_cli("validate", config, "--set", 'data["x[red]"]=2'), "unknown key 'x[red]' in data")


# ---- 1. MLflow: a local store at a FIFO or a link loop, and a URI holding a password ----

@pytest.mark.parametrize("make", ["fifo", "loop"])
@pytest.mark.parametrize("scheme", ["sqlite:///", "file://"])
def test_a_local_tracking_store_that_is_a_fifo_or_a_link_loop_is_one_line_before_the_run(
        tmp_path: Path, make: str, scheme: str) -> None:
    pytest.importorskip("mlflow")
    store = tmp_path / "store.db"
    if make == "fifo":
        os.mkfifo(store)
    else:
        store.symlink_to(store)
    config = tiny_project(tmp_path)
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs", "--set", f"tracking.mlflow.uri={scheme}{store}")
    why = "is not a regular file (a FIFO)" if make == "fifo" else "is a symbolic link loop"
    assert_user_error(result, f"tracking.mlflow.uri: cannot log to MLflow: {store} {why}")
    assert not (tmp_path / "runs").exists()


def test_a_tracking_uri_password_is_never_printed_and_the_real_cause_is_said_once(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    with socket.socket() as sock:   # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tiny_project(tmp_path)
    uri = f"http://alice:s3cret@127.0.0.1:{port}/"
    result = run_cli("train", config, "--runs-dir", tmp_path / "runs", "--set", f"tracking.mlflow.uri={uri}")
    line = assert_user_error(result, "tracking.mlflow.uri: cannot log to MLflow: Connection refused")
    assert "s3cret" not in result.stdout + result.stderr and "alice:***@127.0.0.1" in line
    assert line.count("127.0.0.1") == 1
    assert not (tmp_path / "runs").exists()


# ---- 2. model.init_from at a FIFO, a link loop, a device ----

@pytest.mark.parametrize("make", ["fifo", "loop", "device", "fifo-in-run"])
@pytest.mark.parametrize("command", ["train", "validate"])
def test_init_from_that_is_not_a_readable_file_is_one_line(tmp_path: Path, make: str, command: str) -> None:
    source = tmp_path / "x.keras"
    if make == "fifo":
        os.mkfifo(source)
    elif make == "loop":
        source.symlink_to(tmp_path / "y.keras")
        (tmp_path / "y.keras").symlink_to(source)
    elif make == "device":
        source = Path("/dev/zero")
    else:
        source = tmp_path / "run"
        source.mkdir()
        os.mkfifo(source / "model.keras")
    config = tiny_project(tmp_path, model={"init_from": str(source)})
    why = {"fifo": "is not a regular file (a FIFO)", "loop": "is a symbolic link loop",
           "device": "is not a regular file (a character device)", "fifo-in-run": "is not a regular file (a FIFO)"}
    args = ("--runs-dir", tmp_path / "runs") if command == "train" else ()
    line = assert_user_error(run_cli(command, config, *args), "model.init_from: ")
    assert f"{source} {why[make]}" in line or f"{source / 'model.keras'} {why[make]}" in line
    assert not (tmp_path / "runs").exists()


# ---- 3, 4. predict / export: an --output folder that cannot be written, an --input that is no regular file ----

@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("paths")
    config = tiny_project(folder, fit={"epochs": 1}, save=["keras"])
    return train_ok(config, folder / "runs")


def _unwritable() -> Path:
    """A folder even root cannot create files in (sysfs)."""
    try:
        fd = os.open("/sys/.kcli-probe", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return Path("/sys")
    os.close(fd)
    pytest.skip("/sys is writable here")


@pytest.mark.parametrize("args", [("predict", "--input", "test.npz", "--output", "x.csv"),
                                  ("predict", "--input", "test.npz", "--output", "x.npz"),
                                  ("export", "--format", "savedmodel", "--output", "kx"),
                                  ("export", "--format", "keras", "--output", "k.keras")])
def test_an_output_folder_that_cannot_be_written_is_one_line_before_the_work(finished: Path, args: tuple) -> None:
    folder = _unwritable()
    command, *rest = args
    rest = [str(finished.parent.parent / a) if a == "test.npz" else a for a in rest]
    rest[-1] = str(folder / rest[-1])
    line = assert_user_error(run_cli(command, finished, *rest), f"--output: cannot write in {folder} (")
    assert "permission denied" in line or "read-only file system" in line
    assert not (folder / Path(rest[-1]).name).exists()


@pytest.mark.parametrize("make", ["fifo", "loop", "device", "dangling"])
def test_predict_input_that_is_no_regular_file_says_what_it_is(finished: Path, tmp_path: Path, make: str) -> None:
    source = tmp_path / "in.npz"
    if make == "fifo":
        os.mkfifo(source)
    elif make == "loop":
        source.symlink_to(source)
    elif make == "device":
        source = Path("/dev/zero")
    else:
        source.symlink_to(tmp_path / "gone.npz")
    why = {"fifo": "is not a regular file (a FIFO)", "loop": "is a symbolic link loop",
           "device": "is not a regular file (a character device)", "dangling": "is a link that points at nothing"}
    line = assert_user_error(run_cli("predict", finished, "--input", source), f"--input: {source} {why[make]}")
    assert "not found" not in line


# ---- 6. a CSV cell larger than kcli's block size ----

@pytest.mark.parametrize("how", ["train", "train-stream", "init"])
def test_a_csv_cell_larger_than_the_block_size_is_one_line_naming_the_file_and_the_limit(
        tmp_path: Path, how: str) -> None:
    from kcli.data.csv_reader import CSV_BLOCK_BYTES

    table = tmp_path / "big.csv"
    rows = "".join(f"{i},{i % 2}\n" for i in range(20))
    table.write_text("a,y\n" + rows + "x" * (3 * CSV_BLOCK_BYTES) + ",0\n" + rows)
    if how == "init":
        result = run_cli("init", "--data", table, "--label", "y", "--output", tmp_path / "new.yaml")
    else:
        config = tiny_project(tmp_path, data={"source": "csv", "path": "big.csv", "label": "y",
                                              "stream": how == "train-stream", "validation": None, "test": None,
                                              "one_hot": None},
                              model={"input_shape": None, "layers": [{"Dense": {"units": 2}}]},
                              compile={"loss": {"SparseCategoricalCrossentropy": {"from_logits": True}}})
        result = run_cli("train", config, "--runs-dir", tmp_path / "runs")
    line = assert_user_error(result, f"{table}")
    assert "larger than kcli's CSV block size of 1 MiB" in line and "straddl" not in line
    assert not (tmp_path / "runs").exists() and not (tmp_path / "new.yaml").exists()


def test_predict_csv_with_a_huge_cell_is_one_line_not_a_memory_error(finished: Path, tmp_path: Path) -> None:
    from kcli.use.predict_input import MAX_LINE_BYTES

    table = tmp_path / "in.csv"
    with table.open("w") as fh:
        fh.write("1,2,3,4\n" * 10 + "1,2,3," + "4" * (MAX_LINE_BYTES + 10) + "\n" + "1,2,3,4\n")
    assert_user_error(run_cli("predict", finished, "--input", table),
                      f"--input: {table}: a line of it is larger than kcli's limit of {MAX_LINE_BYTES >> 20} MiB")


def test_predict_csv_with_a_huge_first_line_is_one_line(finished: Path, tmp_path: Path) -> None:
    table = tmp_path / "in.csv"
    table.write_text("a,b,c," + "d" * 200_000 + "\n1,2,3,4\n")
    assert_user_error(run_cli("predict", finished, "--input", table), f"cannot read the first line of {table}")
