"""`kcli sweep`: search config values with Optuna, or show a sweep's trials."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kcli.cli.common import RunsDirOpt, SetOpt, run_command


def sweep(
    target: Annotated[str, typer.Argument(help="A config with a `sweep:` section to run or continue, or `show`.",
                                          show_default=False)],
    sweep_ref: Annotated[str | None, typer.Argument(metavar="[SWEEP]", help="With `show`: the sweep folder (or its "
                                                    "name under --runs-dir).", show_default=False)] = None,
    sweep_file: Annotated[Path | None, typer.Option("--sweep", help="The sweep section in its own YAML file.",
                                                    show_default=False)] = None,
    runs_dir: RunsDirOpt = Path("runs"),
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Trials trained at the same time (processes).")] = 1,
    trials: Annotated[int | None, typer.Option("--trials", min=1, help="Finished trials wanted (default: "
                                               "sweep.trials).", show_default=False)] = None,
    set_: SetOpt = None,
) -> None:
    """Search config values with Optuna (each trial a kcli run); `kcli sweep show SWEEP` shows the trials."""
    def action() -> None:
        from kcli.output.display import Display
        from kcli.sweep import search as sweep_mod
        if target == "show":
            if sweep_ref is None:
                from kcli.errors import KcliError
                raise KcliError("name the sweep: kcli sweep show SWEEP", key="SWEEP")
            Display().sweep(sweep_mod.show(sweep_ref, runs_dir))
            return
        display = Display()
        display.sweep(sweep_mod.sweep(Path(target), sweep_file, runs_dir, jobs, trials, set_ or [], display))
    run_command(action)
