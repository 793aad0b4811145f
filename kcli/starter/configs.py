"""`kcli init --template NAME`: a commented config that runs as it is on the bundled digits.

The templates are the example configs of configs/ (which link to them), so the two cannot drift apart: the
tests train every one of them. A template that names Python files (`imports`, `class`) brings them along.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from kcli.config.schema import SCHEMA_FILE
from kcli.config.suggest import did_you_mean
from kcli.errors import ConfigError
from kcli.files.atomic import write_text

TEMPLATES: dict[str, tuple[str, ...]] = {   # template -> its config file, then the Python files it imports
    "mlp": ("mlp.yaml",),
    "cnn": ("cnn.yaml",),
    "custom-layer": ("custom-layer.yaml", "my_layers.py"),
    "custom-model": ("custom-model.yaml", "my_net.py"),
}
_SCHEMA_LINE = "# yaml-language-server: $schema="


def init(template: str, output: Path | None) -> list[Path]:
    """Write the template's config (and Python files beside it); returns the files written."""
    if template not in TEMPLATES:
        raise ConfigError(f"unknown template {template!r}{did_you_mean(template, TEMPLATES)}; "
                          f"choose one of {', '.join(TEMPLATES)}", key="--template")
    config, *code = TEMPLATES[template]
    target = output or Path(config)
    if target.suffix not in (".yaml", ".yml"):
        raise ConfigError(f"{target}: a config file ends in .yaml", key="--output")
    if not target.parent.is_dir():
        raise ConfigError(f"the folder {target.parent} does not exist; create it first", key="--output")
    files = {target: _config_text(config), **{target.parent / name: _read(name) for name in code}}
    existing = [str(p) for p in files if p.exists()]
    if existing:
        raise ConfigError(f"{', '.join(existing)} already exist(s); choose another --output", key="--output")
    for path, text in files.items():
        write_text(path, text)
    return list(files)


def _read(name: str) -> str:
    return resources.files("kcli.starter").joinpath("templates", name).read_text(encoding="utf-8")


def _config_text(name: str) -> str:
    """The template with its editor line pointing at the installed schema (wherever the config is written)."""
    lines = _read(name).splitlines(keepends=True)
    if lines and lines[0].startswith(_SCHEMA_LINE):
        lines[0] = f"{_SCHEMA_LINE}{SCHEMA_FILE.resolve().as_uri()}\n"
    return "".join(lines)
