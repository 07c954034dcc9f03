"""The hidden inputs of catdog_split, built from the seeds in spec.toml's [hidden] table.

One recipe for both sides: the grade-time cells call it (as `_dg_inputs`) to give the student's
functions their inputs, and the hidden checks `import hidden_inputs` to rebuild the same inputs
and judge what came back. numpy only, since it also runs in the student's kernel; the seeds stay
in spec.toml.
"""

from __future__ import annotations

import numpy as np

DOG, CAT = 5, 3  # CIFAR-10 classes; the split makes them dog 0, cat 1
OTHERS = np.array([0, 1, 2, 4, 6, 7, 8, 9])


def split_cases(seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Label arrays for split_cats_dogs with edge cases (no cats, no dogs, neither, alternating)
    and random images; image i carries i in its first two bytes, so every image is unique."""
    rng = np.random.default_rng(seed)
    mixed = rng.integers(0, 10, size=120)
    no_cats = rng.choice(np.append(OTHERS, DOG), size=40)
    no_cats[:2] = rng.choice(OTHERS, size=2)
    no_cats[[5, 17, 30]] = DOG
    no_dogs = rng.choice(np.append(OTHERS, CAT), size=40).astype(np.uint8)
    no_dogs[[3, 11, 29]] = CAT
    alternating = np.array([CAT, DOG] * 12)
    alternating[rng.choice(24, size=6, replace=False)] = rng.choice(OTHERS, size=6)
    alternating[:2] = [CAT, DOG]
    neither = rng.choice(OTHERS, size=20)
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


def classify_indices(labels: np.ndarray, seed: int, count: int) -> np.ndarray:
    """Indices into the test batch (its labels `labels`) of the dogs and cats that the
    grade-time cell writes as image files for classify_file."""
    candidates = np.flatnonzero((labels == DOG) | (labels == CAT))
    rng = np.random.default_rng(int(seed))
    return np.sort(rng.choice(candidates, size=min(int(count), len(candidates)), replace=False))
