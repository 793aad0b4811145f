"""Head: the class choice predict writes, in numpy and in the serving export's TensorFlow ops, is one rule."""

from __future__ import annotations

import numpy as np
import pytest

from kcli.use.head import Head

SCORES = np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 0.5], [0.0, 0.0, 0.0]], np.float32)
LOGITS = np.array([[-2.0], [0.0], [1.5]], np.float32)


@pytest.mark.parametrize(("head", "raw"), [
    (Head("multiclass", True), SCORES), (Head("multiclass", False), SCORES),
    (Head("multiclass", True, ["a", "b", "c"]), SCORES),
    (Head("binary", True), LOGITS), (Head("binary", False, ["no", "yes"]), 1 / (1 + np.exp(-LOGITS))),
])
def test_answers_and_their_tensorflow_twin_agree(head: Head, raw: np.ndarray) -> None:
    answers = head.answers(raw)
    in_graph = head.classify_tensor(raw)
    predicted = in_graph["predicted"].numpy()
    if head.class_names:
        predicted = predicted.astype(str)
        assert answers["predicted"].tolist() == [head.class_names[i] for i in head.classify(raw)[0]]
    assert answers["predicted"].tolist() == predicted.tolist()
    np.testing.assert_allclose(answers["probability"], in_graph["probability"].numpy(), rtol=1e-6)
    assert answers["probability"].dtype == np.float32


def test_plain_values_have_no_answers() -> None:
    assert Head("values", False).answers(SCORES) == {}
    assert Head("values", False).classify_tensor(SCORES) == {}
