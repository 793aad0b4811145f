"""The few lines `kcli train` shows of a run before fitting: name and seed, devices, data sizes, model, compile
and fit settings (as plain (key, value) text; drawing them is the listener's business)."""

from __future__ import annotations

from typing import Any

from kcli.config import model_io as ports_mod
from kcli.config.models import Config
from kcli.data.python_source import Stream
from kcli.data.splits import Splits
from kcli.distributed import strategy as distribute


def short_config(cfg: Config, splits: Splits) -> list[tuple[str, str]]:
    """The resolved config in six lines: run, devices, data, model, compile, fit."""
    sizes = ", ".join(f"{name} {a.size() if isinstance(a, Stream) else len(a)}"
                      for name, a in (("train", splits.train), ("validation", splits.validation), ("test", splits.test))
                      if a is not None)
    source = (cfg.data.name if cfg.data.source in ("builtin", "keras") else
              cfg.data.function if cfg.data.source == "python" else (cfg.data.path or cfg.data.source))
    model = (f"{len(cfg.model.layers)} layers" if cfg.model.layers is not None else
             f"graph of {len(cfg.model.graph)} nodes" if cfg.model.graph is not None else f"class {cfg.model.class_}")
    ports = ports_mod.of(cfg.model, cfg.data)
    inputs = (", ".join(f"{p.name} {list(p.shape)}" for p in ports.inputs) if ports.named else
              f"input_shape {list(ports.single_shape)}")
    return [
        ("run", f"{cfg.name}  (seed {cfg.seed})"),
        ("devices", distribute.devices(cfg.distribute)),
        ("data", f"{cfg.data.source}: {source}  [{sizes}]"
                 + (f"  batch {cfg.data.batch_size}" if cfg.data.source != "python" else "")),
        ("model", f"{model}, {inputs}" + (f", outputs {', '.join(ports.outputs)}" if ports.outputs else "")),
        ("compile", f"optimizer {_spec(cfg.compile.optimizer)}, loss {_spec(cfg.compile.loss)}, "
                    f"metrics {_spec(cfg.compile.metrics)}"),
        ("fit", f"epochs {cfg.fit.epochs}, validation_freq {cfg.fit.validation_freq}"
                + (f", callbacks {[_spec(c) for c in cfg.fit.callbacks]}" if cfg.fit.callbacks else "")),
    ]


def _spec(spec: Any) -> str:
    """A Spec as `Name(arg=value)`; per-output specs as `{out: ...}`, lists as `[...]`."""
    if isinstance(spec, dict):
        return "{" + ", ".join(f"{k}: {_spec(v)}" for k, v in spec.items()) + "}"
    if isinstance(spec, list):
        return "[" + ", ".join(_spec(s) for s in spec) + "]"
    return spec.name if not spec.args else f"{spec.name}({', '.join(f'{k}={v}' for k, v in spec.args.items())})"
