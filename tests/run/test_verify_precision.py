"""Verification of a mixed-precision model's artifacts holds them to what the 16-bit type can promise, whatever the
CPU: the two legitimate ways a CPU computes a bfloat16/float16 layer are simulated here in numpy, so the rule is
proven on a CPU without bf16 instructions as well as on one with them (where TensorFlow really computes both)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from kcli.run import verify


def _mlp(dtype: type, fused: bool, weights: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> np.ndarray:
    """A Dense-ReLU stack in a 16-bit `dtype` with float32 accumulation; `fused` rounds matmul+bias once (oneDNN's
    fused op in a traced graph), else twice (eager Keras: the matmul's output, then the bias add); the last layer
    is cast to float32 as kcli's float32_output does."""
    def r(a: np.ndarray) -> np.ndarray:
        return a.astype(dtype).astype(np.float32)
    h = r(x)
    for i, (w, b) in enumerate(weights):
        z = r(h @ r(w) + r(b)) if fused else r(r(h @ r(w)) + r(b))
        h = np.maximum(z, 0) if i < len(weights) - 1 else z
    return h


def _weights(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    sizes = [64, 256, 128, 10]
    return [(rng.normal(0, (2 / a) ** 0.5, (a, b)).astype(np.float32), rng.normal(0, 0.1, b).astype(np.float32))
            for a, b in zip(sizes, sizes[1:])]


@pytest.mark.parametrize("compute, dtype", [("bfloat16", ml_dtypes.bfloat16), ("float16", np.float16)])
def test_a_16_bit_model_computed_another_correct_way_passes_and_a_wrong_export_fails(compute: str,
                                                                                     dtype: type) -> None:
    weights = _weights(0)
    x = np.random.default_rng(1).normal(0, 3, (verify.SAMPLES, 64)).astype(np.float32)
    expected = _mlp(dtype, False, weights, x)
    other_cpu = _mlp(dtype, True, weights, x)
    diff = float(np.max(np.abs(other_cpu - expected)))
    assert diff > verify.TOLERANCE["savedmodel"]       # the float32 rule would fail this correct artifact
    assert diff <= verify.allowed("savedmodel", expected, compute)
    # Wrong artifacts still fail: one output unit's weights off by 10%, or a hidden unit dropped (as dropout would).
    bent = [(w.copy(), b.copy()) for w, b in weights]
    bent[-1][0][:, 3] *= 1.1
    dropped = [(w.copy(), b.copy()) for w, b in weights]
    dropped[0][0][:, :16] = 0
    for wrong in (bent, dropped):
        off = float(np.max(np.abs(_mlp(dtype, True, wrong, x) - expected)))
        assert off > verify.allowed("savedmodel", expected, compute), off


def test_float32_models_keep_the_strict_tolerance() -> None:
    expected = np.full((8, 3), 100.0, np.float32)
    assert verify.allowed("savedmodel", expected) == verify.TOLERANCE["savedmodel"]
    assert verify.allowed("keras", expected, "float32") == verify.TOLERANCE["keras"]
    assert verify.allowed("savedmodel", expected, "bfloat16") == pytest.approx(16 * 2 ** -8 * 100)
