"""`kcli init --data` without training (kcli.starter.data): the kinds read from a CSV or an image folder, and the
config written for them, loaded back as the config kcli trains. TensorFlow-free."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from kcli.config import loading as config_mod
from kcli.errors import DataError
from kcli.starter import data as starter_data


def csv_file(folder: Path, text: str, name: str = "table.csv") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_columns_get_their_kinds_ranges_and_empty_cells(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "size,colour,price,label\n1.5,red,10,0\n,blue,,2\n-2,red,30,1\n")
    columns = starter_data.describe_csv(path, "label")
    assert [(c.name, c.kind, c.detail, c.missing) for c in columns] == [
        ("size", "number", "-2 .. 1.5", 1),
        ("colour", "category", "2 values: blue, red", 0),
        ("price", "number", "10 .. 30", 1),
        ("label", "label: class ids", "3 classes (0 .. 2)", 0)]
    assert starter_data.classes_of(columns[-1]) == 3


@pytest.mark.parametrize("labels,kind,detail,classes", [
    (["cat", "dog", "cat"], "label: class names", "2 classes: cat, dog", 2),
    (["0.5", "2", "7.25"], "label: numbers", "0.5 .. 7.25 (regression)", None),
    ([str(i) for i in range(25)], "label: numbers", "0 .. 24 (regression)", None),   # too many ids for classes
])
def test_the_label_decides_classification_or_regression(tmp_path: Path, labels: list[str], kind: str, detail: str,
                                                         classes: int | None) -> None:
    path = csv_file(tmp_path, "x,y\n" + "".join(f"{i},{label}\n" for i, label in enumerate(labels)))
    label = starter_data.describe_csv(path, "y")[-1]
    assert (label.kind, label.detail, starter_data.classes_of(label)) == (kind, detail, classes)


@pytest.mark.parametrize("text,label,key,message", [
    ("a,b\n1,2\n", "c", "--label", "has the columns a, b; name the label column with --label"),
    ("a,b\n1,\n", "b", "--label", "data row 1: the label 'b' is empty; every row needs a label"),
    ("a,b\n", "b", "--data", "needs a header line and at least one row"),
    ("a,b\n,1\n,2\n", "b", "--data", "column 'a' is empty in every row; drop it"),
    ("a,b\n1,2\n3,4,5\n", "b", "--data", "data row 2 has 3 values, the header 2"),
])
def test_a_file_that_cannot_start_a_config_is_one_error(tmp_path: Path, text: str, label: str, key: str,
                                                       message: str) -> None:
    with pytest.raises(DataError) as caught:
        starter_data.describe_csv(csv_file(tmp_path, text), label)
    assert caught.value.key == key and message in caught.value.message


def test_the_written_config_loads_as_kcli_reads_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    path = csv_file(data, "size,colour,label\n1.5,red,a\n,blue,b\n-2,red,a\n", "my table.csv")
    target, columns = starter_data.init(path, "label", tmp_path / "out.yaml")
    assert target == tmp_path / "out.yaml" and [c.name for c in columns] == ["size", "colour", "label"]
    loaded = config_mod.load(target).config
    assert (loaded.name, loaded.data.source, loaded.data.path, loaded.data.label) == \
        ("my-table", "csv", str(tmp_path / "data" / "my table.csv"), "label")   # loading rebases it to the file
    raw = yaml.safe_load(target.read_text())
    assert raw["data"]["path"] == "data/my table.csv"   # written relative to the config, so the two can move
    assert raw["data"]["columns"] == {"size": {"kind": "number"}, "colour": {"kind": "category"}}
    assert raw["data"]["missing"] == "fill"
    assert raw["model"]["layers"][-1] == {"Dense": {"units": 2}}
    with pytest.raises(DataError, match="already exists; choose another --output"):
        starter_data.init(path, "label", target)


def test_comments_and_scalars_keep_data_as_one_line_of_text() -> None:
    assert starter_data._comment("a\nimports: [x.py]\x1b") == "# a\\nimports: [x.py]\\x1b"
    for name in ("true", "#h", "x\ny", "\u202ebidi", "plain"):
        assert yaml.safe_load(f"k: {starter_data._scalar(name)}") == {"k": name}
        assert "\n" not in starter_data._scalar(name)


def test_an_image_folder_gives_one_class_per_sub_folder(tmp_path: Path) -> None:
    png = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
    for name, count in (("cats", 2), ("dogs", 1), ("empty", 0)):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for i in range(count):
            (tmp_path / "pics" / name / f"{i}.png").write_bytes(png)
    classes = starter_data.describe_images(tmp_path / "pics")
    assert [(c.name, c.kind, c.detail) for c in classes] == [("cats", "class", "2 images"), ("dogs", "class",
                                                                                              "1 images")]
    text = starter_data.images_config(tmp_path / "pics", classes, tmp_path / "pics.yaml")
    assert yaml.safe_load(text)["model"]["layers"][-1] == {"Dense": {"units": 2}}
    (tmp_path / "one" / "only").mkdir(parents=True)
    (tmp_path / "one" / "only" / "0.png").write_bytes(png)
    with pytest.raises(DataError, match="needs one sub-folder of images per class"):
        starter_data.describe_images(tmp_path / "one")


def text_table(rows: int = 80) -> str:
    """A CSV of tickets: a free-text message (some empty), a city (a category of many one-word values), a label."""
    import numpy as np

    rng = np.random.default_rng(3)
    words = "the app crashed my parcel is late please refund invoice password reset login error".split()
    cities = [f"city{i}" for i in range(30)]
    lines = ["city,message,team"]
    for i in range(rows):
        message = "" if i % 20 == 7 else " ".join(rng.choice(words, size=int(rng.integers(3, 9))))
        lines.append(f"{cities[i % 30]},{message},{['billing', 'delivery'][i % 2]}")
    return "\n".join(lines) + "\n"


def test_free_text_is_shown_and_written_as_text_and_a_category_stays_a_category(tmp_path: Path) -> None:
    path = csv_file(tmp_path, text_table())
    city, message, team = starter_data.describe_csv(path, "team")
    assert (city.kind, city.detail) == ("category", "30 values: city0, city1, city10, city11, city12, ...")
    assert (message.kind, message.missing) == ("text", 4)
    assert re.fullmatch(r"7\d distinct; \d\d characters, \d\.\d words on average", message.detail), message.detail
    target, _ = starter_data.init(path, "team", tmp_path / "tickets.yaml")
    text = target.read_text()
    raw = yaml.safe_load(text)
    assert raw["data"]["columns"] == {"city": {"kind": "category"}, "message": {"kind": "text"}}
    assert "missing" not in raw["data"]   # empty text is text: no policy needed
    assert config_mod.load(target).config.data.columns["message"].kind == "text"   # as kcli reads it
    assert "words on average; 4 empty (read as empty text)" in text
    note = text[text.index("  columns:\n"):text.index("    city:")].replace("\n    # ", " ")   # the comment, joined
    for choice in ("columns: message: free text, a bag of words by default (output_mode: multi_hot",
                   "max_tokens: 20000 most frequent", "{kind: text, output_mode: tf_idf, max_tokens: 5000}",
                   "{kind: text, output_mode: int, sequence_length: 200}"):
        assert choice in note, note


def test_a_parquet_table_gives_the_kinds_of_the_same_csv(tmp_path: Path) -> None:
    import pyarrow.parquet as pq
    from pyarrow import csv

    path = csv_file(tmp_path, text_table())
    pq.write_table(csv.read_csv(path, convert_options=csv.ConvertOptions(strings_can_be_null=True)),
                   tmp_path / "table.parquet")   # empty cells as null, as make_listings.py writes them
    from_csv = starter_data.describe_csv(path, "team")
    from_parquet = starter_data.describe_csv(tmp_path / "table.parquet", "team")
    assert [(c.name, c.kind, c.detail) for c in from_parquet] == [(c.name, c.kind, c.detail) for c in from_csv]
    target, _ = starter_data.init(tmp_path / "table.parquet", "team", tmp_path / "t.yaml")
    assert yaml.safe_load(target.read_text())["data"]["source"] == "parquet"
