"""SIGNS: 64x64 photos of a hand showing 0-5 raised fingers, as the course's two HDF5 files.

The format is the one the course's notebook reads with h5py: `train_signs.h5` holds
`train_set_x` (1080, 64, 64, 3) uint8, `train_set_y` (1080,) int64 and `list_classes` (6,) int64;
`test_signs.h5` the same with `test_set_*` and 120 images. The look-alike (`synth`) is written in
exactly this format, so the notebook, the hidden checks and this loader run the same code on both.

Files are opened with `locking=False`: the grader reads them from read-only mounts and several
workers read one cached copy at once; deepgrade only ever replaces them by atomic renames.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepgrade.datasets._registry import Dataset, Layout, balanced_splits
from deepgrade.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

NAME = "signs"
TRAIN_FILE = "train_signs.h5"
TEST_FILE = "test_signs.h5"
FILES = (TRAIN_FILE, TEST_FILE)
IMAGE_SHAPE = (64, 64, 3)
CLASSES = (0, 1, 2, 3, 4, 5)  # the number of raised fingers
SIZES: Mapping[str, int] = {"n_train": 1080, "n_test": 120}  # the course's files
# Bump when the look-alike's pixels change (cached copies are then rebuilt).
RECIPE_VERSION = 1


@dataclass(frozen=True)
class _Split:
    file: str
    x_key: str
    y_key: str
    size_key: str  # the synth keyword giving its number of images


_SPLITS = (
    _Split(TRAIN_FILE, "train_set_x", "train_set_y", "n_train"),
    _Split(TEST_FILE, "test_set_x", "test_set_y", "n_test"),
)

LAYOUT: Layout = {
    s.file: {
        s.x_key: ((SIZES[s.size_key], *IMAGE_SHAPE), "uint8"),
        s.y_key: ((SIZES[s.size_key],), "int64"),
        "list_classes": ((len(CLASSES),), "int64"),
    }
    for s in _SPLITS
}


@dataclass(frozen=True)
class SignsData:
    """Both splits as stored: images uint8 (N, 64, 64, 3), labels int64 (N,), classes int64 (6,).

    The arrays are read-only, so one loaded copy can be shared by checks without one of them
    changing what the next one sees; scale with `x / 255.0`, which makes a new array.
    """

    x_train: NDArray[np.uint8]
    y_train: NDArray[np.int64]
    x_test: NDArray[np.uint8]
    y_test: NDArray[np.int64]
    classes: NDArray[np.int64]


def _open(path: Path) -> Any:
    """The HDF5 file at `path`, or InputError saying why it is not one."""
    import h5py

    if not path.exists():
        raise InputError(
            path, f"missing: the SIGNS data set needs both {TRAIN_FILE} and {TEST_FILE} here"
        )
    if not path.is_file():
        raise InputError(path, "not a file: expected the SIGNS HDF5 file of that name")
    try:
        return h5py.File(path, "r", locking=False)
    except OSError as exc:
        raise InputError(
            path,
            f"not a readable HDF5 file ({exc}); expected the course's {path.name}, an HDF5 "
            "file as written by h5py",
        ) from None


def _check_split(f: Any, path: Path, split: _Split) -> None:
    """Raise InputError(path, ...) for the first thing in `f` that differs from the format."""
    import h5py
    import numpy as np

    expected = (split.x_key, split.y_key, "list_classes")
    for key in expected:
        if key not in f or not isinstance(f[key], h5py.Dataset):
            found = ", ".join(sorted(f.keys())) or "nothing"
            raise InputError(
                path, f"missing dataset {key!r} (found: {found}); expected {', '.join(expected)}"
            )
    x, y, classes = f[split.x_key], f[split.y_key], f["list_classes"]
    if x.ndim != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
        raise InputError(
            path,
            f"{split.x_key} has shape {tuple(x.shape)}; expected (N, 64, 64, 3): N RGB images "
            f"of 64x64 pixels (N = {SIZES[split.size_key]} in the course's file)",
        )
    if x.shape[0] == 0:
        raise InputError(path, f"{split.x_key} holds no images")
    if x.dtype != np.uint8:
        raise InputError(path, f"{split.x_key} has dtype {x.dtype}; expected uint8 pixels 0-255")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise InputError(
            path,
            f"{split.y_key} has shape {tuple(y.shape)}; expected ({x.shape[0]},): one label per "
            f"image of {split.x_key}",
        )
    if y.dtype.kind not in "iu":
        raise InputError(path, f"{split.y_key} has dtype {y.dtype}; expected integer labels")
    labels = y[()]
    bad = np.flatnonzero((labels < CLASSES[0]) | (labels > CLASSES[-1]))
    if bad.size:
        raise InputError(
            path,
            f"{split.y_key}[{bad[0]}] is {labels[bad[0]]}; expected labels 0-5 (the number of "
            f"raised fingers); {bad.size} label(s) out of range",
        )
    if classes.dtype.kind not in "iu" or tuple(classes.shape) != (len(CLASSES),):
        raise InputError(
            path,
            f"list_classes has shape {tuple(classes.shape)} and dtype {classes.dtype}; "
            "expected 6 integers [0 1 2 3 4 5]",
        )
    if tuple(classes[()].tolist()) != CLASSES:
        raise InputError(
            path, f"list_classes is {classes[()].tolist()}; expected [0, 1, 2, 3, 4, 5]"
        )


def verify(directory: Path) -> None:
    """Check that `directory` holds both SIGNS files in the course's format.

    Sizes may differ from 1080/120 (look-alikes of other sizes), as long as each file has one
    label per image; everything else must match: keys, 64x64x3 uint8 images, integer labels
    0-5, list_classes [0..5]. Each problem raises InputError naming the file.
    """
    directory = Path(directory)
    for split in _SPLITS:
        path = directory / split.file
        with _open(path) as f:
            _check_split(f, path, split)


def load(directory: Path) -> SignsData:
    """Read and check both files in `directory`: the arrays as stored, labels as int64."""
    import numpy as np

    directory = Path(directory)
    arrays: dict[str, NDArray[Any]] = {}
    for split, prefix in zip(_SPLITS, ("train", "test"), strict=True):
        path = directory / split.file
        with _open(path) as f:
            _check_split(f, path, split)
            arrays[f"x_{prefix}"] = np.asarray(f[split.x_key][()], dtype=np.uint8)
            arrays[f"y_{prefix}"] = np.asarray(f[split.y_key][()], dtype=np.int64)
            arrays["classes"] = np.asarray(f["list_classes"][()], dtype=np.int64)
    for array in arrays.values():
        array.flags.writeable = False
    return SignsData(**arrays)


def _write_h5(path: Path, arrays: Mapping[str, NDArray[Any]]) -> None:
    """Write one file atomically: a reader sees the old file or the whole new one."""
    import h5py

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            for key, array in arrays.items():
                f.create_dataset(key, data=array)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600: graders and sandboxes read these
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write(directory: Path, data: SignsData) -> None:
    """Write `data` as the course's two files in `directory` (created if missing)."""
    import numpy as np

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    classes = np.asarray(data.classes, dtype=np.int64)
    for split, (x, y) in zip(
        _SPLITS, ((data.x_train, data.y_train), (data.x_test, data.y_test)), strict=True
    ):
        _write_h5(
            directory / split.file,
            {
                split.x_key: np.asarray(x, dtype=np.uint8),
                split.y_key: np.asarray(y, dtype=np.int64),
                "list_classes": classes,
            },
        )


def generate(*, seed: int = 0, n_train: int = 1080, n_test: int = 120) -> SignsData:
    """The look-alike in memory: painted hands (see _signs_render), balanced, shuffled."""
    import numpy as np

    from deepgrade.datasets._signs_render import render

    arrays = balanced_splits(render, len(CLASSES), seed=seed, n_train=n_train, n_test=n_test)
    return SignsData(classes=np.arange(len(CLASSES), dtype=np.int64), **arrays)


def synth(out_dir: Path, *, seed: int = 0, n_train: int = 1080, n_test: int = 120) -> None:
    """Write the look-alike into `out_dir` in the real format (deterministic per seed)."""
    write(Path(out_dir), generate(seed=seed, n_train=n_train, n_test=n_test))


DATASET = Dataset(
    name=NAME,
    files=FILES,
    layout=LAYOUT,
    sizes=SIZES,
    synth=synth,
    verify=verify,
    load=load,
    recipe_version=RECIPE_VERSION,
)
