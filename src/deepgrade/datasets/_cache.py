"""The data cache: `cache/<name>/synth/` and `cache/<name>/real/`, filled atomically.

Several graders (local workers, Ray tasks on one node) may ask for the same entry at once, and
a grader may be killed while writing one. So an entry is built in a temporary folder beside
it and renamed into place when complete: readers see no folder or a whole one, never half a
file. Builders take an flock on `cache/<name>/.lock` so two of them do not build the same thing
twice; leftovers of a killed builder are removed by the next one under that lock. Every entry
records the sha256 of its files in `SHA256SUMS` (the `sha256sum -c` format), which is how a
later run notices a file changed since it was imported and how nodes compare copies.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from deepgrade.datasets._registry import Dataset
from deepgrade.errors import DeepgradeError, InputError

SUMS = "SHA256SUMS"
RECIPE = "RECIPE.json"  # in synth entries: which generator, seed and sizes made the files
_TMP_PREFIX = ".tmp-"
_OLD_PREFIX = ".old-"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_sums(directory: Path, files: Sequence[str]) -> None:
    lines = "".join(f"{sha256(directory / name)}  {name}\n" for name in files)
    (directory / SUMS).write_text(lines, encoding="utf-8")


def changed_files(directory: Path, files: Sequence[str]) -> list[str]:
    """Files missing, unlisted in SHA256SUMS, or whose sha256 differs from it."""
    try:
        text = (directory / SUMS).read_text(encoding="utf-8")
    except OSError:
        return list(files)
    recorded = {}
    for line in text.splitlines():
        digest, _, name = line.partition("  ")
        recorded[name] = digest
    return [
        name
        for name in files
        if not (directory / name).is_file() or recorded.get(name) != sha256(directory / name)
    ]


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (created if missing) and tidy a killed builder's mess."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            for leftover in folder.iterdir():
                if leftover.name.startswith((_TMP_PREFIX, _OLD_PREFIX)):
                    shutil.rmtree(leftover, ignore_errors=True)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(folder: Path, entry: str, fill: Callable[[Path], None]) -> Path:
    """Fill a temporary folder, then rename it to `folder/entry` (replacing an old entry).

    Call under `_locked(folder)`. If `fill` raises, the existing entry is left as it was.
    """
    final = folder / entry
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=f"{_TMP_PREFIX}{entry}-"))
    try:
        fill(tmp)
        tmp.chmod(0o755)  # mkdtemp makes 0700; the sandbox may read as another uid
        for path in tmp.iterdir():
            path.chmod(0o644)
        if final.exists():
            # No atomic exchange of two folders in the stdlib: move the old one aside first.
            # Readers only see a gap on a re-import, never a mixture of old and new files.
            old = folder / f"{_OLD_PREFIX}{entry}-{uuid.uuid4().hex}"
            os.rename(final, old)
            try:
                os.rename(tmp, final)
            except BaseException:
                os.rename(old, final)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _recipe(dataset: Dataset) -> dict[str, object]:
    return {
        "dataset": dataset.name,
        "recipe_version": dataset.recipe_version,
        "seed": 0,
        "sizes": dict(dataset.sizes),
    }


def _synth_is_current(dataset: Dataset, entry: Path) -> bool:
    try:
        recorded = json.loads((entry / RECIPE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return recorded == _recipe(dataset) and not changed_files(entry, dataset.files)


def ensure_synth(dataset: Dataset, cache: Path) -> Path:
    """`cache/<name>/synth/`: the default look-alike, made once (atomically) and then reused."""
    folder = Path(cache) / dataset.name
    entry = folder / "synth"
    if _synth_is_current(dataset, entry):
        return entry
    with _locked(folder):
        if _synth_is_current(dataset, entry):  # another process built it while we waited
            return entry

        def fill(tmp: Path) -> None:
            dataset.synth(tmp, seed=0, **dataset.sizes)
            write_sums(tmp, dataset.files)
            (tmp / RECIPE).write_text(json.dumps(_recipe(dataset)) + "\n", encoding="utf-8")

        return _build(folder, "synth", fill)


def _import_hint(dataset: Dataset, cache: Path) -> str:
    from deepgrade.project import cache_dir

    prefix = "" if Path(cache) == cache_dir() else f"DEEPGRADE_CACHE={cache} "
    return f"`{prefix}deepgrade datasets import {dataset.name} PATH`"


def ensure_real(dataset: Dataset, cache: Path) -> Path:
    """`cache/<name>/real/` if imported and unchanged since, else a DeepgradeError saying how."""
    entry = Path(cache) / dataset.name / "real"
    files = ", ".join(dataset.files)
    if not (entry / SUMS).is_file():
        raise DeepgradeError(
            f"the real {dataset.name} data set is not in the cache ({entry}); get {files} "
            f"from the course and run {_import_hint(dataset, cache)} (PATH: the folder "
            "holding them)"
        )
    changed = changed_files(entry, dataset.files)
    if changed:
        raise DeepgradeError(
            f"{entry}: {', '.join(changed)} missing or changed since import (sha256 differs "
            f"from {SUMS}); import the files again with {_import_hint(dataset, cache)}"
        )
    return entry


def import_real(dataset: Dataset, source: Path, cache: Path) -> Path:
    """Verify the real files at `source` (a folder, or one of the files), copy them into the cache.

    Nothing in the cache changes unless the files pass `dataset.verify`; the copy is verified
    again (the source could change while being copied) before it replaces an older import.
    """
    source = Path(source)
    if source.is_file():
        if source.name not in dataset.files:
            raise InputError(
                source,
                f"not a file of the {dataset.name} data set: expected "
                f"{' and '.join(dataset.files)}, or the folder holding them",
            )
        origin = source.parent
    elif source.is_dir():
        origin = source
    else:
        raise InputError(source, "no such file or folder")
    dataset.verify(origin)
    folder = Path(cache) / dataset.name

    def fill(tmp: Path) -> None:
        for name in dataset.files:
            shutil.copyfile(origin / name, tmp / name)
        try:
            dataset.verify(tmp)
        except InputError as exc:
            raise InputError(
                origin / exc.path.name, f"changed while being copied: {exc.problem}"
            ) from None
        write_sums(tmp, dataset.files)

    with _locked(folder):
        return _build(folder, "real", fill)
