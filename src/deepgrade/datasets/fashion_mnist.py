"""Fashion-MNIST: 28x28 greyscale Zalando article images in 10 classes, as the four IDX gzip files.

The format is MNIST's: `train-images-idx3-ubyte.gz` (60000 images), `train-labels-idx1-ubyte.gz`,
`t10k-images-idx3-ubyte.gz` (10000), `t10k-labels-idx1-ubyte.gz`; each gzip holds a big-endian
header (magic 2051 and the dimensions N, 28, 28 for images; magic 2049 and N for labels) and
then the uint8 values. The look-alike (`synth`) is written in exactly this format, so the
notebook, the hidden checks and this loader run the same code on both.

`verify` checks the format only: look-alikes (and other sizes) pass. The real files must also
have the md5 the Fashion-MNIST project publishes (`MD5`); that is checked when they are imported
(deepgrade.datasets.import_dataset), where synthetic files would naturally differ.
"""

from __future__ import annotations

import gzip
import os
import tempfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepgrade.datasets._registry import Dataset, Layout, balanced_splits
from deepgrade.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

NAME = "fashion_mnist"
URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
IMAGE_SHAPE = (28, 28)
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
SIZES: Mapping[str, int] = {"n_train": 60000, "n_test": 10000}  # the official files
# Published md5s (the Fashion-MNIST README; the same values torchvision checks).
MD5: Mapping[str, str] = {
    TRAIN_IMAGES: "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    TRAIN_LABELS: "25c81989df183df01b3e8a0aad5dffbe",
    TEST_IMAGES: "bef4ecab320f06d8554ea6380940ec79",
    TEST_LABELS: "bb300cfdad3c16e7a12a480ee83cd310",
}
# Bump when the look-alike's pixels change (cached copies are then rebuilt).
RECIPE_VERSION = 3

LAYOUT: Layout = {
    TRAIN_IMAGES: {"": ((60000, *IMAGE_SHAPE), "uint8")},
    TRAIN_LABELS: {"": ((60000,), "uint8")},
    TEST_IMAGES: {"": ((10000, *IMAGE_SHAPE), "uint8")},
    TEST_LABELS: {"": ((10000,), "uint8")},
}
_SPLITS = (
    ("train", TRAIN_IMAGES, TRAIN_LABELS, "n_train"),
    ("test", TEST_IMAGES, TEST_LABELS, "n_test"),
)


@dataclass(frozen=True)
class FashionData:
    """Both splits: images uint8 (N, 28, 28), labels int64 (N,); class names in CLASS_NAMES.

    The arrays are read-only, so one loaded copy can be shared by checks without one of them
    changing what the next one sees; scale with `x / 255.0`, which makes a new array.
    """

    x_train: NDArray[np.uint8]
    y_train: NDArray[np.int64]
    x_test: NDArray[np.uint8]
    y_test: NDArray[np.int64]


def _read_idx(path: Path, magic: int) -> NDArray[np.uint8]:
    """The uint8 array of one IDX gzip file, or InputError saying what is wrong with it."""
    import numpy as np

    if not path.exists():
        raise InputError(path, f"missing: Fashion-MNIST needs {', '.join(FILES)} in one folder")
    if not path.is_file():
        raise InputError(path, "not a file: expected the Fashion-MNIST file of that name")
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(
            path,
            f"not a readable gzip file ({exc}); expected {path.name} as published (gzipped IDX)",
        ) from None
    ndim = 3 if magic == IMAGES_MAGIC else 1
    header = 4 * (1 + ndim)
    if len(raw) < header:
        raise InputError(path, f"only {len(raw)} bytes after gunzip; an IDX header needs {header}")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        what = "images (N, 28, 28)" if magic == IMAGES_MAGIC else "labels (N,)"
        raise InputError(
            path, f"magic number {found}; expected {magic}: IDX uint8 {what}, big-endian header"
        )
    dims = tuple(int.from_bytes(raw[4 * i : 4 * i + 4], "big") for i in range(1, ndim + 1))
    if ndim == 3 and dims[1:] != IMAGE_SHAPE:
        raise InputError(path, f"images are {dims[1]}x{dims[2]}; expected 28x28")
    if dims[0] == 0:
        raise InputError(path, "holds no items")
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise InputError(
            path,
            f"holds {len(raw) - header} bytes of data; the header's dimensions {dims} need "
            f"{expected}",
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _split(
    directory: Path, images_file: str, labels_file: str
) -> tuple[NDArray[Any], NDArray[Any]]:
    import numpy as np

    x = _read_idx(directory / images_file, IMAGES_MAGIC)
    y = _read_idx(directory / labels_file, LABELS_MAGIC)
    if y.shape[0] != x.shape[0]:
        raise InputError(
            directory / labels_file,
            f"holds {y.shape[0]} labels; expected {x.shape[0]}, one per image of {images_file}",
        )
    bad = np.flatnonzero(y > 9)
    if bad.size:
        raise InputError(
            directory / labels_file,
            f"label {bad[0]} is {y[bad[0]]}; expected 0-9; {bad.size} label(s) out of range",
        )
    return x, y


def verify(directory: Path) -> None:
    """Check that `directory` holds the four files in the Fashion-MNIST IDX format.

    Sizes may differ from 60000/10000 (look-alikes of other sizes); magic numbers, 28x28 images,
    one label 0-9 per image must match. Each problem raises InputError naming the file.
    """
    directory = Path(directory)
    for _, images_file, labels_file, _ in _SPLITS:
        _split(directory, images_file, labels_file)


def load(directory: Path) -> FashionData:
    """Read and check the four files: images uint8 (N, 28, 28), labels as int64."""
    import numpy as np

    directory = Path(directory)
    arrays: dict[str, NDArray[Any]] = {}
    for prefix, images_file, labels_file, _ in _SPLITS:
        x, y = _split(directory, images_file, labels_file)
        arrays[f"x_{prefix}"] = np.array(x, dtype=np.uint8)
        arrays[f"y_{prefix}"] = y.astype(np.int64)
    for array in arrays.values():
        array.flags.writeable = False
    return FashionData(**arrays)


def _write_idx(path: Path, array: NDArray[Any], magic: int) -> None:
    """One gzipped IDX file, written atomically; mtime 0 so the bytes depend on the data only."""
    import numpy as np

    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with (
            os.fdopen(fd, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as f,
        ):
            f.write(header)
            f.write(np.ascontiguousarray(array, dtype=np.uint8).tobytes())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600: graders and sandboxes read these
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write(directory: Path, data: FashionData) -> None:
    """Write `data` as the four official files in `directory` (created if missing)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, images_file, labels_file, _ in _SPLITS:
        _write_idx(directory / images_file, getattr(data, f"x_{prefix}"), IMAGES_MAGIC)
        _write_idx(directory / labels_file, getattr(data, f"y_{prefix}"), LABELS_MAGIC)


def generate(*, seed: int = 0, n_train: int = 60000, n_test: int = 10000) -> FashionData:
    """The look-alike in memory: garment silhouettes (see _fashion_render), balanced, shuffled."""
    from deepgrade.datasets._fashion_render import render

    arrays = balanced_splits(render, len(CLASS_NAMES), seed=seed, n_train=n_train, n_test=n_test)
    return FashionData(**arrays)


def synth(out_dir: Path, *, seed: int = 0, n_train: int = 60000, n_test: int = 10000) -> None:
    """Write the look-alike into `out_dir` in the official format (deterministic per seed)."""
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
