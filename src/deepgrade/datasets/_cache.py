"""The data cache: `cache/<name>/synth/`, `cache/<name>/synth-<sizes>/` and `cache/<name>/real/`.

Entries are filled atomically. `synth-<sizes>` (e.g. `synth-n_test1000-n_train5000`) holds a
look-alike at a profile's smaller sizes (`data_sizes` in a spec), beside the default one.

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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType

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


def md5(path: Path) -> str:
    """The md5 of a file: what CIFAR-10 and Fashion-MNIST publish for their files."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_md5(path: Path, expected: str, official: str) -> None:
    """InputError(path, ...) unless `path` has the md5 published for the official `official`."""
    found = md5(path)
    if found != expected:
        raise InputError(
            path,
            f"md5 {found} differs from the published {expected} of {official}: not the official "
            "file (another version, or damaged in transfer); download it again",
        )


def write_sums(directory: Path, files: Sequence[str]) -> None:
    lines = "".join(f"{sha256(directory / name)}  {name}\n" for name in files)
    (directory / SUMS).write_text(lines, encoding="utf-8")


def read_sums(directory: Path) -> dict[str, str]:
    """name -> sha256 as the folder's SHA256SUMS records them; OSError when it has none."""
    recorded = {}
    for line in (directory / SUMS).read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        recorded[name] = digest
    return recorded


def changed_files(directory: Path, files: Sequence[str]) -> list[str]:
    """Files missing, unlisted in SHA256SUMS, or whose sha256 differs from it."""
    try:
        recorded = read_sums(directory)
    except OSError:
        return list(files)
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


def entry_name(dataset: Dataset, sizes: Mapping[str, int] | None = None) -> str:
    """`synth` for the default sizes, else `synth-<sizes>`: `synth-n_test1000-n_train5000`."""
    merged = {**dataset.sizes, **(sizes or {})}
    if merged == dict(dataset.sizes):
        return "synth"
    return "synth-" + "-".join(f"{key}{merged[key]}" for key in sorted(merged))


def _recipe(dataset: Dataset, sizes: Mapping[str, int] | None = None) -> dict[str, object]:
    return {
        "dataset": dataset.name,
        "recipe_version": dataset.recipe_version,
        "seed": 0,
        "sizes": {**dataset.sizes, **(sizes or {})},
    }


def _synth_is_current(dataset: Dataset, entry: Path, sizes: Mapping[str, int] | None) -> bool:
    try:
        recorded = json.loads((entry / RECIPE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return recorded == _recipe(dataset, sizes) and not changed_files(entry, dataset.files)


def ensure_synth(dataset: Dataset, cache: Path, sizes: Mapping[str, int] | None = None) -> Path:
    """The look-alike at `sizes` (default: the real files' sizes), made once (atomically) and
    then reused: `cache/<name>/synth/`, or `cache/<name>/synth-<sizes>/` for other sizes.

    `sizes` must already be checked (deepgrade.datasets.ensure does): known keys, ints >= 1.
    """
    folder = Path(cache) / dataset.name
    name = entry_name(dataset, sizes)
    entry = folder / name
    if _synth_is_current(dataset, entry, sizes):
        return entry
    with _locked(folder):
        if _synth_is_current(dataset, entry, sizes):  # built by another process while we waited
            return entry
        recipe = _recipe(dataset, sizes)
        merged = {**dataset.sizes, **(sizes or {})}

        def fill(tmp: Path) -> None:
            dataset.synth(tmp, seed=0, **merged)
            write_sums(tmp, dataset.files)
            (tmp / RECIPE).write_text(json.dumps(recipe) + "\n", encoding="utf-8")

        return _build(folder, name, fill)


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


_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_NO_MD5: Mapping[str, str] = MappingProxyType({})


def _check_files(dataset: Dataset, origin: Path, md5s: Mapping[str, str]) -> None:
    dataset.verify(origin)
    for name in dataset.files:
        if name in md5s:
            check_md5(origin / name, md5s[name], name)


def import_real(
    dataset: Dataset,
    source: Path,
    cache: Path,
    *,
    md5s: Mapping[str, str] = _NO_MD5,
    archive: str | None = None,
    unpack: Callable[[Path, Path], Path] | None = None,
) -> Path:
    """Verify the real files at `source`, copy them into the cache; return `cache/<name>/real`.

    `source` is their folder, one of the files, or (where the data set has an `unpack`) the
    official archive, whose md5 is checked (`md5s[archive]`) before anything is extracted.
    Every file must pass `dataset.verify` and match its md5 in `md5s` where one is given.
    Nothing in the cache changes unless all that passes; the copy is verified again (the source
    could change while being copied) before it replaces an older import.
    """
    source = Path(source)
    is_archive = False
    if source.is_file():
        if source.name in dataset.files:
            origin = source.parent
        elif unpack is not None and source.name.endswith(_ARCHIVE_SUFFIXES):
            is_archive, origin = True, source
        else:
            also = f", the archive {archive}" if unpack is not None else ""
            raise InputError(
                source,
                f"not a file of the {dataset.name} data set: expected "
                f"{' and '.join(dataset.files)}{also}, or the folder holding them",
            )
    elif source.is_dir():
        origin = source
    else:
        raise InputError(source, "no such file or folder")
    if not is_archive:
        _check_files(dataset, origin, md5s)
    folder = Path(cache) / dataset.name

    def fill(tmp: Path) -> None:
        for name in dataset.files:
            shutil.copyfile(origin / name, tmp / name)
        try:
            _check_files(dataset, tmp, md5s)
        except InputError as exc:
            raise InputError(
                origin / exc.path.name, f"changed while being copied: {exc.problem}"
            ) from None
        write_sums(tmp, dataset.files)

    with _locked(folder):
        if not is_archive:
            return _build(folder, "real", fill)
        assert unpack is not None
        if archive is not None and archive in md5s:
            check_md5(source, md5s[archive], archive)
        scratch = Path(tempfile.mkdtemp(dir=folder, prefix=f"{_TMP_PREFIX}unpack-"))
        try:
            origin = unpack(source, scratch)
            try:
                _check_files(dataset, origin, md5s)
            except InputError as exc:
                raise InputError(source, f"{exc.path.name} in the archive: {exc.problem}") from None
            return _build(folder, "real", fill)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
