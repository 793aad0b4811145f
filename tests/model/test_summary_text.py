"""summary.txt without Rich: the plain text equals what Rich drew for it (ASCII boxes on 100 columns)."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from rich.console import Console

from kcli.model.summary_text import as_text
from kcli.output.display import Display


def _row(name: str, kind: str = "Dense", shape: str = "(None, 3)", params: int = 15, connected: str = "",
         frozen: str = "") -> SimpleNamespace:
    return SimpleNamespace(name=name, kind=kind, output_shape=shape, params=params, connected=connected,
                           frozen=frozen)


def _summary(name: str, rows: list[SimpleNamespace], variables: list[tuple[str, tuple[int, ...], bool]],
             trainable: int = 15, non_trainable: int = 0) -> SimpleNamespace:
    return SimpleNamespace(name=name, rows=rows, variables=variables, trainable=trainable,
                           non_trainable=non_trainable, total=trainable + non_trainable)


def _drawn_by_rich(summary: SimpleNamespace) -> str:
    """How summary.txt was written before: the terminal's summary drawn on a plain 100-column console."""
    buf = io.StringIO()
    Display(Console(file=buf, width=100, color_system=None, highlight=False, emoji=False)).summary(summary, True)
    return buf.getvalue()


SUMMARIES = {
    "sequential": _summary("sequential", [_row("dense")], [("sequential/dense/kernel", (4, 3), True),
                                                          ("sequential/dense/bias", (3,), True)]),
    "graph, frozen, odd names": _summary("functional", [
        _row("input", "InputLayer", "(None, 4)", 0), _row("h1", connected="input[0][0]"),
        _row("bb", "Functional", "(None, 8)", 123456, "h1[0][0], h1[0][0]", "partly (1 of 3 layers frozen)"),
        _row("x\x1by\u202e", frozen="frozen"), _row("日本")], [("a", (1,), False), ("b/c", (2, 2), True)], 10, 20),
    "empty": _summary("m", [], []),
    "a title wider than its table": _summary("a_very_long_model_name_that_is_longer_than_the_table_itself_for_sure",
                                             [_row("d")], []),
    "a title of words": _summary("abc def ghi jkl mno pqr stu vwx yz0 123 456", [_row("d")], []),
}


@pytest.mark.parametrize("name", SUMMARIES)
def test_summary_text_is_what_rich_drew(name: str) -> None:
    summary = SUMMARIES[name]
    assert as_text(summary) == _drawn_by_rich(summary)   # type: ignore[arg-type]


def test_a_table_wider_than_the_page_wraps_as_rich_did() -> None:
    """A transfer-learning graph is wider than 100 columns: the widest cells wrap, an overlong word is cut."""
    summary = _summary("functional", [
        _row("input_layer", "InputLayer", "(None, 224, 224, 3)", 0),
        _row("mobilenetv2_1.00_224", "Functional", "(None, 7, 7, 1280)", 2257984, "input_layer[0][0]",
             "partly (100 of 155 layers frozen)"),
        _row("n" * 120, connected="mobilenetv2_1.00_224[0][0], input_layer[0][0]")], [])
    text = as_text(summary)   # type: ignore[arg-type]
    assert text == _drawn_by_rich(summary) and max(len(line) for line in text.splitlines()) == 100
