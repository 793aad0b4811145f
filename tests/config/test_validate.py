"""`kcli validate` checks names and arguments without TensorFlow, and agrees with Keras itself."""

from __future__ import annotations

import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from kcli.config import keras_names as keras_api
from tests.conftest import REPO, run_cli

PROBE = """
import sys
from kcli.cli.app import app
try:
    app({args!r})
except SystemExit as exc:
    code = exc.code
print("HEAVY:", sorted(m for m in ("tensorflow", "keras") if m in sys.modules), "CODE:", code)
"""


@pytest.mark.parametrize("args", [
    ["validate", "configs/digits_mlp.yaml"], ["validate", "configs/custom_layer.yaml", "--print"],
    ["validate", "configs/custom_model.yaml"], ["runs", "--runs-dir", "configs"], ["schema"],
    ["validate", "configs/digits_cnn.yaml", "--print", "--origin"]])
def test_validate_and_runs_do_not_import_tensorflow(args: list[str]) -> None:
    out = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True,
                         cwd=REPO, check=True).stdout
    assert "HEAVY: [] CODE: 0" in out, out


@pytest.mark.parametrize("package", ["layers", "optimizers", "losses", "metrics", "callbacks", "optimizers.schedules"])
def test_signatures_read_from_source_agree_with_the_live_classes(package: str) -> None:
    module = keras
    for part in package.split("."):
        module = getattr(module, part)
    checked = permissive = 0
    for name in keras_api.classes(package):
        cls = getattr(module, name, None)
        if not inspect.isclass(cls):
            continue
        static = keras_api.signature_of(*keras_api.public(package)[name])
        if static.accepted is None:     # "anything goes": Keras decides at build time
            permissive += 1
            continue
        live = keras_api.live_signature(cls)
        assert (set(static.accepted), list(static.required)) == (live.accepted, list(live.required)), name
        checked += 1
    assert checked > 5 * permissive, (checked, permissive)


def test_user_classes_are_read_from_their_files(tmp_path: Path) -> None:
    for name in ("custom_layer.yaml", "my_layers.py"):
        shutil.copy(REPO / "configs" / name, tmp_path / name)
    config = tmp_path / "custom_layer.yaml"
    text = config.read_text()
    for change, expected in (
        (("MyDense: {units: 64}", "MyDense: {unitz: 64}"),
         "model.layers[0].MyDense: unknown argument 'unitz' (did you mean 'units'?)"),
        (("my_layers.py:MyDense", "my_layers.py:MyDence"), "defines no class 'MyDence'; it defines: MyDense"),
        (("MyDense: {units: 64}", "MyDence: {units: 64}"), "unknown layer 'MyDence' (did you mean 'MyDense'?)"),
    ):
        config.write_text(text.replace(*change))
        checked = run_cli("validate", config)
        trained = run_cli("train", config, "--runs-dir", tmp_path / "runs")
        assert checked.exit_code == trained.exit_code == 2
        assert expected in checked.stderr and checked.stderr == trained.stderr


def test_build_checks_what_only_keras_can(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    text = (REPO / "configs" / "digits_mlp.yaml").read_text()
    config.write_text(text.replace("activation: relu", "activation: relux"))
    assert run_cli("validate", config).exit_code == 0          # a value: only Keras knows
    built = run_cli("validate", config, "--build")
    assert built.exit_code == 2 and "model.layers[0].Dense" in built.stderr and "relux" in built.stderr
    good = run_cli("validate", REPO / "configs" / "digits_mlp.yaml", "--build")
    assert good.exit_code == 0 and "19,210 parameters" in good.stdout
