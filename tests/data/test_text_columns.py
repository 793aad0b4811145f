"""Text columns (`data.columns.<name>: {kind: text}`): which string columns look like free text, and a
TextVectorization inside the model with the same numbers as the hand-written Keras script."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from kcli.data.column_stats import looks_like_text

WORDS = ("good", "bad", "fine", "slow", "fast", "cheap", "broken", "great", "poor", "nice", "late", "early")


def sentences(n: int, seed: int) -> list[str]:
    """Short sentences of 2-6 random words."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 7)))) for _ in range(n)]


def test_looks_like_text_tells_sentences_from_categories():
    assert looks_like_text(sentences(100, 0))
    assert looks_like_text(pa.chunked_array([sentences(50, 1), [None, "", "  "] + sentences(50, 2)]))
    assert looks_like_text(np.array(["x" * 20 + str(i) + "y" * 20 for i in range(40)], dtype=object))  # long
    assert not looks_like_text(["north", "south", "east"] * 40)          # few values, repeated
    assert not looks_like_text([f"user{i}" for i in range(100)])         # distinct but one short word each
    assert not looks_like_text(["New York", "Los Angeles", "San Jose"] * 30)   # spaced but repeated
    assert not looks_like_text(sentences(10, 3))                          # too few to tell: a category
    assert not looks_like_text([None, ""] * 30)
    assert not looks_like_text(pa.array(range(100)))
    assert not looks_like_text([1.5, 2.5] * 30)
