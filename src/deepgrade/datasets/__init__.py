"""Data sets: real files imported into the cache, synthetic look-alikes, checks and loaders.

Each data set (SIGNS HDF5 files, CIFAR-10 python batches, Fashion-MNIST IDX files) is one
`Dataset` value in `DATASETS`: its file names, a `synth` that writes a look-alike in the real
files' format, a `verify` that refuses files in any other format, and a loader. The cache
(deepgrade.project.cache_dir()) holds `<name>/real/` (imported by the instructor, never
downloaded at grading time), `<name>/synth/` (made on first use) and `<name>/synth-<sizes>/`
(smaller look-alikes a profile asks for). Importing this package imports no numpy or h5py: the
CLI stays fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from deepgrade.datasets import _cache, cifar10, fashion_mnist, signs
from deepgrade.datasets._manifest import MANIFEST, ManifestEntry, read_manifest
from deepgrade.datasets._registry import Dataset, Layout
from deepgrade.errors import DeepgradeError, InputError

__all__ = [
    "DATASETS",
    "FILES",
    "MANIFEST",
    "PUBLISHED_MD5",
    "VARIANTS",
    "Dataset",
    "Layout",
    "ManifestEntry",
    "ensure",
    "get",
    "import_dataset",
    "read_manifest",
    "synth",
    "verify",
]

DATASETS: Mapping[str, Dataset] = MappingProxyType(
    {d.name: d for d in (signs.DATASET, cifar10.DATASET, fashion_mnist.DATASET)}
)
FILES: dict[str, tuple[str, ...]] = {name: d.files for name, d in DATASETS.items()}
VARIANTS = ("synth", "real")  # as in exercise specs' `data = ...`
# md5 published for the real files (and archives), checked on import; SIGNS publishes none.
PUBLISHED_MD5: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {"signs": {}, "cifar10": cifar10.MD5, "fashion_mnist": fashion_mnist.MD5}
)
# Data sets whose official archive can be imported as it is: (archive name, its unpacker).
_ARCHIVES = {"cifar10": (cifar10.ARCHIVE, cifar10.unpack)}


def get(name: str) -> Dataset:
    """The registered data set `name`, or DeepgradeError listing the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise DeepgradeError(
            f"unknown data set {name!r} (known: {', '.join(sorted(DATASETS))})"
        ) from None


def _check_sizes(dataset: Dataset, sizes: Mapping[str, int], seed: int = 0) -> None:
    unknown = sorted(set(sizes) - set(dataset.sizes))
    if unknown:
        raise DeepgradeError(
            f"unknown size {', '.join(unknown)} for {dataset.name} "
            f"(known: {', '.join(dataset.sizes)})"
        )
    for key, value, least in (("seed", seed, 0), *((k, v, 1) for k, v in sizes.items())):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise DeepgradeError(f"{key} must be an integer >= {least}, got {value!r}")


def synth(name: str, out_dir: Path, *, seed: int = 0, **sizes: int) -> Path:
    """Write the look-alike of `name` into `out_dir` (created) in the real format; return it.

    `sizes` are the data set's own keywords (all three: n_train, n_test); the defaults are the
    real files' sizes. The same seed and sizes give the same arrays.
    """
    dataset = get(name)
    _check_sizes(dataset, sizes, seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        dataset.synth(out_dir, seed=seed, **{**dataset.sizes, **sizes})
    except ValueError as exc:  # a size the format cannot hold (CIFAR-10: n_train < 5)
        raise DeepgradeError(f"{name}: {exc}") from None
    return out_dir


def verify(name: str, directory: Path) -> None:
    """Raise InputError(file, problem) unless `directory` holds `name`'s files in its format."""
    dataset = get(name)
    directory = Path(directory)
    if not directory.is_dir():
        what = "not a folder" if directory.exists() else "no such folder"
        raise InputError(
            directory, f"{what}: expected the folder holding {' and '.join(dataset.files)}"
        )
    dataset.verify(directory)


def import_dataset(
    name: str, source: Path, cache: Path, *, md5s: Mapping[str, str] | None = None
) -> Path:
    """Verify the real files at `source` (their folder, one of them, or for CIFAR-10 the
    official cifar-10-python.tar.gz) and copy them into `cache/<name>/real/` with their sha256
    in SHA256SUMS; return that folder.

    Files (and the archive) must have the md5 published for them (`md5s`, default
    PUBLISHED_MD5[name]; tests pass their own). Refused files (InputError naming the file)
    leave an earlier import untouched.
    """
    dataset = get(name)
    archive, unpack = _ARCHIVES.get(name, (None, None))
    return _cache.import_real(
        dataset,
        Path(source),
        Path(cache),
        md5s=PUBLISHED_MD5[name] if md5s is None else md5s,
        archive=archive,
        unpack=unpack,
    )


def ensure(name: str, variant: str, cache: Path, sizes: Mapping[str, int] | None = None) -> Path:
    """The cached folder of `name`'s files for `variant` ("synth" or "real").

    "synth": made (seed 0) on first use, atomically, so parallel graders never see half-written
    files; at the real files' sizes in `<name>/synth/`, or at `sizes` (a profile's
    `data_sizes`, e.g. {"n_train": 5000, "n_test": 1000}; missing keys keep the default) in
    `<name>/synth-<sizes>/`. "real": must have been imported (sizes are refused: the real
    files have theirs); else DeepgradeError with the command to run.
    """
    dataset = get(name)
    if variant not in VARIANTS:
        raise DeepgradeError(f"unknown data variant {variant!r} (known: {', '.join(VARIANTS)})")
    if variant == "real":
        if sizes:
            raise DeepgradeError(
                f"data sizes {dict(sizes)} given for the real {name} data set: sizes choose a "
                'smaller synthetic look-alike (data = "synth"); the real files keep theirs'
            )
        try:
            return _cache.ensure_real(dataset, Path(cache))
        except DeepgradeError as exc:
            if name not in _ARCHIVES:
                raise
            archive = _ARCHIVES[name][0]
            raise DeepgradeError(f"{exc} (PATH may also be the official {archive})") from None
    if sizes:
        _check_sizes(dataset, sizes)
    try:
        return _cache.ensure_synth(dataset, Path(cache), dict(sizes) if sizes else None)
    except ValueError as exc:  # a size the format cannot hold (CIFAR-10: n_train < 5)
        raise DeepgradeError(f"{name}: {exc}") from None
