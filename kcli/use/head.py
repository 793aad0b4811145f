"""How a run's outputs read as answers: class scores, one binary probability, or plain values.

One owner for predict, predict_images, evaluate's confusion matrix, `kcli serve` and the serving export: the
kind is decided once (`Head.of`), and the class choice is written twice side by side, in numpy (`classify`, what
predict writes) and in TensorFlow ops (`classify_tensor`, inside an exported serving signature), so the two stay
one rule: softmax of logits or the scores as they are, argmax; sigmoid of a logit or the output, >= 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from kcli.run import find

THRESHOLD = 0.5   # a binary classifier predicts class 1 from this probability on


@dataclass
class Head:
    """How to read the model's outputs: class scores, one binary probability, or plain values."""

    kind: Literal["multiclass", "binary", "values"]
    from_logits: bool
    class_names: list[str] | None = None   # the run's class names by id (string labels, image folders)

    @classmethod
    def of(cls, run: find.FinishedRun, out_dim: int) -> Head:
        """Decide from the run's loss (and its from_logits) and the output width (several outputs: values)."""
        loss = run.config.compile.loss
        if isinstance(loss, dict):
            return cls("values", False)
        name = _loss_name(run)
        from_logits = bool(loss.args.get("from_logits", False))
        names = run.record.get("classes") or None
        if "categorical" in name and out_dim > 1:
            return cls("multiclass", from_logits, names)
        if "binary" in name and out_dim == 1:
            return cls("binary", from_logits, names)
        return cls("values", False)

    def name_of(self, ids: np.ndarray) -> np.ndarray:
        """Predicted class ids as the run's class names (ids when it has none)."""
        if not self.class_names:
            return ids
        return np.asarray(self.class_names, dtype=object)[ids.astype(np.int64)]

    @property
    def note(self) -> str:
        """What the probability column means."""
        if self.kind == "multiclass":
            return "probability = softmax of the model's logits" if self.from_logits else \
                "probability = the model's output for the predicted class"
        if self.kind == "binary":
            return "probability = sigmoid of the model's logit" if self.from_logits else \
                "probability = the model's output"
        return "raw model outputs (not a classifier)"

    def classify(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(predicted class ids, probability of the predicted class), or None for plain values."""
        probs = self.probabilities(raw)
        if probs is None:
            return None
        if self.kind == "multiclass":
            ids = np.argmax(probs, axis=1)
            return ids, probs[np.arange(len(ids)), ids]
        ids = (probs[:, 1] >= THRESHOLD).astype(np.int64)
        return ids, np.where(ids == 1, probs[:, 1], probs[:, 0])

    def probabilities(self, raw: np.ndarray) -> np.ndarray | None:
        """Every class's probability, (rows, classes); a binary model's as (1 - p, p); None for plain values."""
        flat = raw.reshape(len(raw), -1)
        if self.kind == "multiclass":
            return _softmax(flat) if self.from_logits else flat
        if self.kind == "binary":
            with np.errstate(over="ignore"):   # a logit below -88 (float32): exp is inf, p1 exactly 0, no warning
                p1 = 1.0 / (1.0 + np.exp(-flat[:, 0])) if self.from_logits else flat[:, 0]
            return np.stack([1.0 - p1, p1], axis=1)
        return None

    def answers(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        """What predict writes beside the raw outputs: `predicted` (class name, else id) and `probability`
        (float32); empty for plain values."""
        classified = self.classify(raw)
        if classified is None:
            return {}
        ids, probability = classified
        predicted = self.name_of(ids) if self.class_names else ids.astype(np.int64)
        return {"predicted": predicted, "probability": probability.astype(np.float32)}

    def classify_tensor(self, scores: Any) -> dict[str, Any]:
        """`answers` in TensorFlow ops, for a graph (the serving export): `predicted` and `probability`."""
        import tensorflow as tf

        if self.kind == "values":
            return {}
        flat = tf.reshape(scores, [tf.shape(scores)[0], -1])
        if self.kind == "multiclass":
            probs = tf.nn.softmax(flat, axis=1) if self.from_logits else flat
            ids = tf.argmax(probs, axis=1)
            probability = tf.gather(probs, ids, batch_dims=1)
        else:
            p1 = tf.sigmoid(flat[:, 0]) if self.from_logits else flat[:, 0]
            ids = tf.cast(p1 >= THRESHOLD, tf.int64)
            probability = tf.where(ids == 1, p1, 1.0 - p1)
        predicted = tf.gather(tf.constant(self.class_names), ids) if self.class_names else ids
        return {"predicted": predicted, "probability": probability}


def is_regression(run: find.FinishedRun) -> bool:
    """Whether the run's one loss measures distances between values (MSE, MAE, Huber, ...): a regression."""
    return _loss_name(run) in REGRESSION_LOSSES


REGRESSION_LOSSES = {"mse", "meansquarederror", "mae", "meanabsoluteerror", "huber", "logcosh", "msle",
                     "meansquaredlogarithmicerror", "mape", "meanabsolutepercentageerror"}


def _loss_name(run: find.FinishedRun) -> str:
    """The run's loss as a bare lower-case class or function name ('' for one loss per output)."""
    loss = run.config.compile.loss
    return "" if isinstance(loss, dict) else loss.name.rsplit(":", 1)[-1].replace("_", "").lower()


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
