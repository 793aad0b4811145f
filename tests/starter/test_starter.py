"""`kcli init --template`: starter configs that run as they are, and agree with the examples in configs/."""

from __future__ import annotations

from pathlib import Path

import pytest

from kcli.starter import configs as starter
from tests.conftest import CONFIGS, run_cli
from tests.helpers import assert_user_error


@pytest.mark.parametrize("template", list(starter.TEMPLATES))
def test_each_template_runs_as_written(template: str, tmp_path: Path) -> None:
    target = tmp_path / "mine.yaml"
    result = run_cli("init", "--template", template, "--output", target)
    assert result.exit_code == 0, result.stderr
    assert f"kcli train {target}" in result.stdout
    first = target.read_text().splitlines()[0]
    assert first == f"# yaml-language-server: $schema={starter.SCHEMA_FILE.resolve().as_uri()}"
    for name in starter.TEMPLATES[template][1:]:
        assert (tmp_path / name).read_text() == (CONFIGS / name).read_text()
    result = run_cli("train", target, "--fast-dev-run")
    assert result.exit_code == 0, result.stderr
    assert "fast dev run ok" in result.stdout


def test_templates_are_the_example_configs() -> None:
    links = {"mlp": "digits_mlp.yaml", "cnn": "digits_cnn.yaml", "custom-layer": "custom_layer.yaml",
             "custom-model": "custom_model.yaml"}
    for template, example in links.items():
        assert (CONFIGS / example).resolve() == Path(starter.__file__).parent / "templates" / f"{template}.yaml"


def test_init_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "my_layers.py").write_text("# mine\n")
    result = run_cli("init", "--template", "custom-layer", "--output", tmp_path / "c.yaml")
    assert_user_error(result, "my_layers.py already exist(s); choose another --output")
    assert not (tmp_path / "c.yaml").exists() and (tmp_path / "my_layers.py").read_text() == "# mine\n"
    assert_user_error(run_cli("init", "--template", "cnnn"),
                      "--template: unknown template 'cnnn' (did you mean 'cnn'?)")
    assert_user_error(run_cli("init", "--template", "mlp", "--output", tmp_path / "no" / "c.yaml"),
                      "--output: the folder")


def test_init_from_a_csv_writes_a_config_that_trains(tmp_path: Path) -> None:
    """`kcli init --data FILE.csv --label COL`: kinds inferred and shown (numbers on any scale, a text column, empty
    cells, a regression or class-id label) and written as data.columns; the config trains as written."""
    import numpy as np
    import yaml

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3)) * [1, 100, 10000]
    kind = np.where(x[:, 0] > 0, "big", "small")
    rows = [f"{a:.3f},{'' if i % 9 == 4 else f'{b:.3f}'},{c:.3f},{k},{a + b / 100:.4f}"
            for i, ((a, b, c), k) in enumerate(zip(x, kind))]
    (tmp_path / "houses.csv").write_text("rooms,area,price_paid,kind,score\n" + "\n".join(rows) + "\n")
    text = tmp_path / "houses.csv"
    assert_user_error(run_cli("init", "--data", text, "--output", tmp_path / "a.yaml"),
                      "name the label column with --label")
    result = run_cli("init", "--data", text, "--label", "score", "--output", tmp_path / "reg.yaml")
    assert result.exit_code == 0, result.stderr
    out = " ".join(result.stdout.replace("|", " ").split())
    assert "area number" in out and "kind category 2 values: big, small" in out and "label: numbers" in out
    written = yaml.safe_load((tmp_path / "reg.yaml").read_text())
    assert "input_shape" not in written["model"] and written["data"]["missing"] == "fill"
    assert written["data"]["columns"]["kind"] == {"kind": "category"}
    assert "# -5540.13 .. " not in (tmp_path / "reg.yaml").read_text()   # ranges are comments, kinds are YAML
    trained = run_cli("train", tmp_path / "reg.yaml", "--runs-dir", tmp_path / "runs", "--set", "fit.epochs=2")
    assert trained.exit_code == 0, trained.stderr
    (tmp_path / "ids.csv").write_text("rooms,area,kind\n" + "\n".join(f"{i % 5},{i * 3.5},{i % 2}"
                                                                       for i in range(40)) + "\n")
    result = run_cli("init", "--data", tmp_path / "ids.csv", "--label", "kind", "--output", tmp_path / "cls.yaml")
    assert result.exit_code == 0 and "label: class ids" in result.stdout
    written_text = (tmp_path / "cls.yaml").read_text()
    assert "SparseCategoricalCrossentropy" in written_text and "units: 2}" in written_text
    (tmp_path / "bad.csv").write_text("a,b\n1,\n2,x\n")
    assert_user_error(run_cli("init", "--data", tmp_path / "bad.csv", "--label", "b", "--output", tmp_path / "b.yaml"),
                      "data row 1: the label 'b' is empty")


def test_init_from_an_image_folder_writes_a_config_that_trains(tmp_path: Path) -> None:
    import numpy as np
    import tensorflow as tf

    for name, level in (("cats", 30), ("dogs", 220)):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for i in range(4):
            pixels = np.full((20, 20, 3), level + i, np.uint8)
            (tmp_path / "pics" / name / f"{i}.png").write_bytes(tf.io.encode_png(pixels).numpy())
    result = run_cli("init", "--data", tmp_path / "pics", "--output", tmp_path / "pics.yaml")
    assert result.exit_code == 0, result.stderr
    assert "cats" in result.stdout and "4 images" in result.stdout
    trained = run_cli("train", tmp_path / "pics.yaml", "--runs-dir", tmp_path / "runs", "--set", "fit.epochs=1")
    assert trained.exit_code == 0, trained.stderr
