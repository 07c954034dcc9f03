"""The hidden inputs of tta_resnet1, made from spec.toml's [hidden] values (never written here).

One definition for both sides: the checks `import hidden_inputs`, the grade-time cells call it
as `_dg_inputs` (the grader renders this file into its notebook). numpy and the standard library
only; the checks read the test set with deepgrade's own CIFAR-10 loader.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from typing import Any

import numpy as np

# What a CIFAR-10 batch may ask the unpickler for (NumPy 1 and 2 spellings): nothing callable.
_ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")} | {
    (f"numpy.{core}.multiarray", name)
    for core in ("core", "_core")
    for name in ("_reconstruct", "scalar")
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refused {module}.{name} in a CIFAR-10 batch")
        return super().find_class(module, name)


def test_images(path: str) -> np.ndarray:
    """The CIFAR-10 python `test_batch` at `path` as (n, 32, 32, 3) uint8 images."""
    with open(path, "rb") as handle:
        rows = _Unpickler(handle, encoding="bytes").load()[b"data"]
    return np.asarray(rows, dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def pick(images: np.ndarray, spec: Mapping[str, Any], seed: int | None = None) -> np.ndarray:
    """spec["n_images"] test images picked with `seed` (by default spec["seed"]; a measured
    call's nonce otherwise), each pixel moved by at most spec["noise"] grey levels: uint8
    images the student never saw."""
    rng = np.random.default_rng(spec["seed"] if seed is None else seed)
    size = min(int(spec["n_images"]), len(images))
    chosen = images[rng.choice(len(images), size=size, replace=False)]
    noise = rng.integers(-spec["noise"], spec["noise"] + 1, size=chosen.shape)
    return np.clip(chosen.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def scale(images: np.ndarray) -> np.ndarray:
    """resnet1's input scaling, as program 10 trained it: [-0.5, 0.5]. The grader's own: the
    TTA checks never depend on the student's preprocess."""
    return images.astype(np.float32) / 255.0 - 0.5
