"""Pieces of `kcli report` that need no run (kcli.output.report)."""

from __future__ import annotations

import pytest

from kcli.output.report import _size


@pytest.mark.parametrize("n,shown", [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
                                     (1024**2 - 1, "1024.0 KiB"), (1024**2, "1.0 MiB"), (5 * 1024**3, "5.0 GiB"),
                                     (3000 * 1024**3, "3000.0 GiB")])
def test_sizes_are_shown_in_binary_units_up_to_gib(n: int, shown: str) -> None:
    assert _size(n) == shown
