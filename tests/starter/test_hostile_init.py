"""`kcli init --data` on hostile files: names from the data never become YAML structure or code, a header whose
columns make one input name twice is refused before a config is written, undecodable text names its cell."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from kcli.errors import DataError
from kcli.starter import data as starter_data
from tests.conftest import run_cli
from tests.helpers import assert_user_error

# Column names YAML would read as another type, as a comment, as structure; with line breaks, ESC, bidi, U+FFFF
HOSTILE = ["true", "1", "~", "null", "x\ny", "e\x1bsc", "#h", "q: [1]", "\u202ebidi", "u\uffff", "n\x85l", "k" * 300]
LABEL_VALUES = ["a", "z\nimports: [EVIL.py]  #", "c\r\nimports: [EVIL.py]"]


def _hostile_csv(folder: Path, name: str) -> Path:
    """A CSV with HOSTILE feature columns (numbers), one text column of hostile values, and a hostile label."""
    path = folder / name
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow([*HOSTILE, "kind", "label"])
        for i in range(30):
            kind = ["p\nimports: [EVIL.py]", "s\x1b[31m", "t\uffff"][i % 3]
            out.writerow([*(f"{(i * 7 + j) % 11 / 10}" for j in range(len(HOSTILE))), kind, LABEL_VALUES[i % 3]])
    return path


def test_init_writes_data_names_as_yaml_that_loads_back_exactly(tmp_path: Path) -> None:
    """Every name from the data (columns, label, file name) loads back as that exact string; comments quoting data
    stay one line; no `imports` key appears; and the config trains (so no code can be named by the data)."""
    (tmp_path / "EVIL.py").write_text(f"open({str(tmp_path / 'PWNED')!r}, 'w').write('x')\n")
    data = _hostile_csv(tmp_path, "d\nimports: EVIL.py #\x1b.csv")
    target = tmp_path / "init.yaml"
    result = run_cli("init", "--data", data, "--label", "label", "--output", target)
    assert result.exit_code == 0, result.stderr
    text = target.read_text(encoding="utf-8")
    written = yaml.safe_load(text)
    assert "imports" not in written and set(written) == {"name", "seed", "data", "model", "compile", "fit"}
    assert list(written["data"]["columns"]) == [*HOSTILE, "kind"]
    assert all(isinstance(k, str) for k in written["data"]["columns"])
    assert written["data"]["label"] == "label" and written["data"]["path"] == data.name
    comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    assert not any(line.lstrip().startswith("imports") for line in text.splitlines())
    assert all("\x1b" not in line and "\uffff" not in line for line in comments)
    assert "}#" not in text   # every comment after a space, long keys too
    trained = run_cli("train", target, "--runs-dir", tmp_path / "runs", "--set", "fit.epochs=1")
    assert trained.exit_code == 0, trained.stderr
    assert not (tmp_path / "PWNED").exists()


def test_init_on_the_probes_file_name_never_runs_code(tmp_path: Path) -> None:
    """The probe's file name `x\nimports: [evil.py] #.csv`: the config loads back to it, without `imports`; train
    refuses in one line (a name with `[` reads as a glob) and imports nothing."""
    (tmp_path / "evil.py").write_text(f"open({str(tmp_path / 'PWNED')!r}, 'w').write('x')\n")
    data = tmp_path / "x\nimports: [evil.py] #.csv"
    data.write_text("a,b,label\n" + "".join(f"{i / 10},{i % 3},{i % 2}\n" for i in range(20)))
    target = tmp_path / "i.yaml"
    assert run_cli("init", "--data", data, "--label", "label", "--output", target).exit_code == 0
    written = yaml.safe_load(target.read_text(encoding="utf-8"))
    assert "imports" not in written and written["data"]["path"] == data.name
    trained = run_cli("train", target, "--runs-dir", tmp_path / "runs", "--set", "fit.epochs=1")
    assert trained.exit_code == 0 or assert_user_error(trained, "data.path")
    assert not (tmp_path / "PWNED").exists()


def test_scalar_keeps_plain_names_plain_and_quotes_the_rest() -> None:
    """Names YAML reads as themselves stay as they are (readable configs); the rest load back exactly."""
    assert starter_data._scalar("sepal length") == "sepal length" and starter_data._scalar("größe") == "größe"
    for name in [*HOSTILE, "x\udcff", "'q'", '"q"', "- a", "a #b", "@x", "%x", "*x", "&x", "!x", "{a}", "? x"]:
        assert "\n" not in starter_data._scalar(name)
        assert yaml.safe_load(f"{starter_data._scalar(name)}: 1") == {name: 1}, name


def test_init_refuses_columns_that_make_one_input_name_as_train_does(tmp_path: Path) -> None:
    """`a, a,label`: both columns would be the input `a`; init refuses it with train's rule, writing nothing."""
    (tmp_path / "d.csv").write_text("a, a,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(20)))
    expected = f"{tmp_path / 'd.csv'}: columns 'a' and ' a' both make the input name 'a'"
    line = assert_user_error(run_cli("init", "--data", tmp_path / "d.csv", "--label", "label", "--output",
                                     tmp_path / "i.yaml"), expected)
    assert line.startswith("error: --data: ") and not (tmp_path / "i.yaml").exists()
    (tmp_path / "i.yaml").write_text("data: {source: csv, path: d.csv, label: label}\n"
                                     "model: {layers: [Dense: {units: 2}]}\ncompile: {optimizer: adam, loss: mse}\n")
    assert_user_error(run_cli("train", tmp_path / "i.yaml", "--runs-dir", tmp_path / "runs"),
                      f"data.columns: {expected}")
    (tmp_path / "n.csv").write_text("1,c_1,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(20)))
    assert_user_error(run_cli("init", "--data", tmp_path / "n.csv", "--label", "label", "--output",
                              tmp_path / "n.yaml"), "columns '1' and 'c_1' both make the input name 'c_1'")


def _undecodable_csv(path: Path, rows: int, bad: int) -> Path:
    """A CSV whose text column `kind` holds the bytes \\xff\\xfe (not UTF-8) at data row `bad`."""
    lines = [b"f1,kind,label"] + [b"%d,%s,%d" % (i % 7, b"\xff\xfe" if i + 1 == bad else b"xy"[i % 2:i % 2 + 1], i % 2)
                                  for i in range(rows)]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.mark.parametrize("stream", [False, True])
def test_undecodable_text_names_file_row_and_column(tmp_path: Path, stream: bool) -> None:
    """Bytes that are not UTF-8 at data row 2501 of 3000: one line naming file, row and column (data.path), read
    whole or streamed, as init names it."""
    data = _undecodable_csv(tmp_path / "d.csv", 3000, 2501)
    _undecodable_csv(tmp_path / "v.csv", 50, 0)
    expected = f"data.path: {data}: data row 2501, column 'kind' is not UTF-8 text"
    assert_user_error(run_cli("init", "--data", data, "--label", "label", "--output", tmp_path / "i.yaml"),
                      expected.replace("data.path", "--data"))
    (tmp_path / "c.yaml").write_text(f"data: {{source: csv, path: d.csv, label: label, stream: {str(stream).lower()},"
                                     " validation: {path: v.csv}}\nmodel: {layers: [Dense: {units: 2}]}\n"
                                     "compile: {optimizer: adam, loss: mse}\nfit: {epochs: 1}\n")
    assert_user_error(run_cli("train", tmp_path / "c.yaml", "--runs-dir", tmp_path / "runs"), expected)


def test_undecodable_text_in_a_later_streamed_block_names_its_row_and_column(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The first block read the column as text; a later block's bad bytes are found again, row and column named."""
    from kcli.data import stream

    monkeypatch.setattr(stream, "BLOCK_BYTES", 1024)
    data = _undecodable_csv(tmp_path / "d.csv", 3000, 2501)
    blocks = stream.blocks(data, "csv", "data")
    with pytest.raises(DataError) as caught:
        for _ in blocks:
            pass
    assert caught.value.message == f"{data}: data row 2501, column 'kind' is not UTF-8 text; save the file as UTF-8"
    assert caught.value.key == "data.path"


@pytest.mark.parametrize("stream", [False, True])
def test_a_header_that_is_not_utf8_is_one_line(tmp_path: Path, stream: bool) -> None:
    """A column name with the byte \\xff: one line naming the file, for init and for train read whole or streamed."""
    rows = b"".join(b"%d,%d,%d\n" % (i, i % 3, i % 2) for i in range(30))
    for name in ("d.csv", "v.csv"):
        (tmp_path / name).write_bytes(b"a,b\xff,label\n" + rows)
    expected = f"{tmp_path / 'd.csv'}: its header line is not UTF-8 text"
    assert_user_error(run_cli("init", "--data", tmp_path / "d.csv", "--label", "label", "--output",
                              tmp_path / "i.yaml"), f"--data: {expected}")
    (tmp_path / "c.yaml").write_text(f"data: {{source: csv, path: d.csv, label: label, stream: {str(stream).lower()},"
                                     " validation: {path: v.csv}}\nmodel: {layers: [Dense: {units: 2}]}\n"
                                     "compile: {optimizer: adam, loss: mse}\nfit: {epochs: 1}\n")
    assert_user_error(run_cli("train", tmp_path / "c.yaml", "--runs-dir", tmp_path / "runs"), f"data.path: {expected}")


def test_init_on_an_image_folder_with_hostile_names_loads_back_exactly(tmp_path: Path) -> None:
    """Class folder names in comments stay one line; the folder's path (a line break, `imports:`) loads back."""
    from tests.files.test_hostile_files import png

    folder = tmp_path / "x\nimports: [evil.py] #"
    for name in ("a\nimports: [evil.py]", "b\x1b[31m"):
        (folder / name).mkdir(parents=True)
        for i in range(2):
            png(folder / name / f"{i}.png")
    result = run_cli("init", "--data", folder, "--output", tmp_path / "i.yaml")
    assert result.exit_code == 0, result.stderr
    text = (tmp_path / "i.yaml").read_text(encoding="utf-8")
    written = yaml.safe_load(text)
    assert "imports" not in written and written["data"]["path"] == folder.name and "\x1b" not in text
    assert "#   a\\nimports: [evil.py]: 2 images\n#   b\\x1b[31m: 2 images\n" in text
