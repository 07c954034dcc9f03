"""Fixtures of the cat/dog hidden checks: the grader's own CIFAR-10 cats and dogs, and the
hidden inputs the grade-time cells gave the student's functions, rebuilt from the same seeds.

The data are read exactly as the notebook's locked cell reads them, then split by the grader
(dogs -> 0, cats -> 1, order kept); accuracy and predictions are judged on this copy, never on
what the notebook printed. `hidden_split_cases` and `hidden_classify_indices` repeat the
grade-time cells' code (gradetime.py cannot be imported by a notebook), and
tests/test_catdog_split_checks.py proves the two agree. deepgrade's plugin provides the other
fixtures: answers, history, artifact, load_model, threshold, measure, hidden, profile, data_dir.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

DOG, CAT = 5, 3  # CIFAR-10 classes; new classes: dog 0, cat 1
NAMES = ("dog", "cat")


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 32, 32, 3) uint8 RGB and labels (n,) of one CIFAR-10 python batch."""
    with path.open("rb") as handle:
        batch = pickle.load(handle, encoding="bytes")
    rows = np.asarray(batch[b"data"], dtype=np.uint8)
    return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), np.asarray(
        batch[b"labels"], dtype=np.int64
    )


def split(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The grader's own split: dogs (5) -> 0, cats (3) -> 1, other classes dropped, order kept."""
    keep = (y == DOG) | (y == CAT)
    return x[keep], np.where(y[keep] == DOG, 0, 1).astype(np.int64)


def scale(images: np.ndarray) -> np.ndarray:
    """As the notebook's AX: float32 in [-0.5, 0.5]."""
    return images.astype(np.float32) / 255.0 - 0.5


def hidden_split_cases(seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Label arrays with edge cases (no cats, no dogs, neither, alternating) and random images;
    image i carries i in its first two bytes, so every image is unique. Same code as the
    grade-time cell's."""
    rng = np.random.default_rng(seed)
    others = np.array([0, 1, 2, 4, 6, 7, 8, 9])
    mixed = rng.integers(0, 10, size=120)
    no_cats = rng.choice(np.append(others, DOG), size=40)
    no_cats[:2] = rng.choice(others, size=2)
    no_cats[[5, 17, 30]] = DOG
    no_dogs = rng.choice(np.append(others, CAT), size=40).astype(np.uint8)
    no_dogs[[3, 11, 29]] = CAT
    alternating = np.array([CAT, DOG] * 12)
    alternating[rng.choice(24, size=6, replace=False)] = rng.choice(others, size=6)
    alternating[:2] = [CAT, DOG]
    neither = rng.choice(others, size=20)
    cases = {}
    for name, labels in (
        ("mixed", mixed),
        ("no_cats", no_cats),
        ("no_dogs", no_dogs),
        ("alternating", alternating),
        ("neither", neither),
    ):
        images = rng.integers(0, 256, size=(len(labels), 32, 32, 3), dtype=np.uint8)
        images[:, 0, 0, 0] = np.arange(len(labels)) // 256
        images[:, 0, 0, 1] = np.arange(len(labels)) % 256
        cases[name] = (images, labels)
    return cases


def hidden_classify_indices(labels: np.ndarray, seed: int, count: int) -> np.ndarray:
    """Indices into the grader's raw test batch of the dogs and cats written as image files."""
    candidates = np.flatnonzero((labels == DOG) | (labels == CAT))
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(candidates, size=min(count, len(candidates)), replace=False))


@dataclass(frozen=True)
class CatsDogs:
    """The grader's CIFAR-10 data: the split test set and the split sizes."""

    n_train: int  # dogs and cats in the training batches
    n_test: int
    x_test: np.ndarray  # (n_test, 32, 32, 3) uint8, dogs and cats in their original order
    y_test: np.ndarray  # (n_test,) 0 dog, 1 cat
    raw_test_x: np.ndarray  # the whole test batch, for the hidden image files
    raw_test_y: np.ndarray


@pytest.fixture(scope="session")
def catsdogs(data_dir: Path) -> CatsDogs:
    train_labels = [read_batch(data_dir / f"data_batch_{i}")[1] for i in range(1, 6)]
    y_train = np.concatenate(train_labels)
    raw_x, raw_y = read_batch(data_dir / "test_batch")
    x_test, y_test = split(raw_x, raw_y)
    return CatsDogs(
        n_train=int(np.sum((y_train == DOG) | (y_train == CAT))),
        n_test=len(y_test),
        x_test=x_test,
        y_test=y_test,
        raw_test_x=raw_x,
        raw_test_y=raw_y,
    )
