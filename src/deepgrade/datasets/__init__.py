"""Data sets: real files imported into the cache, synthetic look-alikes, checks and loaders.

Each data set (today SIGNS; CIFAR-10 batches and Fashion-MNIST IDX files are meant to follow)
is one `Dataset` value in `DATASETS`: its file names, a `synth` that writes a look-alike in the
real files' format, a `verify` that refuses files in any other format, and a loader. The cache
(deepgrade.project.cache_dir()) holds `<name>/real/` (imported by the instructor, never
downloaded at grading time) and `<name>/synth/` (made on first use). Importing this package
imports no numpy or h5py: the CLI stays fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from deepgrade.datasets import _cache, signs
from deepgrade.datasets._manifest import MANIFEST, ManifestEntry, read_manifest
from deepgrade.datasets._registry import Dataset, Layout
from deepgrade.errors import DeepgradeError, InputError

__all__ = [
    "DATASETS",
    "FILES",
    "MANIFEST",
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

DATASETS: Mapping[str, Dataset] = MappingProxyType({d.name: d for d in (signs.DATASET,)})
FILES: dict[str, tuple[str, ...]] = {name: d.files for name, d in DATASETS.items()}
VARIANTS = ("synth", "real")  # as in exercise specs' `data = ...`


def get(name: str) -> Dataset:
    """The registered data set `name`, or DeepgradeError listing the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise DeepgradeError(
            f"unknown data set {name!r} (known: {', '.join(sorted(DATASETS))})"
        ) from None


def synth(name: str, out_dir: Path, *, seed: int = 0, **sizes: int) -> Path:
    """Write the look-alike of `name` into `out_dir` (created) in the real format; return it.

    `sizes` are the data set's own keywords (SIGNS: n_train, n_test); the defaults are the
    real files' sizes. The same seed and sizes give the same arrays.
    """
    dataset = get(name)
    unknown = sorted(set(sizes) - set(dataset.sizes))
    if unknown:
        raise DeepgradeError(
            f"unknown size {', '.join(unknown)} for {name} (known: {', '.join(dataset.sizes)})"
        )
    for key, value, least in (("seed", seed, 0), *((k, v, 1) for k, v in sizes.items())):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise DeepgradeError(f"{key} must be an integer >= {least}, got {value!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset.synth(out_dir, seed=seed, **{**dataset.sizes, **sizes})
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


def import_dataset(name: str, source: Path, cache: Path) -> Path:
    """Verify the real files at `source` (their folder or one of them) and copy them into
    `cache/<name>/real/` with their sha256 in SHA256SUMS; return that folder.

    Refused files (InputError naming the file) leave an earlier import untouched.
    """
    return _cache.import_real(get(name), Path(source), Path(cache))


def ensure(name: str, variant: str, cache: Path) -> Path:
    """The cached folder of `name`'s files for `variant` ("synth" or "real").

    "synth": made (seed 0, the real files' sizes) on first use, atomically, so parallel graders
    never see half-written files. "real": must have been imported; else DeepgradeError with the
    command to run.
    """
    dataset = get(name)
    if variant == "synth":
        return _cache.ensure_synth(dataset, Path(cache))
    if variant == "real":
        return _cache.ensure_real(dataset, Path(cache))
    raise DeepgradeError(f"unknown data variant {variant!r} (known: {', '.join(VARIANTS)})")
