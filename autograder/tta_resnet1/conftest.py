"""Fixtures of the TTA hidden checks: the grader's test set, its own copy of resnet1, the
hidden images rebuilt with hidden_inputs.py from spec.toml's [hidden] values, and the grader's
own predictions.

Accuracy is judged on the grader's data with the grader's scaling (x / 255 - 0.5), never on
what the notebook printed. deepgrade's plugin provides the other fixtures (answers, artifact,
threshold, measure, hidden, profile, data_dir, stage1_usage).

tta_predict is judged on its measured calls only (gradetime.py, `# deepgrade-measure: tta_K`):
stage 1's runner, outside the student's kernel, put a fresh random number (the nonce) into each
of those cells just before it ran and measured the CPU time the sandbox's processes spent on it.
The images of a call are picked from the test set with that nonce; `rounds` rebuilds them here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hidden_inputs
import numpy as np
import pytest

from deepgrade.checks import fail

# The notebook's setup cell sets this before importing keras; the grader's own predict
# (the cost baseline) runs with the same settings.
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")

ROUNDS = ("tta_1", "tta_2", "tta_3")  # the measured cells of gradetime.py, in order


@dataclass(frozen=True)
class Grader:
    """What the grader computed itself: labels and plain predictions, test set and hidden."""

    y_test: np.ndarray  # (n,) int64
    plain_test: np.ndarray  # (n, 10) resnet1's probabilities on the scaled test images
    hidden_uint8: np.ndarray  # (m, 32, 32, 3) the hidden images
    x_test_uint8: np.ndarray  # (n, 32, 32, 3) the test images the measured calls pick from
    model: Any  # the grader's own copy of resnet1

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities of scaled images, in one predict call."""
        return np.asarray(self.model.predict(images, batch_size=256, verbose=0))

    @property
    def plain_accuracy(self) -> float:
        return float(np.mean(np.argmax(self.plain_test, axis=1) == self.y_test))


@pytest.fixture(scope="session")
def grader(data_dir: Path, hidden: Any) -> Grader:
    """The grader's own predictions with its own copy of resnet1 (a trusted file)."""
    import keras

    from deepgrade.datasets import cifar10

    x_test, y_test = cifar10.load_test(data_dir)
    model = keras.saving.load_model(data_dir / "resnet1.keras")
    return Grader(
        y_test=y_test,
        plain_test=np.asarray(
            model.predict(hidden_inputs.scale(x_test), batch_size=256, verbose=0)
        ),
        hidden_uint8=hidden_inputs.pick(x_test, hidden["images"]),
        x_test_uint8=x_test,
        model=model,
    )


@dataclass(frozen=True)
class Round:
    """One measured call of tta_predict: its images, its output, what the runner measured."""

    name: str
    images: np.ndarray  # uint8, picked with the nonce the runner put into the cell
    output: np.ndarray | None  # what tta_predict returned (None when it saved nothing)
    cpu_s: float  # every sandbox process but the runner, while the cell ran
    wall_s: float


def _array(path: Path) -> np.ndarray | None:
    """The numeric (or boolean) array saved at `path`; None when there is none."""
    try:
        array = np.load(path, allow_pickle=False) if not path.is_symlink() else None
    except (OSError, ValueError, EOFError):
        return None
    numeric = isinstance(array, np.ndarray) and (
        np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
    )
    return array if numeric else None


@pytest.fixture(scope="session")
def rounds(
    grader: Grader, hidden: Any, stage1_usage: dict[str, dict[str, float]], artifacts_dir: Path
) -> list[Round]:
    """The measured calls the runner reported, in order (a call it did not measure is not
    used: its images are unknown)."""
    found = []
    for number, name in enumerate(ROUNDS, 1):
        usage = stage1_usage.get(name)
        if usage is None:
            continue
        images = hidden_inputs.pick(grader.x_test_uint8, hidden["images"], int(usage["nonce"]))
        output = _array(artifacts_dir / f"hidden_tta_{number}.npy")
        output = None if output is None else output.astype(np.float64)
        found.append(Round(name, images, output, usage["cpu_s"], usage["wall_s"]))
    return found


@pytest.fixture(scope="session")
def load_array(artifacts_dir: Path) -> Callable[[str, str], np.ndarray]:
    """load_array(name, what) -> the saved numeric array; fails closed, naming `what` (the
    call whose result it is) when the file is missing or holds anything else."""

    def load(name: str, what: str) -> np.ndarray:
        path = artifacts_dir / name
        if path.is_symlink() or not path.is_file():
            fail(
                f"the grader called {what} on images you never saw and got nothing back (it "
                "raised an error, or the notebook stopped before): run the whole notebook and "
                "make it work on any number of images"
            )
        array = _array(path)
        if array is None:
            fail(f"{what} did not return a numeric array: return a numpy array")
        return array

    return load
