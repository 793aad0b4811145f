"""Which Python code a run directory may load: a run directory is data, and data must not run code.

A run that used `imports` carries copies of those files in RUN/code/ (and the names of dotted modules in
run.json). `kcli train` remembers the sha256 of every file it copied, and the modules it imported, in a
small store in the user's data folder. Loading a run later runs its code only when every file is a regular file
(no link) in RUN/code/ (a real folder, no link) and was trained by this user with these exact contents (and
every module was imported by a training of this user), or when the user passes --trust-code. A run directory
received from someone else (or a run.json edited to point elsewhere) therefore runs nothing by surprise. Each
file is read once: the bytes hashed here are the bytes that run (imports.run_code), never a .pyc beside them.

Whatever else a run's files name as code (config.yaml's data.function, `file.py:Class` and `module:Class`
references, schedules, callbacks) is looked up through a Registry locked to that code (imports.CodeLock), for
evaluate, predict, export and `train --resume` alike.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kcli.config.code import CodeLock, Registry, named_code
from kcli.errors import KcliError, RunError
from kcli.files import atomic, digest, readable
from kcli.run.layout import CODE_DIR

STORE_NAME = "trusted-code.json"


def store_path() -> Path:
    """$KCLI_HOME/trusted-code.json, else $XDG_DATA_HOME/kcli/..., else ~/.local/share/kcli/..."""
    if os.environ.get("KCLI_HOME"):
        return Path(os.environ["KCLI_HOME"]) / STORE_NAME
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "kcli" / STORE_NAME


def _read_store() -> dict[str, Any]:
    try:
        data = json.loads(store_path().read_text())
    except (OSError, ValueError):
        return {"files": [], "modules": []}
    return data if isinstance(data, dict) else {"files": [], "modules": []}


def remember(files: list[Path], modules: list[str]) -> str | None:
    """Record code this user trains with; returns a warning when the store cannot be written."""
    if not files and not modules:
        return None
    store = _read_store()
    hashes = set(store.get("files", [])) | {digest.sha256_file(f)[0] for f in files}
    names = set(store.get("modules", [])) | set(modules)
    path = store_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, json.dumps({"files": sorted(hashes), "modules": sorted(names)}, indent=1))
    except OSError as exc:
        return (f"cannot record the run's code as trusted in {path} ({exc.strerror or exc}); "
                "evaluate/predict/export of this run will need --trust-code")
    return None


@dataclass
class RunCode:
    """The code a run would load: files in RUN/code/ with their bytes (read once), and dotted module names."""

    sources: dict[Path, bytes]
    modules: list[str]

    @property
    def files(self) -> list[Path]:
        """The run's code files."""
        return list(self.sources)


def allowed_code(run_dir: Path, record: dict[str, Any], trust_code: bool) -> RunCode:
    """The run's code, if it may run; a RunError that says what would run and how to allow it otherwise."""
    imports = record.get("imports") or {}
    rel_files = (imports.get("files") or []) if isinstance(imports, dict) else None
    modules = (imports.get("modules") or []) if isinstance(imports, dict) else None
    if not isinstance(rel_files, list) or not isinstance(modules, list):
        raise RunError("run.json `imports` is damaged (expected lists of files and modules)", key="RUN")
    sources = {path: _read_code(path) for path in (_code_file(run_dir, rel) for rel in rel_files)}
    if trust_code:
        return RunCode(sources, [str(m) for m in modules])
    store = _read_store()
    known_files, known_modules = set(store.get("files", [])), set(store.get("modules", []))
    strange = [str(p) for p, source in sources.items() if digest.sha256_bytes(source) not in known_files]
    strange += [f"module {m}" for m in modules if m not in known_modules]
    if strange:
        raise RunError(f"loading this run would run Python code with your rights: {', '.join(strange)}. It was not "
                       "trained by you on this machine (or changed since). Read it, then pass --trust-code to "
                       "allow it", key="RUN")
    return RunCode(sources, [str(m) for m in modules])


def _code_file(run_dir: Path, rel: Any) -> Path:
    """RUN/code/NAME.py for a file run.json names, if that is where it names (as written: links are not followed
    here but refused by _read_code), and RUN/code is a real folder of the run."""
    written = Path(os.path.normpath(str(rel)))
    if written.parent != Path(CODE_DIR) or written.suffix != ".py":
        raise RunError(f"run.json names code outside {run_dir / CODE_DIR}: {rel!r}; a run only loads the .py "
                       "files directly in its own code/ folder (was run.json edited?)", key="RUN")
    folder = run_dir.resolve() / CODE_DIR
    why = readable.link_problem(folder) or (None if folder.is_dir() or not folder.exists() else "is not a folder")
    if why is not None:
        raise RunError(f"the run's code folder {folder} {why}: a run only loads the code in its own code/ folder; "
                       "make it a real folder holding the files", key="RUN")
    return folder / written.name


def _read_code(path: Path) -> bytes:
    """The bytes of a run's code file, read once (a regular file, not a link), or a RunError saying why not."""
    why = readable.problem(path, links=False)
    if why == "does not exist":
        raise RunError(f"the run's code file {path} is missing", key="RUN")
    source = readable.read_bytes(path, links=False) if why is None else None
    if source is None:   # refused, or swapped for something else since the check (O_NOFOLLOW, regular only)
        raise RunError(f"the run's code file {path} {why or 'cannot be read'}: a run only loads regular .py files "
                       "in its own code/ folder", key="RUN")
    return source


def run_lock(run_dir: Path, record: dict[str, Any], trust_code: bool, config: dict[str, Any]) -> CodeLock:
    """The lock that admits only the run's own code, if it may run (else allowed_code's RunError); a run whose
    config.yaml (its YAML mapping `config`) names any other code is refused whole, whichever command uses it."""
    code = allowed_code(run_dir, record, trust_code)
    lock = CodeLock(run_dir, code.sources, tuple(code.modules))
    for key, target in named_code(config):
        lock.admit(target, key)
    return lock


def run_registry(run_dir: Path, record: dict[str, Any], trust_code: bool, config: dict[str, Any]) -> Registry:
    """The run's own code imported into a registry locked to it: its classes, and nothing else may load."""
    lock = run_lock(run_dir, record, trust_code, config)
    registry = Registry(lock=lock)
    try:
        for path in lock.files:
            registry.load(str(path), "RUN code")
        for module in lock.modules:
            registry.load(module, "RUN imports")
    except KcliError as exc:
        raise RunError(f"the run's custom code cannot be loaded: {exc.message}", key="RUN") from None
    return registry
