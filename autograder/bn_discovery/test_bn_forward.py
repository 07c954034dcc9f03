"""Question 3: bn_forward, called by the grade-time cell on hidden arrays.

The grader rebuilds the hidden inputs from the spec's seed (hidden_inputs.py, the code the
grade-time cell ran) and the right output with its own numpy; messages name the mistake (no
epsilon, a standard deviation plus epsilon, no square root) without showing any hidden number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hidden_inputs import bn_forward_inputs

from deepgrade.checks import fail

RTOL, ATOL = 1e-5, 1e-6  # float32 arithmetic in the student's function is fine
# The usual mistakes, recognised by recomputing them: (how the spread is computed, the hint).
MISTAKES = (
    (
        lambda var, eps: np.sqrt(var),
        "it forgets epsilon, which goes under the square root with the variance",
    ),
    (
        lambda var, eps: np.sqrt(var) + eps,
        "it adds epsilon to the standard deviation; epsilon goes inside the square root",
    ),
    (
        lambda var, eps: var + eps,
        "it divides by the variance; divide by the square root of variance + epsilon",
    ),
)


def normalize(bn: dict[str, Any], x: np.ndarray, spread: Any = None) -> np.ndarray:
    """Inference-mode batch normalization of x, or with a mistaken `spread(var, eps)`."""
    divisor = np.sqrt(bn["var"] + bn["eps"]) if spread is None else spread(bn["var"], bn["eps"])
    return bn["gamma"] * (x - bn["mean"]) / divisor + bn["beta"]


def close(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=RTOL, atol=ATOL))


@pytest.fixture(scope="module")
def bn(hidden: Any) -> dict[str, Any]:
    """The hidden arrays and epsilon the grade-time cell gave bn_forward."""
    spec = hidden["bn_forward"]
    return {**bn_forward_inputs(spec["seed"], spec["channels"]), "eps": float(spec["eps"])}


@pytest.mark.points(3)
def test_hidden_bn_forward(artifacts_dir: Path, bn: dict[str, Any]) -> None:
    """bn_forward computes inference-mode batch normalization (grader's hidden arrays)"""
    path = artifacts_dir / "bn_forward.npz"
    if not path.is_file() or path.is_symlink():
        fail(
            "the grader called bn_forward with other arrays and got nothing back (it raised an "
            "error or the notebook stopped before): make bn_forward(x, gamma, beta, mean, var, "
            "eps) work for any number of channels and any shape of x with channels last"
        )
    try:
        with np.load(path, allow_pickle=False) as saved:
            given = {key: np.asarray(saved[key], dtype=np.float64) for key in ("images", "rows")}
    except (OSError, ValueError, EOFError, KeyError):
        fail("bn_forward's output could not be read: return a numpy array")
    for key in ("images", "rows"):
        want = normalize(bn, bn[key])
        if given[key].shape != want.shape:
            fail(
                "with other arrays, bn_forward returned an array of another shape than x: "
                "normalize each element, channels on the last axis"
            )
        if not close(given[key], want):
            hint = next(
                (h for spread, h in MISTAKES if close(given[key], normalize(bn, bn[key], spread))),
                "check the formula gamma * (x - mean) / sqrt(var + eps) + beta, per channel",
            )
            fail(f"with other arrays, bn_forward's output is wrong: {hint}")
