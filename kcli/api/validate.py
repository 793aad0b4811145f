"""`kcli validate` as a function: check a config without training (and without TensorFlow unless `build`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kcli import events
from kcli.config import loading
from kcli.config.check import check
from kcli.config.loading import LoadedConfig
from kcli.config.models import Config
from kcli.config.resolve import resolve

STATIC_VERDICT = "valid (names and arguments checked against Keras's source; --build also builds the model)"


@dataclass(frozen=True)
class Validated:
    """A config that passed: resolved, with where each value came from, and the one-line verdict."""

    path: Path
    loaded: LoadedConfig
    config: Config       # resolved: every default filled, every path absolute
    verdict: str
    parameters: int | None = None   # with build: the model's parameter count

    @property
    def yaml(self) -> str:
        """The resolved config as the YAML a run saves."""
        from kcli.config import dump as config_dump  # only --print needs it (kcli validate starts faster)

        return config_dump.dump(self.config)

    @property
    def origins(self) -> list[tuple[str, Any, str]]:
        """Every resolved value with where it came from (file:line, --set ..., or default)."""
        from kcli.config import dump as config_dump

        return config_dump.origins(self.loaded, self.config)


def validate(config: str | Path, overrides: Sequence[str] = (), build: bool = False,
             listener: events.Listener = events.ignore) -> Validated:
    """Check a config (schema, files, Keras names and arguments; with `build`, also build the model and read the
    data as `kcli train` would); raises the first problem as a KcliError naming the file, line and key."""
    config = Path(config)
    loaded = loading.load(config, list(overrides))
    cfg = resolve(loaded)
    with loaded.located():
        check(cfg)
    verdict, parameters = STATIC_VERDICT, None
    if build:
        from kcli.model import summary as summary_mod
        from kcli.training.prepare import prepare

        prepared = prepare(config, list(overrides), with_data=True)   # data read and checked against the model too
        parameters = summary_mod.describe(prepared.model).total
        verdict = f"valid ({parameters:,} parameters; data checked against the model)"
    listener(events.ConfigChecked(config, verdict))
    return Validated(config, loaded, cfg, verdict, parameters)
