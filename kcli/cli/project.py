"""The commands about a project's files: init (a starter config), validate (a config), schema (for editors)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kcli.cli.common import ConfigArg, SetOpt, run_command


def init(
    template: Annotated[str | None, typer.Option("--template", help="mlp | cnn | custom-layer | custom-model: a "
                                                 "commented config that runs on the bundled digits.",
                                                 show_default=False)] = None,
    data: Annotated[str | None, typer.Option("--data", help="A CSV or Parquet file (with --label; or its s3:// / "
                                             "gs:// URL) or a folder with one sub-folder of images per class: a "
                                             "config for your data, its column kinds inferred and shown.",
                                             show_default=False)] = None,
    label: Annotated[str | None, typer.Option("--label", help="With a table --data: the column to predict.",
                                              show_default=False)] = None,
    output: Annotated[Path | None, typer.Option(help="The config file to write (default: <template>.yaml or "
                                                "<data name>.yaml here); Python files it imports go beside it.",
                                                show_default=False)] = None,
) -> None:
    """Write a starter config (and the Python files it imports) to edit and train."""
    def action() -> None:
        from kcli.errors import KcliError
        from kcli.output.display import Display

        if (template is None) == (data is None):
            raise KcliError("give --template NAME (a starter on the bundled digits) or --data FILE_OR_FOLDER (a "
                            "config for your data)", key="--template")
        if data is not None:
            from kcli.starter.data import init as write_for_data

            target, columns = write_for_data(data, label, output)
            Display().data_columns(columns)
            Display().note(f"written: {target}; check the kinds above, then train it with: kcli train {target}")
            return
        from kcli.starter.configs import init as write_template

        assert template is not None
        written = write_template(template, output)
        Display().note(f"written: {', '.join(map(str, written))}; train it with: kcli train {written[0]}")
    run_command(action)


def validate(
    config: ConfigArg,
    set_: SetOpt = None,
    print_: Annotated[bool, typer.Option("--print", help="Print the resolved config as YAML.")] = False,
    origin: Annotated[bool, typer.Option("--origin", help="With --print: a table of every value and where it came "
                                         "from (file and line, --set, or default).")] = False,
    build: Annotated[bool, typer.Option("--build", help="Also build and compile the model with Keras and read the "
                                        "data (argument values, shapes, your classes, labels vs loss; imports "
                                        "TensorFlow).")] = False,
) -> None:
    """Check a config (schema, files, Keras names and arguments) without TensorFlow or training."""
    def action() -> None:
        from kcli import events
        from kcli.api.validate import validate as run_validate
        from kcli.output.display import Display
        display = Display()
        result = run_validate(config, set_ or (), build, events.ignore if print_ or origin else display)
        if origin:
            display.origins(result.origins)
        elif print_:
            display.yaml(result.yaml)
    run_command(action)


def schema(
    output: Annotated[Path | None, typer.Option(help="Write it to this file instead of printing it.",
                                                show_default=False)] = None,
) -> None:
    """The JSON Schema of a config file, for editors (VS Code's YAML extension completes and checks with it)."""
    def action() -> None:
        from kcli.config.schema import text

        if output is None:
            typer.echo(text(), nl=False)
            return
        from kcli.errors import KcliError
        from kcli.files.atomic import write_text

        if not output.parent.is_dir():
            raise KcliError(f"the folder {output.parent} does not exist; create it first", key="--output")
        write_text(output, text())
    run_command(action)
