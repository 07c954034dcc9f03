"""Question 3: bn_forward, called by the grade-time cell on hidden arrays.

The grader recomputes the hidden inputs from the spec's seed and the right output with its own
numpy; messages name the mistake (no epsilon, a standard deviation plus epsilon, no square
root) without showing any hidden number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

RTOL, ATOL = 1e-5, 1e-6  # float32 arithmetic in the student's function is fine


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=RTOL, atol=ATOL))


def _mistake(given: np.ndarray, x: np.ndarray, bn: Any) -> str:
    """A hint for the usual mistakes, recognised by recomputing them."""
    if _close(given, bn.forward(x, eps=0.0)):
        return ": it forgets epsilon, which goes under the square root with the variance"
    if _close(given, bn.forward(x, std=True)):
        return ": it adds epsilon to the standard deviation; epsilon goes inside the square root"
    no_sqrt = bn.gamma * (x - bn.mean) / (bn.var + bn.eps) + bn.beta
    if _close(given, no_sqrt):
        return ": it divides by the variance; divide by the square root of variance + epsilon"
    return ": check the formula gamma * (x - mean) / sqrt(var + eps) + beta, per channel"


@pytest.mark.points(3)
def test_hidden_bn_forward(artifacts_dir: Path, hidden_bn: Any) -> None:
    """bn_forward computes inference-mode batch normalization (grader's hidden arrays)"""
    path = artifacts_dir / "bn_forward.npz"
    if not path.is_file() or path.is_symlink():
        pytest.fail(
            "the grader called bn_forward with other arrays and got nothing back (it raised an "
            "error or the notebook stopped before): make bn_forward(x, gamma, beta, mean, var, "
            "eps) work for any number of channels and any shape of x with channels last",
            pytrace=False,
        )
    try:
        with np.load(path, allow_pickle=False) as saved:
            given = {key: np.asarray(saved[key], dtype=np.float64) for key in ("images", "rows")}
    except (OSError, ValueError, EOFError, KeyError):
        pytest.fail("bn_forward's output could not be read: return a numpy array", pytrace=False)
    for key, x in (("images", hidden_bn.images), ("rows", hidden_bn.rows)):
        want = hidden_bn.forward(x)
        if given[key].shape != want.shape:
            pytest.fail(
                "with other arrays, bn_forward returned an array of another shape than x: "
                "normalize each element, channels on the last axis",
                pytrace=False,
            )
        if not _close(given[key], want):
            pytest.fail(
                "with other arrays, bn_forward's output is wrong"
                + _mistake(given[key], x, hidden_bn),
                pytrace=False,
            )
