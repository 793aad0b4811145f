"""Text columns (`data.columns.<name>: {kind: text}`): which string columns look like free text, and a
TextVectorization inside the model with the same numbers as the hand-written Keras script."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml

from kcli import api
from kcli.data.column_stats import looks_like_text
from tests.conftest import run_cli, write_config
from tests.helpers import assert_same_as_plain_script, assert_user_error, train_ok

WORDS = ("good", "bad", "fine", "slow", "fast", "cheap", "broken", "great", "poor", "nice", "late", "early")


def sentences(n: int, seed: int) -> list[str]:
    """Short sentences of 2-6 random words."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 7)))) for _ in range(n)]


def test_looks_like_text_tells_sentences_from_categories():
    assert looks_like_text(sentences(100, 0))
    assert looks_like_text(pa.chunked_array([sentences(50, 1), [None, "", "  "] + sentences(50, 2)]))
    assert looks_like_text(np.array(["x" * 20 + str(i) + "y" * 20 for i in range(40)], dtype=object))  # long
    assert looks_like_text(sentences(3000, 4) * 2)                        # repeated, but over 1000 distinct
    assert not looks_like_text(["north", "south", "east"] * 40)          # few values, repeated
    assert not looks_like_text([f"user{i}" for i in range(100)])         # distinct but one short word each
    assert not looks_like_text(["New York", "Los Angeles", "San Jose"] * 30)   # spaced but repeated
    assert not looks_like_text(sentences(10, 3))                          # too few to tell: a category
    assert not looks_like_text([None, ""] * 30)
    assert not looks_like_text(pa.array(range(100)))
    assert not looks_like_text([1.5, 2.5] * 30)


# --- a trained run of text columns, against the hand-written Keras script ---------------------------------------

GOOD = ("good", "great", "nice", "fast")
TITLES = ("ok", "wow", "meh", "love", "hate")


def write_reviews(path: Path, n: int, seed: int, extra_word: str = "") -> None:
    """review (2-6 words, every 13th empty), title (1-3 words), stars (1-5), label (0/1 from the words)."""
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["review", "title", "stars", "label"])
        for i, words in enumerate(sentences(n, seed)):
            review = "" if i % 13 == 5 else f"{words} {extra_word}".strip() if i % 5 == 0 else words
            title = " ".join(rng.choice(TITLES, size=int(rng.integers(1, 4))))
            label = int(sum(w in GOOD for w in review.split()) + ("love" in title) > 1)
            out.writerow([review, title.capitalize() + "!", int(rng.integers(1, 6)), label])


CONFIG = """\
    seed: 7
    data:
      source: csv
      path: train.csv
      label: label
      columns:
        title: {kind: text, output_mode: int, sequence_length: 4, dim: 3}
      validation: {path: val.csv}
      batch_size: 16
    model:
      layers:
        - Dense: {units: 6, activation: relu}
        - Dense: {units: 2, activation: softmax}
    compile: {optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}
    fit: {epochs: 2}
"""

# The hand-written script: one keras.Input per column, each TextVectorization adapted on the training rows only,
# a bag of words for the review, token ids -> Embedding -> GlobalAveragePooling1D for the title.
PLAIN = """
import csv, json, sys
from pathlib import Path
import numpy as np, keras, tensorflow as tf

folder = Path(sys.argv[1])

def read(name):
    rows = list(csv.DictReader((folder / name).open()))
    x = {"review": tf.constant([[r["review"]] for r in rows]), "title": tf.constant([[r["title"]] for r in rows]),
         "stars": np.array([[float(r["stars"])] for r in rows], np.float32)}
    return x, np.array([int(r["label"]) for r in rows])

x, y = read("train.csv")
xv, yv = read("val.csv")
keras.utils.set_random_seed(7)
inputs = {"review": keras.Input((), name="review", dtype="string"),
          "title": keras.Input((), name="title", dtype="string"), "stars": keras.Input((1,), name="stars")}
review = keras.layers.TextVectorization(max_tokens=20000, output_mode="multi_hot")
review.adapt(x["review"])
title = keras.layers.TextVectorization(max_tokens=20000, output_mode="int", output_sequence_length=4)
title.adapt(x["title"])
embedding = keras.layers.Embedding(title.vocabulary_size(), 3)
pooling = keras.layers.GlobalAveragePooling1D()
t = pooling(embedding(title(inputs["title"])))
r = review(inputs["review"])
norm = keras.layers.Normalization()
h = keras.layers.Concatenate()([norm(inputs["stars"]), r, t])
dense, out = keras.layers.Dense(6, activation="relu"), keras.layers.Dense(2, activation="softmax")
model = keras.Model(inputs, out(dense(h)))
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
norm.adapt(x["stars"])
history = model.fit(x, y, batch_size=16, epochs=2, shuffle=True, verbose=0, validation_data=(xv, yv))
np.savez(folder / "plain_weights.npz", *model.get_weights())
(folder / "plain_history.json").write_text(json.dumps(history.history))
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One run of the review table (its folder, and the run)."""
    folder = tmp_path_factory.mktemp("reviews")
    write_reviews(folder / "train.csv", 160, seed=1)
    write_reviews(folder / "val.csv", 48, seed=2, extra_word="zebra")   # a word only the validation rows hold
    config = write_config(folder, CONFIG)
    return folder, train_ok(config, folder / "runs")


def test_text_columns_train_like_the_hand_written_keras_script(trained: tuple[Path, Path]) -> None:
    folder, run = trained
    assert_same_as_plain_script(run, PLAIN, folder)
    columns = yaml.safe_load((run / "config.yaml").read_text())["data"]["columns"]
    review, title = columns["review"], columns["title"]
    assert review["kind"] == "text" and review["output_mode"] == "multi_hot"   # inferred as text
    assert set(review["vocabulary"]) == set(WORDS) and "zebra" not in review["vocabulary"]   # training rows only
    assert title["vocabulary"] == sorted({t.lower() for t in TITLES}, key=title["vocabulary"].index)
    assert title["layers"] == ["GlobalAveragePooling1D"] and title["sequence_length"] == 4


def test_predict_and_the_savedmodel_take_raw_text(trained: tuple[Path, Path]) -> None:
    import keras
    import tensorflow as tf

    from kcli import api

    folder, run = trained
    rows = {"review": ["good great zzzunknown words", "", "bad slow"], "title": ["Wow!", "", "qqq"],
            "stars": [3.0, 1.0, 5.0]}
    (folder / "new.csv").write_text("stars,title,review\n" + "".join(
        f"{s},{t},{r}\n" for r, t, s in zip(rows["review"], rows["title"], rows["stars"])))
    result = run_cli("predict", run, "--input", folder / "new.csv", "--output", folder / "out.csv")
    assert result.exit_code == 0, result.stderr
    assert "unseen" not in result.stdout + result.stderr   # unknown words and empty text are valid text
    written = [[float(v) for v in r.split(",")[2:]] for r in (folder / "out.csv").read_text().splitlines()[1:]]

    model = keras.models.load_model(run / "model.keras")
    raw = {"review": tf.constant([[v] for v in rows["review"]]), "title": tf.constant([[v] for v in rows["title"]]),
           "stars": np.array([[v] for v in rows["stars"]], np.float32)}
    expected = model.predict(raw, verbose=0)
    np.testing.assert_allclose(written, expected, atol=1e-6)
    assert api.predict(run, folder / "new.csv")["outputs"] == pytest.approx(expected, abs=1e-6)
    loaded = tf.saved_model.load(str(run / "saved_model"))   # kept: its functions need its variables
    served = loaded.serve(raw).numpy()
    np.testing.assert_allclose(served, expected, atol=1e-6)

    # kcli serve's path, in process: a TF Serving body of raw rows -> its model's answers
    pytest.importorskip("starlette")
    from kcli.serve.model import ServedModel
    from kcli.serve.protocols import tfs_request

    model = ServedModel(str(run), run.parent, trust_code=False)
    body = {"instances": [{k: rows[k][i] for k in rows} for i in range(3)]}
    request = tfs_request(json.dumps(body).encode(), model)
    answer = model.predict(model.prepare(request.columns, request.rows))[0]
    np.testing.assert_allclose(answer, expected, atol=1e-6)


def test_a_streamed_table_learns_the_same_vocabulary(trained: tuple[Path, Path]) -> None:
    """The streamed pass (block by block) records the columns the in-memory run recorded (prepared, not fit)."""
    from kcli.config.dump import mapping
    from kcli.data.python_source import Stream
    from kcli.training.prepare import prepare

    folder, run = trained
    config = write_config(folder, CONFIG.replace("batch_size: 16", "batch_size: 16\n      stream: true"), "s.yaml")
    prepared = prepare(config, stream_cache=folder / "cache")
    try:
        assert isinstance(prepared.splits.train, Stream)
        streamed = mapping(prepared.cfg)["data"]["columns"]   # as config.yaml records it
    finally:
        prepared.splits.cache.close()
    recorded = yaml.safe_load((run / "config.yaml").read_text())["data"]["columns"]
    assert streamed == recorded


def test_tfrecord_text_is_a_bytes_feature_read_alike(trained: tuple[Path, Path]) -> None:
    """The same rows as tf.train.Example records (the text as a bytes feature) learn the same columns."""
    import tensorflow as tf

    from kcli.config.dump import mapping
    from kcli.training.prepare import prepare

    folder, run = trained
    for name in ("train", "val"):
        with tf.io.TFRecordWriter(str(folder / f"{name}.tfrecord")) as out:
            for row in csv.DictReader((folder / f"{name}.csv").open()):
                feature = {k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[row[k].encode()]))
                           for k in ("review", "title")}
                feature.update({k: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(row[k])]))
                                for k in ("stars", "label")})
                out.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    text = CONFIG.replace("source: csv", "source: tfrecord\n      features: {review: string, title: string, "
                          "stars: int, label: int}").replace(".csv", ".tfrecord")
    prepared = prepare(write_config(folder, text, "records.yaml"))
    recorded = yaml.safe_load((run / "config.yaml").read_text())["data"]["columns"]
    assert mapping(prepared.cfg)["data"]["columns"] == recorded


@pytest.mark.parametrize(("column", "expected"), [
    ("review: {kind: text, encoding: one_hot}", "encoding: not used by a column of kind text"),
    ("review: {kind: text, missing: fill}", "missing: not used by a column of kind text"),
    ("review: {kind: text, dim: 4}", "dim: not used by a column of output_mode multi_hot"),
    ("review: {kind: text, output_mode: tf_idf, layers: [Flatten]}", "layers: not used by a column of output_mode"),
    ("stars: {kind: number, max_tokens: 10}", "max_tokens: not used by a column of kind number"),
    ("title: {kind: text, output_mode: int, layers: [GlobalMaxPoling1D]}",
     "data.columns.title.layers[0]: unknown layer 'GlobalMaxPoling1D' (did you mean 'GlobalMaxPooling1D'?)"),
    # Keras refused max_tokens 1 mid-run, and an int column of max_tokens 2 (padding + OOV) failed in a lookup
    ("title: {kind: text, max_tokens: 1}", "max_tokens 1 counts the reserved OOV token(s)"),
    ("title: {kind: text, output_mode: int, max_tokens: 2}", "padding and OOV token(s) and leaves no room for a "
                                                             "word: give at least 3"),
    # a run of sequence_length 1e9 failed out of memory in its first batch, leaving a failed run folder
    ("title: {kind: text, output_mode: int, sequence_length: 1000000000}", "at most 100000"),
    # a hand-edited recorded vocabulary / idf_weights: Keras refused each mid-build ("unexpected ValueError")
    ("title: {kind: text, vocabulary: []}", "vocabulary: a text column's tokens are non-empty strings"),
    ("title: {kind: text, vocabulary: [1, 2]}", "vocabulary: a text column's tokens are non-empty strings"),
    ("title: {kind: text, vocabulary: [wow, wow]}", "vocabulary: a token is listed twice"),
    ("title: {kind: text, output_mode: tf_idf, vocabulary: [wow, ok], idf_weights: [1.0]}",
     "idf_weights: one per vocabulary token (2), not 1"),
    ("title: {kind: text, output_mode: tf_idf, vocabulary: [wow, ok]}", "idf_weights: output_mode tf_idf with a"),
])
def test_text_fields_of_another_kind_are_one_error_line(tmp_path: Path, column: str, expected: str) -> None:
    write_reviews(tmp_path / "train.csv", 20, seed=1)
    write_reviews(tmp_path / "val.csv", 10, seed=2)
    config = write_config(tmp_path, CONFIG.replace("title: {kind: text, output_mode: int, sequence_length: 4, "
                                                   "dim: 3}", column))
    line = assert_user_error(run_cli("validate", config), expected)
    assert "data.columns." in line


def test_text_layers_must_end_in_a_vector(tmp_path: Path) -> None:
    write_reviews(tmp_path / "train.csv", 40, seed=1)
    write_reviews(tmp_path / "val.csv", 10, seed=2)
    config = write_config(tmp_path, CONFIG.replace("dim: 3}", "dim: 3, layers: [{Conv1D: {filters: 2, "
                                                   "kernel_size: 2}}]}"))
    line = assert_user_error(run_cli("train", config, "--runs-dir", tmp_path / "runs"), "data.columns.title.layers")
    assert "not one vector per row" in line and not (tmp_path / "runs").exists()


def test_an_unsplit_column_is_one_token_per_row(tmp_path: Path) -> None:
    # split: none fed TextVectorization a (rows,) batch, which it read as ONE row: the run failed mid-training
    write_reviews(tmp_path / "train.csv", 40, seed=1)
    write_reviews(tmp_path / "val.csv", 10, seed=2)
    text = CONFIG.replace("output_mode: int, sequence_length: 4, dim: 3", "split: none, output_mode: tf_idf")
    config = write_config(tmp_path, text.replace("epochs: 2", "epochs: 1"))
    run = train_ok(config, tmp_path / "runs")
    vocabulary = yaml.safe_load((run / "config.yaml").read_text())["data"]["columns"]["title"]["vocabulary"]
    assert any(" " in token for token in vocabulary)   # whole cells ("wow meh"), not words
    (tmp_path / "new.csv").write_text("stars,title,review\n3,Wow meh!,good\n3,Ok!,good\n3,never seen,good\n")
    together = api.predict(run, tmp_path / "new.csv")["outputs"]
    alone = api.predict(run, tmp_path / "new.csv", batch_size=1)["outputs"]
    np.testing.assert_allclose(together, alone, atol=1e-6)   # each row vectorized on its own
    assert not np.allclose(together[0], together[1])


def test_a_parquet_text_cell_that_is_not_utf8_names_its_row(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    # a binary column's bad cell was "unexpected ArrowInvalid: Invalid UTF8 payload" (exit 1), in train and predict
    reviews = [s.encode() for s in sentences(30, 0)]
    reviews[7] = b"caf\xe9"
    pq.write_table(pa.table({"review": pa.array(reviews, pa.binary()), "label": [i % 2 for i in range(30)]}),
                   tmp_path / "train.parquet")
    config = write_config(tmp_path, """\
        data: {source: parquet, path: train.parquet, label: label, columns: {review: {kind: text}},
               validation_split: 0.2}
        model: {layers: [{Dense: {units: 2}}]}
        compile: {optimizer: adam, loss: {SparseCategoricalCrossentropy: {from_logits: true}}}
        """)
    line = assert_user_error(run_cli("train", config, "--runs-dir", tmp_path / "runs"), "data.path")
    assert "train.parquet: data row 8, column 'review' is not UTF-8 text" in line
    assert not (tmp_path / "runs").exists()


def test_tflite_and_onnx_take_the_vectorized_text(trained: tuple[Path, Path]) -> None:
    """TFLite and ONNX cannot hold TextVectorization: the export starts at its output, checked on raw rows."""
    import importlib.util

    _, run = trained
    formats = ("tflite", "onnx") if importlib.util.find_spec("tf2onnx") is not None else ("tflite",)
    for fmt in formats:
        result = run_cli("export", run, "--format", fmt)
        assert result.exit_code == 0, result.stderr
        said = " ".join(result.stdout.split())
        assert "takes each text column as its TextVectorization's output (review_tokens, title_tokens" in said
    if "onnx" in formats:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(run / "export" / "model.onnx"))
        assert sorted(i.name for i in session.get_inputs()) == ["review_tokens", "stars", "title_tokens"]


def test_predict_counts_no_text_as_unseen_but_an_empty_row_needs_empty_text():
    from kcli.config.models import ColumnConfig
    from kcli.use.unseen import Unseen

    unseen = Unseen.of({"review": ColumnConfig(kind="text"), "stars": ColumnConfig(kind="number", missing="fill")})
    unseen.add({"review": np.array([["good zzz"], [""], ["x"]], dtype=object),
                "stars": np.array([[np.nan], [np.nan], [1.0]], np.float32)})
    assert unseen.result() == {"rows": 2, "empty_rows": 1,
                               "columns": {"stars": {"unknown": 0, "empty": 2, "example": None}}}
