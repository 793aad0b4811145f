"""kcli.api.validate: the `kcli validate` check as a function, reporting through events (no TensorFlow unless
build)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kcli import events
from kcli.api.validate import STATIC_VERDICT, validate
from kcli.errors import ConfigError

CONFIG = "model: {input_shape: [4], layers: [Dense: {units: 2}]}\ncompile: {loss: mse}\nfit: {epochs: 2}\n"


def test_a_valid_config_is_one_event_and_a_resolved_result(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG)
    heard = events.Collected()
    result = validate(path, ["fit.epochs=3"], listener=heard)
    assert heard.events == [events.ConfigChecked(path, STATIC_VERDICT)]
    assert result.verdict == STATIC_VERDICT and result.parameters is None
    assert result.config.fit.epochs == 3 and result.config.name == "c"
    assert "epochs: 3" in result.yaml
    origins = {key: origin for key, _, origin in result.origins}
    assert origins["fit.epochs"] == "--set fit.epochs=3"
    assert origins["model.input_shape[0]"] == f"{path}:1"
    assert origins["data.batch_size"] == "default"


def test_a_mistake_is_one_located_error_and_no_event(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.replace("Dense: {units: 2}", "Dense: {unit: 2}"))
    heard = events.Collected()
    with pytest.raises(ConfigError) as caught:
        validate(path, listener=heard)
    assert str(caught.value).startswith(f"{path}:1: model.layers[0].Dense: ")
    assert "unit" in str(caught.value) and heard.events == []


def test_validate_imports_no_tensorflow(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG)
    code = ("import sys; from pathlib import Path; from kcli.api.validate import validate; "
            f"validate(Path({str(path)!r})); print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
