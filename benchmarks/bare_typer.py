"""A bare Typer app with kcli's command names and no imports of its own: the start-up floor for kcli."""

from pathlib import Path

import typer

app = typer.Typer(name="kcli", help="Train TensorFlow/Keras models from YAML files.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)


@app.command()
def train(config: Path, runs_dir: Path = Path("runs"), resume: str = "", keep_best: bool = False) -> None:
    """Build, compile and fit the model a config describes."""


@app.command()
def summary(config: Path) -> None:
    """Build the model without training."""


@app.command()
def validate(config: Path) -> None:
    """Check a config."""


@app.command("runs")
def list_runs(runs_dir: Path = Path("runs")) -> None:
    """A table of the runs."""


@app.command()
def evaluate(run: str) -> None:
    """Loss and metrics of a finished run."""


@app.command()
def predict(run: str, input: Path) -> None:
    """Predictions of a finished run."""


@app.command()
def export(run: str, format: str) -> None:
    """Write a finished run's model in another format."""


@app.command()
def init(template: str) -> None:
    """Write a starter config."""


@app.command()
def schema() -> None:
    """The JSON Schema of a config."""


if __name__ == "__main__":
    app()
