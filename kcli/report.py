"""`kcli report RUN`: one self-contained HTML file about a run (config, model summary, curves, metrics,
confusion matrices, environment, artifacts with sizes) that opens offline in any browser: pictures are
embedded as data URIs, the style is inline, and there is no script."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from kcli import pictures, runs
from kcli.display import Display
from kcli.errors import RunError

REPORT = "report.html"
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
pre { background: #f6f8fa; padding: .8rem; overflow-x: auto; font-size: .85rem; }
table { border-collapse: collapse; margin: .5rem 0; } td, th { border: 1px solid #ddd; padding: .25rem .6rem; }
th { background: #f0f0f0; text-align: left; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; } .status-completed { color: #1a7f37; } .status-failed { color: #cf222e; }
"""


def report(ref: str, runs_dir: Path, output: Path | None, display: Display) -> Path:
    """Write RUN/report.html (or `output`) from the run directory's files; no TensorFlow needed."""
    run = runs.find_run(ref, runs_dir)
    record = runs.load_record(run, "RUN")
    target = output or run / REPORT
    if target.suffix.lower() not in (".html", ".htm"):
        raise RunError(f"{target}: the report is an .html file", key="--output")
    if not target.parent.is_dir():
        raise RunError(f"the folder {target.parent} does not exist; create it first", key="--output")
    history_png = run / pictures.HISTORY_PNG
    if not history_png.is_file() and (run / runs.HISTORY_JSON).is_file():   # a run from before pictures
        pictures.history(json.loads((run / runs.HISTORY_JSON).read_text()), history_png, run.name)
    runs.write_text(target, page(run, record))
    display.note(f"written: {target}")
    return target


def page(run: Path, record: dict[str, Any]) -> str:
    """The whole HTML document."""
    status = str(record.get("status", "unknown"))
    parts = [f"<h1>{_e(run.name)}</h1>",
             f"<p>status <b class='status-{_e(status)}'>{_e(status)}</b>; started {_e(record.get('started'))}, "
             f"ended {_e(record.get('ended'))}; seed {_e(record.get('seed'))}; "
             f"{_e(record.get('epochs_completed'))} epochs</p>"]
    parts += _section("Curves", _image(run / pictures.HISTORY_PNG, "training history"))
    parts += _section("Metrics", _metrics(run))
    parts += _section("Confusion matrices", _confusions(run))
    parts += _section("Model summary", _pre(run / "summary.txt"))
    parts += _section("Config (config.yaml)", _pre(run / runs.CONFIG))
    parts += _section("Environment", _table([("host", record.get("host")),
                                             *sorted((record.get("versions") or {}).items())]))
    parts += _section("Artifacts", _artifacts(run))
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>kcli report: {_e(run.name)}"
            f"</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _section(title: str, content: str) -> list[str]:
    return [f"<h2>{_e(title)}</h2>", content]


def _pre(path: Path) -> str:
    return f"<pre>{_e(path.read_text(errors='replace'))}</pre>" if path.is_file() else "<p>(none)</p>"


def _image(path: Path, alt: str) -> str:
    if not path.is_file():
        return "<p>(none)</p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<img alt='{_e(alt)}' src='data:image/png;base64,{data}'>"


def _table(rows: list[tuple[Any, Any]], header: tuple[str, str] | None = None) -> str:
    head = f"<tr><th>{_e(header[0])}</th><th>{_e(header[1])}</th></tr>" if header else ""
    cells = "".join(f"<tr><td>{_e(k)}</td><td class='n'>{_e(_number(v))}</td></tr>" for k, v in rows)
    return f"<table>{head}{cells}</table>"


def _number(value: Any) -> Any:
    return f"{value:.4f}" if isinstance(value, float) else value


def _metrics(run: Path) -> str:
    out = []
    for path in [run / runs.METRICS, *sorted(run.glob("eval-*.json"))]:
        if not path.is_file():
            continue
        try:
            values = json.loads(path.read_text())
        except ValueError:
            continue
        flat = [(k, v) for k, v in values.items() if isinstance(v, (int, float, str)) and k != "data"]
        out.append(f"<h3>{_e(path.name)}</h3>" + _table(flat, ("metric", "value")))
    return "".join(out) or "<p>(none: the run has no test split and was not evaluated)</p>"


def _confusions(run: Path) -> str:
    out = []
    for path in sorted(run.glob("eval-*.json")):
        try:
            values = json.loads(path.read_text())
        except ValueError:
            continue
        if "confusion_matrix" not in values:
            continue
        out.append(f"<h3>{_e(path.stem)}</h3>" + _image(path.with_name(f"{path.stem}-confusion.png"), path.stem))
        rows = "".join(f"<tr><td class='n'>{c['class']}</td><td class='n'>{_e(_number(c['precision']))}</td>"
                       f"<td class='n'>{_e(_number(c['recall']))}</td><td class='n'>{c['support']}</td></tr>"
                       for c in values.get("per_class", []))
        out.append(f"<table><tr><th>class</th><th>precision</th><th>recall</th><th>support</th></tr>{rows}</table>")
    return "".join(out) or "<p>(none yet: <code>kcli evaluate RUN</code> of a classifier adds one)</p>"


def _artifacts(run: Path) -> str:
    rows = []
    for path in sorted(run.iterdir()):
        if path.name == REPORT or path.name.startswith(".tmp-"):
            continue
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
        rows.append((path.name + ("/" if path.is_dir() else ""), _size(size)))
    return _table(rows, ("file", "size"))


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024   # type: ignore[assignment]
    return f"{n} B"
