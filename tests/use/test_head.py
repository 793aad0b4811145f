"""Head: the class choice predict writes, in numpy and in the serving export's TensorFlow ops, is one rule."""

from __future__ import annotations

import warnings

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


def test_a_huge_negative_logit_is_probability_zero_without_a_numpy_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # evaluate printed numpy's "overflow encountered in exp" on stderr
        probs = Head("binary", True).probabilities(np.array([[-1e30], [1e30], [0.0]], np.float32))
    np.testing.assert_array_equal(probs, [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
