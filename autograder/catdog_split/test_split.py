"""Exercise 1: split_cats_dogs, judged on the grader's own label arrays and data.

The grade-time cell called the student's function on label arrays built from a hidden seed
(hidden_inputs.split_cases; edge cases included: no cats, no dogs, neither, alternating) and
saved what it returned; the checks rebuild the same arrays, find each returned image among the
inputs (image i carries i), and compare with the grader's own split. Messages never show the
hidden arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hidden_inputs import CAT, DOG, split_cases

from deepgrade.checks import fail

MAPPING = "dogs (class 5) become class 0 and cats (class 3) class 1"


class Case:
    """One hidden input and what the student's function returned for it (None: nothing)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, x2: Any, y2: Any) -> None:
        self.y = np.asarray(y).reshape(-1)
        self.expected = np.flatnonzero((self.y == DOG) | (self.y == CAT))
        self.valid = (
            isinstance(x2, np.ndarray)
            and isinstance(y2, np.ndarray)
            and x2.ndim == 4
            and x2.shape[1:] == (32, 32, 3)
            and y2.size == x2.shape[0]
            and (np.issubdtype(y2.dtype, np.integer) or np.issubdtype(y2.dtype, np.floating))
            and (np.issubdtype(x2.dtype, np.integer) or np.issubdtype(x2.dtype, np.floating))
        )
        self.found: list[int | None] = []  # per returned image: its index in x, None if changed
        self.labels = np.zeros(0)
        if self.valid:
            index = {image.tobytes(): i for i, image in enumerate(x)}
            for image in x2:
                same = np.array_equal(image, np.asarray(image, dtype=np.uint8))
                key = np.asarray(image, dtype=np.uint8).tobytes() if same else b""
                self.found.append(index.get(key))
            self.labels = np.asarray(y2).reshape(-1)

    @property
    def keeps_right_images(self) -> bool:
        return (
            self.valid
            and None not in self.found
            and sorted(i for i in self.found if i is not None) == list(self.expected)
        )


@pytest.fixture(scope="module")
def cases(artifact: Callable[[str], Path], hidden: Any) -> dict[str, Case]:
    """Every hidden case with the student's outputs (keys missing: the function failed)."""
    try:
        saved = np.load(artifact("hidden_split.npz"), allow_pickle=False)
        outputs = {key: saved[key] for key in saved.files}
    except (OSError, ValueError, EOFError):
        outputs = {}
    return {
        name: Case(x, y, outputs.get("x_" + name), outputs.get("y_" + name))
        for name, (x, y) in split_cases(int(hidden["split_seed"])).items()
    }


def _valid(cases: dict[str, Case]) -> list[Case]:
    valid = [case for case in cases.values() if case.valid]
    if not valid:
        fail(
            "split_cats_dogs returned no usable result on any of the grader's arrays (it "
            "raised an error, or did not return two arrays x2 (n, 32, 32, 3) and y2 (n,))"
        )
    return valid


@pytest.mark.points(1)
def test_split_keeps_dogs_and_cats(cases: dict[str, Case]) -> None:
    """split_cats_dogs keeps exactly the dogs and the cats, unchanged, on any label array"""
    broken = [case for case in cases.values() if not case.valid]
    assert not broken, (
        f"on {len(broken)} of the grader's {len(cases)} label arrays split_cats_dogs raised an "
        "error or did not return two arrays x2 (n, 32, 32, 3) and y2 (n,): it must work for "
        "any mix of classes, including arrays with no cat, no dog, or neither (then it returns "
        "empty arrays)"
    )
    wrong = [case for case in cases.values() if not case.keeps_right_images]
    assert not wrong, (
        f"on {len(wrong)} of the grader's {len(cases)} label arrays split_cats_dogs did not "
        "return exactly the images of class 5 and 3, each once and unchanged: select them with "
        "a mask such as (y == 5) | (y == 3)"
    )


@pytest.mark.points(2)
def test_split_labels(cases: dict[str, Case]) -> None:
    """Each kept image gets its new class: dog 0, cat 1"""
    wrong = 0
    for case in _valid(cases):
        for position, found in enumerate(case.found):
            if found is None or case.y[found] not in (DOG, CAT):
                continue  # judged by the check above
            if case.labels[position] != (0 if case.y[found] == DOG else 1):
                wrong += 1
    assert not wrong, (
        f"{wrong} kept images of the grader's arrays got the wrong new class: {MAPPING}, "
        "each image keeping its own label"
    )


@pytest.mark.points(2)
def test_split_order(cases: dict[str, Case]) -> None:
    """The kept images stay in their original order"""
    shuffled = 0
    for case in _valid(cases):
        positions = [i for i in case.found if i is not None]
        if positions != sorted(positions):
            shuffled += 1
    assert not shuffled, (
        f"on {shuffled} of the grader's label arrays the kept images are not in their "
        "original order: keep them as they come (one boolean mask over x), do not put the "
        "dogs first and the cats after, nor sort"
    )


@pytest.mark.points(1)
def test_split_sizes(answers: dict[str, Any], n_train: int, split_test: Any) -> None:
    """The split training and test sets have the grader's numbers of dogs and cats"""
    for key, n, what in (
        ("train_split_shape", n_train, "training"),
        ("test_split_shape", len(split_test[1]), "test"),
    ):
        shape = answers[key]
        expected = [n, 32, 32, 3]
        assert shape == expected, (
            f"after the split the {what} images have shape {shape}, expected {expected} "
            "(every dog and cat of the set, nothing else; 10,000 and 2,000 on the real data)"
        )
