"""Labels are checked against the loss and the model's output before any training step (kcli.model.outputs)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kcli.config.model_io import Port, Ports
from kcli.data.splits import Arrays, Splits
from kcli.errors import DataError
from kcli.model.outputs import check_labels, output_shapes

PORTS = Ports(inputs=(Port("input", (4,)),), outputs=(), named=False)


def _model(units: int) -> keras.Model:
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(units)])


def _splits(y: np.ndarray, test: np.ndarray | None = None) -> Splits:
    x = np.zeros((len(y), 4), np.float32)
    return Splits(Arrays(x, y), test=Arrays(np.zeros((len(test), 4), np.float32), test) if test is not None else None)


def test_fitting_labels_pass() -> None:
    check_labels(_splits(np.eye(3)[[0, 1, 2]]), _model(3), keras.losses.CategoricalCrossentropy(), PORTS)
    check_labels(_splits(np.array([0, 2, 1])), _model(3), keras.losses.SparseCategoricalCrossentropy(), PORTS)
    check_labels(_splits(np.array([0.5, 1.5])), _model(1), keras.losses.MeanSquaredError(), PORTS)
    assert output_shapes(_model(3), PORTS) == [(None, 3)]


@pytest.mark.parametrize(("y", "units", "loss", "expected"), [
    (np.array([0, 3]), 3, keras.losses.SparseCategoricalCrossentropy(),
     "compile.loss: the data labels (shape [] per example) do not fit loss SparseCategoricalCrossentropy with model "
     "output (None, 3): class ids must lie in 0..2, found 0..3"),
    (np.array([0, 1]), 3, keras.losses.CategoricalCrossentropy(),
     "compile.loss: the data labels (shape [] per example) do not fit loss CategoricalCrossentropy with model "
     "output (None, 3): integer labels need data.one_hot: true, or a sparse loss such as "
     "SparseCategoricalCrossentropy"),
    (np.eye(3)[[0, 1]], 3, keras.losses.SparseCategoricalCrossentropy(),
     "compile.loss: the data labels (shape [3] per example) do not fit loss SparseCategoricalCrossentropy with model "
     "output (None, 3): sparse losses take one integer class id per example (set data.one_hot: false)"),
    (np.zeros((2, 2)), 3, keras.losses.mean_squared_error,
     "compile.loss: the data labels (shape [2] per example) do not fit loss mean_squared_error with model output "
     "(None, 3): the label shape must equal the output shape"),
])
def test_labels_that_do_not_fit_are_one_line(y: np.ndarray, units: int, loss: object, expected: str) -> None:
    with pytest.raises(DataError) as error:
        check_labels(_splits(y), _model(units), loss, PORTS)
    assert str(error.value) == expected


def test_each_split_is_named() -> None:
    with pytest.raises(DataError, match=r"^compile\.loss: the data\.test labels"):
        check_labels(_splits(np.array([0, 1]), test=np.array([5])), _model(3),
                     keras.losses.SparseCategoricalCrossentropy(), PORTS)
