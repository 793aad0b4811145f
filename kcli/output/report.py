"""`kcli report RUN`: one self-contained HTML file about a run (config, model summary, curves, metrics,
confusion matrices, evaluation scores and their pictures, environment, artifacts with sizes) that opens offline
in any browser: pictures are embedded as data URIs, the style is inline, and there is no script."""

from __future__ import annotations

import base64
import contextlib
import html
import stat
from pathlib import Path
from typing import Any

from kcli.errors import RunError, visible
from kcli.files import atomic, readable
from kcli.output.display import Display
from kcli.run import find, layout, pictures, records
from kcli.use import scores

REPORT = "report.html"
PNG = b"\x89PNG\r\n\x1a\n"
PER_CLASS = ("class", "precision", "recall", "support")
CLASS_SCORES = ("class", "roc_auc", "average_precision", "support")
THRESHOLDS = ("threshold", "precision", "recall", "f1", "predicted_positive")
CALIBRATION = ("low", "high", "count", "confidence", "observed")
MAX_TEXT = 1 << 20      # bytes of one text file shown in the page (a summary or a config is far smaller)
MAX_PICTURE = 8 << 20   # a picture larger than this is left out (kcli's own plots are ~100 KiB)
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
    run = find.find_run(ref, runs_dir)
    record = records.load_record(run, "RUN")
    target = output or run / REPORT
    if target.suffix.lower() not in (".html", ".htm"):
        raise RunError(f"{target}: the report is an .html file", key="--output")
    if not target.parent.is_dir():
        raise RunError(f"the folder {target.parent} does not exist; create it first", key="--output")
    history_png = run / pictures.HISTORY_PNG
    rows = records.read_history(run)
    if rows and not history_png.exists() and not history_png.is_symlink():   # a run from before pictures
        with contextlib.suppress(TypeError, KeyError, ValueError):   # hand-edited rows: no curves, still a report
            pictures.history(rows, history_png, run.name)
    atomic.write_text(target, page(run, record))
    display.note(f"written: {target}")
    return target


def page(run: Path, record: dict[str, Any]) -> str:
    """The whole HTML document: every value that came from the run's files is escaped."""
    status = str(record.get("status", "unknown"))
    versions = record.get("versions")
    parts = [f"<h1>{_e(run.name)}</h1>",
             f"<p>status <b class='status-{_e(status)}'>{_e(status)}</b>; started {_e(record.get('started'))}, "
             f"ended {_e(record.get('ended'))}; seed {_e(record.get('seed'))}; "
             f"{_e(record.get('epochs_completed'))} epochs</p>"]
    parts += _section("Curves", _image(run, pictures.HISTORY_PNG, "training history") + _history_note(run))
    parts += _section("Metrics", _metrics(run))
    parts += _section("Confusion matrices", _confusions(run))
    parts += _section("Evaluation scores", _scores(run))
    parts += _section("Model summary", _pre(run, layout.SUMMARY))
    parts += _section("Config (config.yaml)", _pre(run, layout.CONFIG))
    parts += _section("Environment", _table([("host", record.get("host")),
                                             *sorted((versions if isinstance(versions, dict) else {}).items())]))
    parts += _section("Artifacts", _artifacts(run))
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>kcli report: {_e(run.name)}"
            f"</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def _e(value: Any, lines: bool = False) -> str:
    """Text (from the run's files, names or labels) as HTML text or a quoted attribute value: control and bidi
    characters shown as their escapes (HTML escaping keeps them; a browser acts on U+202E), as in the terminal."""
    return html.escape("" if value is None else visible(value, lines), quote=True)


def _section(title: str, content: str) -> list[str]:
    return [f"<h2>{_e(title)}</h2>", content]


def _pre(run: Path, name: str) -> str:
    """A text file of the run as preformatted text: its first MAX_TEXT bytes, and a line saying what is cut."""
    head = readable.read_head(run / name, MAX_TEXT, run)   # a regular file inside the run, never a link out of it
    if head is None:
        return "<p>(none)</p>"
    data, size = head
    cut = f"\n(cut: {_size(size - len(data))} more in {name})" if size > len(data) else ""
    return f"<pre>{_e(data.decode('utf-8', errors='replace'), lines=True)}{_e(cut, lines=True)}</pre>"


def _image(run: Path, name: str, alt: str) -> str:
    head = readable.read_head(run / name, MAX_PICTURE + 1, run)   # never more than a picture worth embedding
    if head is None:
        return "<p>(none)</p>"
    data, size = head
    if size > MAX_PICTURE:
        return f"<p>({_e(name)} is {_e(_size(size))}, too big to embed; open it beside the report)</p>"
    if not data.startswith(PNG):   # only a PNG goes into a data:image/png URI
        return f"<p>({_e(name)} is not a PNG picture)</p>"
    return f"<img alt='{_e(alt)}' src='data:image/png;base64,{base64.b64encode(data).decode('ascii')}'>"


def _table(rows: list[tuple[Any, Any]], header: tuple[str, str] | None = None) -> str:
    head = f"<tr><th>{_e(header[0])}</th><th>{_e(header[1])}</th></tr>" if header else ""
    cells = "".join(f"<tr><td>{_e(k)}</td><td class='n'>{_e(_number(v))}</td></tr>" for k, v in rows)
    return f"<table>{head}{cells}</table>"


def _number(value: Any) -> Any:
    return f"{value:.4f}" if isinstance(value, float) else value


def _evaluations(run: Path) -> list[tuple[Path, dict[str, Any] | None]]:
    """metrics.json and every eval-*.json of the run, each parsed (None: unreadable, not JSON, not an object)."""
    found = []
    for path in [run / layout.METRICS, *sorted(run.glob("eval-*.json"))]:
        if not path.exists() and not path.is_symlink():
            continue
        values = records.read_json(path)
        found.append((path, values if isinstance(values, dict) else None))
    return found


def _history_note(run: Path) -> str:
    """A line when history.json is there but is no readable JSON list (its rows are then left out)."""
    path = run / layout.HISTORY_JSON
    if not (path.exists() or path.is_symlink()) or isinstance(records.read_json(path), list):
        return ""
    return f"<p>{_e(path.name)}: left out (not a readable JSON list in the run)</p>"


def _damaged(path: Path) -> str:
    return f"<p>{_e(path.name)}: left out (not a readable JSON object in the run)</p>"


def _metrics(run: Path) -> str:
    out = []
    for path, values in _evaluations(run):
        if values is None:
            out.append(_damaged(path))
            continue
        flat = [(k, v) for k, v in values.items() if isinstance(v, (int, float, str)) and k != "data"]
        out.append(f"<h3>{_e(path.name)}</h3>" + _table(flat, ("metric", "value")))
    return "".join(out) or "<p>(none: the run has no test split and was not evaluated)</p>"


def _confusions(run: Path) -> str:
    out = []
    for path, values in _evaluations(run):
        if values is None or path.name == layout.METRICS or "confusion_matrix" not in values:
            continue
        out.append(f"<h3>{_e(path.stem)}</h3>" + _image(run, f"{path.stem}-confusion.png", path.stem))
        out.append(_rows(values.get("per_class"), PER_CLASS))
    return "".join(out) or "<p>(none yet: <code>kcli evaluate RUN</code> of a classifier adds one)</p>"


def _scores(run: Path) -> str:
    """Each evaluation's scores: the headline numbers, the pictures beside it, the per-class, threshold and
    calibration tables."""
    out = []
    for path, values in _evaluations(run):
        found = values.get("scores") if values is not None and path.name != layout.METRICS else None
        if not isinstance(found, dict):
            continue
        out.append(f"<h3>{_e(path.stem)}</h3>" + _table(list(scores.headline(found).items()), ("score", "value")))
        if "positive_class" in found:
            out.append(f"<p>positive class: {_e(found['positive_class'])}</p>")
        if isinstance(found.get("sampled_from"), int):
            out.append(f"<p>scored on a uniform sample of {_e(found.get('examples'))} of "
                       f"{_e(found['sampled_from'])} rows</p>")
        for kind, what in layout.EVAL_PICTURES.items():
            name = f"{path.stem}-{kind}.png"
            if kind != "confusion" and ((run / name).exists() or (run / name).is_symlink()):
                out.append(_image(run, name, f"{path.stem}: {what}"))
        calibration = found.get("calibration")
        if isinstance(calibration, dict):
            out.append(f"<p>calibration: {_e(calibration.get('of'))}, {_e(calibration.get('bins'))} equal-width "
                       "bins</p>" + _rows(calibration.get("table"), CALIBRATION))
        for key, columns, caption in (("per_class", CLASS_SCORES, "each class against the rest"),
                                      ("thresholds", THRESHOLDS, "a row is called positive when the probability "
                                                                 "of the positive class is at least the threshold")):
            if key in found:
                out.append(f"<p>{_e(caption)}</p>" + _rows(found[key], columns))
    return "".join(out) or "<p>(none yet: <code>kcli evaluate RUN</code> of a classifier or regression adds them)</p>"


def _rows(rows: Any, columns: tuple[str, ...]) -> str:
    """A table of JSON rows (objects), one column per key; anything that is not a list of objects: no rows."""
    rows = [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
    cells = "".join("<tr>" + "".join(f"<td class='n'>{_e(_number(r.get(k)))}</td>" for k in columns) + "</tr>"
                    for r in rows)
    head = "".join(f"<th>{_e(k)}</th>" for k in columns)
    return f"<table><tr>{head}</tr>{cells}</table>"


def _artifacts(run: Path) -> str:
    """Every entry of the run with its size; a link is listed as a link (never followed), a folder is summed
    without following links."""
    rows = []
    for path in sorted(run.iterdir()):
        if path.name == REPORT or path.name.startswith(atomic.TMP_PREFIX):
            continue
        try:
            info = path.lstat()
        except OSError:
            continue
        if stat.S_ISLNK(info.st_mode):
            rows.append((f"{path.name} (a link, not followed)", ""))
        elif stat.S_ISDIR(info.st_mode):
            rows.append((path.name + "/", _size(readable.tree_size(path))))
        elif stat.S_ISREG(info.st_mode):
            rows.append((path.name, _size(info.st_size)))
        else:
            rows.append((f"{path.name} (not a regular file)", ""))
    return _table(rows, ("file", "size"))


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
