"""CIFAR-10: 32x32 colour photos in 10 classes, as the "python version" batches of the official set.

The format is the one every course notebook reads with `pickle.load(f, encoding="bytes")`: the
folder `cifar-10-batches-py` holds `data_batch_1` ... `data_batch_5` and `test_batch`, each a
pickled dict with bytes keys b"batch_label", b"labels" (list of ints 0-9), b"data" (uint8
(N, 3072): per row 1024 red, 1024 green, 1024 blue values of the 32x32 image, row-major) and
b"filenames" (list of bytes), and `batches.meta` with b"label_names" (the 10 names),
b"num_cases_per_batch" and b"num_vis" (3072). The look-alike (`synth`) is written in exactly
this format, so the notebook, the hidden checks and this loader run the same code on both.

The grader reads pickles outside the sandbox (verify, import, checks), and a pickle can run any
code when loaded: so this module unpickles with an allow-list of the few callables a CIFAR batch
needs (numpy's array reconstruction, `_codecs.encode` for bytes) and refuses anything else.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from deepgrade.datasets._registry import Dataset, Layout, balanced_splits
from deepgrade.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

NAME = "cifar10"
FOLDER = "cifar-10-batches-py"  # the folder inside the official archive
ARCHIVE = "cifar-10-python.tar.gz"
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
FILES = (*TRAIN_FILES, TEST_FILE, META_FILE)
LABEL_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
IMAGE_SHAPE = (32, 32, 3)
ROW = 3072  # 32 * 32 * 3 values per image in b"data"
SIZES: Mapping[str, int] = {"n_train": 50000, "n_test": 10000}  # the official files
# Published md5s (the archive: the CIFAR page; the files: the same values torchvision checks).
MD5: Mapping[str, str] = {
    ARCHIVE: "c58f30108f718f92721af3b95e74349a",
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    TEST_FILE: "40351d587109b95175f43aff81a1287e",
    META_FILE: "5ff9c542aee3614f3951f8cda6e48888",
}
# Bump when the look-alike's pixels change (cached copies are then rebuilt).
RECIPE_VERSION = 2

_BATCH_ARRAYS = {"batch_label": ((), "bytes"), "labels": ((10000,), "int64")}
LAYOUT: Layout = {
    **{
        name: {
            **_BATCH_ARRAYS,
            "data": ((10000, ROW), "uint8"),
            "filenames": ((10000,), "bytes"),
        }
        for name in (*TRAIN_FILES, TEST_FILE)
    },
    META_FILE: {
        "label_names": ((10,), "bytes"),
        "num_cases_per_batch": ((), "int64"),
        "num_vis": ((), "int64"),
    },
}


@dataclass(frozen=True)
class Cifar10Data:
    """Both splits: images uint8 (N, 32, 32, 3) (height, width, RGB), labels int64 (N,).

    The arrays are read-only, so one loaded copy can be shared by checks without one of them
    changing what the next one sees; scale with `x / 255.0`, which makes a new array.
    """

    x_train: NDArray[np.uint8]
    y_train: NDArray[np.int64]
    x_test: NDArray[np.uint8]
    y_test: NDArray[np.int64]
    label_names: list[str]


# --- reading pickles safely -------------------------------------------------------------------

_ALLOWED = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how protocol 2 stores Python 3 bytes
    }
)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(
                f"refused to load {module}.{name}: a CIFAR-10 batch holds only a dict of "
                "bytes, ints, lists and numpy arrays"
            )
        return super().find_class(module, name)


def _read(path: Path) -> dict[Any, Any]:
    """The dict pickled in `path`, or InputError saying why it is not a CIFAR-10 file."""
    if not path.exists():
        raise InputError(
            path, f"missing: the CIFAR-10 python version needs {', '.join(FILES)} in one folder"
        )
    if not path.is_file():
        raise InputError(path, "not a file: expected the CIFAR-10 batch of that name")
    try:
        with open(path, "rb") as f:
            content = _Unpickler(f, encoding="bytes").load()
    except Exception as exc:  # pickle raises many kinds on garbage; all mean the same here
        raise InputError(
            path,
            f"not a readable CIFAR-10 batch ({type(exc).__name__}: {exc}); expected the "
            f"pickle of that name from {ARCHIVE} (the python version)",
        ) from None
    if not isinstance(content, dict):
        raise InputError(path, f"holds a {type(content).__name__}; expected a dict (bytes keys)")
    return content


def _keys(path: Path, content: dict[Any, Any], expected: Sequence[str]) -> None:
    for key in expected:
        if key.encode() not in content:
            found = ", ".join(sorted(repr(k) for k in content)) or "nothing"
            wanted = ", ".join(repr(k.encode()) for k in expected)
            hint = " (str keys: written without bytes keys)" if key in content else ""
            raise InputError(
                path, f"missing key {key.encode()!r}{hint} (found: {found}); expected {wanted}"
            )


def _check_batch(path: Path, content: dict[Any, Any]) -> tuple[NDArray[Any], NDArray[Any]]:
    """The (data, labels) of a checked batch; InputError(path, ...) at the first problem."""
    import numpy as np

    _keys(path, content, ("batch_label", "labels", "data", "filenames"))
    data = content[b"data"]
    if not isinstance(data, np.ndarray):
        raise InputError(path, f"b'data' is a {type(data).__name__}; expected a numpy uint8 array")
    if data.ndim != 2 or data.shape[1] != ROW or data.shape[0] == 0:
        raise InputError(
            path,
            f"b'data' has shape {data.shape}; expected (N, 3072): one row of 1024 R, 1024 G, "
            "1024 B values per 32x32 image (N = 10000 in the official files)",
        )
    if data.dtype != np.uint8:
        raise InputError(path, f"b'data' has dtype {data.dtype}; expected uint8 pixels 0-255")
    raw = content[b"labels"]
    if not isinstance(raw, list | np.ndarray) or not all(
        isinstance(label, int | np.integer) and not isinstance(label, bool) for label in raw
    ):
        raise InputError(path, "b'labels' must be a list of integers 0-9")
    labels = np.asarray(raw, dtype=np.int64).reshape(-1)
    if labels.shape[0] != data.shape[0]:
        raise InputError(
            path,
            f"b'labels' has {labels.shape[0]} entries; expected {data.shape[0]}: one per row "
            "of b'data'",
        )
    bad = np.flatnonzero((labels < 0) | (labels > 9))
    if bad.size:
        raise InputError(
            path,
            f"b'labels'[{bad[0]}] is {labels[bad[0]]}; expected 0-9 (indexes into "
            f"label_names); {bad.size} label(s) out of range",
        )
    filenames = content[b"filenames"]
    if not isinstance(filenames, list) or len(filenames) != data.shape[0]:
        raise InputError(path, f"b'filenames' must be a list of {data.shape[0]} names (bytes)")
    return data, labels


def _check_meta(path: Path, content: dict[Any, Any]) -> list[str]:
    _keys(path, content, ("label_names", "num_cases_per_batch", "num_vis"))
    names = content[b"label_names"]
    expected = [name.encode() for name in LABEL_NAMES]
    if names != expected:
        raise InputError(
            path, f"b'label_names' is {names!r}; expected the 10 names as bytes: {expected!r}"
        )
    if content[b"num_vis"] != ROW:
        raise InputError(path, f"b'num_vis' is {content[b'num_vis']!r}; expected 3072")
    return list(LABEL_NAMES)


def verify(directory: Path) -> None:
    """Check that `directory` holds the seven CIFAR-10 python files in the official format.

    Sizes may differ from 5 x 10000 / 10000 (look-alikes of other sizes); everything else must
    match: bytes keys, uint8 (N, 3072) data, one integer label 0-9 per row, the label names.
    Each problem raises InputError naming the file.
    """
    directory = Path(directory)
    for name in (*TRAIN_FILES, TEST_FILE):
        _check_batch(directory / name, _read(directory / name))
    _check_meta(directory / META_FILE, _read(directory / META_FILE))


def _images(data: NDArray[Any]) -> NDArray[np.uint8]:
    """(N, 3072) channel-first rows -> (N, 32, 32, 3) images."""
    import numpy as np

    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), dtype=np.uint8)


def load(directory: Path) -> Cifar10Data:
    """Read and check the folder: train = the five batches in order, test = test_batch."""
    import numpy as np

    directory = Path(directory)
    label_names = _check_meta(directory / META_FILE, _read(directory / META_FILE))
    xs, ys = [], []
    for name in TRAIN_FILES:
        data, labels = _check_batch(directory / name, _read(directory / name))
        xs.append(data)
        ys.append(labels)
    test_data, test_labels = _check_batch(directory / TEST_FILE, _read(directory / TEST_FILE))
    arrays = {
        "x_train": _images(np.concatenate(xs)),
        "y_train": np.concatenate(ys),
        "x_test": _images(test_data),
        "y_test": test_labels,
    }
    for array in arrays.values():
        array.flags.writeable = False
    return Cifar10Data(label_names=label_names, **arrays)


def load_test(directory: Path) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Only the test split, (images, labels), read and checked as `load` reads it: for checks
    that need no training images (the folder may hold test_batch alone)."""
    path = Path(directory) / TEST_FILE
    data, labels = _check_batch(path, _read(path))
    return _images(data), labels


# --- writing ----------------------------------------------------------------------------------


def _write_pickle(path: Path, content: dict[bytes, Any]) -> None:
    """Write one pickle (protocol 2, as the official files) atomically."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(content, f, protocol=2)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600: graders and sandboxes read these
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _batch(label: str, x: NDArray[Any], y: NDArray[Any], offset: int) -> dict[bytes, Any]:
    import numpy as np

    rows = np.ascontiguousarray(np.asarray(x, dtype=np.uint8).transpose(0, 3, 1, 2)).reshape(
        -1, ROW
    )
    labels = [int(v) for v in y]
    names = [f"{LABEL_NAMES[v]}_s_{offset + i:06d}.png".encode() for i, v in enumerate(labels)]
    return {b"batch_label": label.encode(), b"labels": labels, b"data": rows, b"filenames": names}


def _split_points(n: int, parts: int) -> list[int]:
    """Boundaries splitting n rows into `parts` batches, the remainder going to the last."""
    size = n // parts
    return [i * size for i in range(parts)] + [n]


def write(directory: Path, data: Cifar10Data) -> None:
    """Write `data` as the seven official files in `directory` (created if missing).

    The training images are split evenly over data_batch_1..5, the last one taking the
    remainder; at least 5 training images are needed (one per batch).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    n = len(data.y_train)
    if n < len(TRAIN_FILES):
        raise ValueError(f"n_train must be >= {len(TRAIN_FILES)} (one image per batch file)")
    bounds = _split_points(n, len(TRAIN_FILES))
    for i, name in enumerate(TRAIN_FILES):
        lo, hi = bounds[i], bounds[i + 1]
        batch = _batch(f"training batch {i + 1} of 5", data.x_train[lo:hi], data.y_train[lo:hi], lo)
        _write_pickle(directory / name, batch)
    _write_pickle(
        directory / TEST_FILE, _batch("testing batch 1 of 1", data.x_test, data.y_test, 0)
    )
    meta = {
        b"num_cases_per_batch": bounds[1] - bounds[0],
        b"label_names": [name.encode() for name in LABEL_NAMES],
        b"num_vis": ROW,
    }
    _write_pickle(directory / META_FILE, meta)


def generate(*, seed: int = 0, n_train: int = 50000, n_test: int = 10000) -> Cifar10Data:
    """The look-alike in memory: drawn objects (see _cifar_render), balanced, shuffled."""
    from deepgrade.datasets._cifar_render import render

    arrays = balanced_splits(
        render, len(LABEL_NAMES), seed=seed, n_train=n_train, n_test=n_test, least_train=5
    )
    return Cifar10Data(label_names=list(LABEL_NAMES), **arrays)


def synth(out_dir: Path, *, seed: int = 0, n_train: int = 50000, n_test: int = 10000) -> None:
    """Write the look-alike into `out_dir` in the official format (deterministic per seed)."""
    write(Path(out_dir), generate(seed=seed, n_train=n_train, n_test=n_test))


# --- the official archive ---------------------------------------------------------------------


def unpack(archive: Path, into: Path) -> Path:
    """Extract the seven files of `archive` (cifar-10-python.tar.gz) into `into`; their folder.

    Only the data set's files are extracted, as regular files under their plain names (no
    links, devices, absolute paths or `..`), and they must all sit in one folder of the archive.
    """
    archive = Path(archive)
    try:
        tar = tarfile.open(archive, "r:*")  # noqa: SIM115 (closed by the `with` below)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InputError(
            archive, f"not a readable tar archive ({exc}); expected {ARCHIVE} from {URL}"
        ) from None
    with tar:
        found: dict[str, tarfile.TarInfo] = {}
        try:
            for member in tar.getmembers():
                path = PurePosixPath(member.name)
                if path.name in FILES and member.isfile():
                    if path.name in found:
                        raise InputError(archive, f"holds {path.name} twice; expected one {FOLDER}")
                    found[path.name] = member
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise InputError(
                archive, f"damaged archive ({exc}); download {ARCHIVE} again"
            ) from None
        missing = [name for name in FILES if name not in found]
        if missing:
            raise InputError(
                archive,
                f"has no {', '.join(missing)}; expected {FOLDER}/ with {', '.join(FILES)} "
                "(the python version of CIFAR-10)",
            )
        parents = {str(PurePosixPath(m.name).parent) for m in found.values()}
        if len(parents) != 1:
            raise InputError(archive, f"its CIFAR-10 files are spread over {sorted(parents)}")
        parent = PurePosixPath(parents.pop())
        if parent.is_absolute() or any(part in ("..", "") for part in parent.parts):
            raise InputError(archive, f"its CIFAR-10 folder {str(parent)!r} is not a plain path")
        folder = Path(into) / parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for name, member in found.items():
                # Written by hand, not extractall(filter="data"): Debian 12's Python 3.11.2
                # has no filter argument. Members are regular files picked by name above.
                source = tar.extractfile(member)
                if source is None:
                    raise InputError(archive, f"{name} is not a regular file")
                with source, (folder / name).open("wb") as target:
                    shutil.copyfileobj(source, target)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise InputError(
                archive, f"could not extract ({exc}); download {ARCHIVE} again"
            ) from None
    return folder


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
