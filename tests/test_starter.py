"""`kcli init --template`: starter configs that run as they are, and agree with the examples in configs/."""

from __future__ import annotations

from pathlib import Path

import pytest

from kcli import starter
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
        assert (CONFIGS / example).resolve() == starter.SCHEMA_FILE.parent / "templates" / f"{template}.yaml"


def test_init_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "my_layers.py").write_text("# mine\n")
    result = run_cli("init", "--template", "custom-layer", "--output", tmp_path / "c.yaml")
    assert_user_error(result, "my_layers.py already exist(s); choose another --output")
    assert not (tmp_path / "c.yaml").exists() and (tmp_path / "my_layers.py").read_text() == "# mine\n"
    assert_user_error(run_cli("init", "--template", "cnnn"),
                      "--template: unknown template 'cnnn' (did you mean 'cnn'?)")
    assert_user_error(run_cli("init", "--template", "mlp", "--output", tmp_path / "no" / "c.yaml"),
                      "--output: the folder")
