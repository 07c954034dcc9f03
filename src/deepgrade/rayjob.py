"""What a batch ships to the nodes of a Ray cluster, and how a node unpacks it.

Nothing assumes a shared filesystem. The driver packs, once per batch, everything a node needs
to grade one of its submissions: the exercise's folder (hidden checks, spec, grade-time cells),
the grader's copy of the released notebook, the resolved profile (`GradingProfile.to_json`,
no host path) and the name, sha256 and size of every data and model file the profile mounts.
The files themselves travel only where a node's own cache lacks them: a node first looks in its
deepgrade cache for an entry whose SHA256SUMS lists the same name and sha256 (data imported or
made on that node); otherwise the driver has put each file in Ray's object store once, and the
node fetches it once (a lock per file), checks its sha256 and keeps it under
`<node cache>/cluster/files/<sha256>/<name>`.

This module does not import Ray: packing and unpacking are plain files and bytes, tested as
such; `raynode` and `raydriver` move them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from deepgrade.datasets._cache import SUMS, read_sums, sha256
from deepgrade.errors import DeepgradeError
from deepgrade.exercise import ExerciseSpec, load_exercise
from deepgrade.grade import GradeSettings
from deepgrade.profiles import GradingProfile

# What is never shipped from an exercise's folder: caches a developer's run left there.
SKIPPED_PARTS = ("__pycache__", ".pytest_cache")
MAX_EXERCISE_BYTES = 64 * 1024 * 1024  # the checks and their small inputs, not data sets


class FileMismatch(DeepgradeError):
    """A file a node fetched is not the one the driver shipped (its sha256 differs)."""


@dataclass(frozen=True)
class ShippedFile:
    """One data or model file a profile mounts, named as the sandbox sees it (/data/<name>)."""

    name: str
    sha256: str
    size: int
    model: bool = False  # a trained model (profile.model_files), else a data set's file


@dataclass(frozen=True)
class JobBundle:
    """Everything but the submission and the file contents: the same for every task."""

    exercise: str
    exercise_files: Mapping[str, bytes]  # path inside autograder/<exercise>/ -> content
    notebook: str  # the exercise's notebook name
    release_notebook: bytes  # the grader's copy (locked cells)
    profile: Mapping[str, Any]  # GradingProfile.to_json()
    files: tuple[ShippedFile, ...]
    grader_version: str
    unsafe: bool = False
    allow_unlimited: bool = False  # --allow-unlimited: each node decides and marks its results
    cell_timeout_s: int | None = None
    digest: str = field(default="", compare=False)  # sha256 of all the above: a folder name

    def with_digest(self) -> JobBundle:
        content = hashlib.sha256()
        for path in sorted(self.exercise_files):
            content.update(f"{path}\0{len(self.exercise_files[path])}\0".encode())
            content.update(self.exercise_files[path])
        content.update(self.release_notebook)
        meta = [self.exercise, self.notebook, self.profile, self.grader_version, self.unsafe]
        meta += [self.allow_unlimited, self.cell_timeout_s, [f.__dict__ for f in self.files]]
        content.update(json.dumps(meta, sort_keys=True, default=str).encode())
        return replace(self, digest=content.hexdigest())


def _exercise_files(directory: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    total = 0
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if not path.is_file() or path.is_symlink() or set(relative.parts) & set(SKIPPED_PARTS):
            continue
        data = path.read_bytes()
        total += len(data)
        if total > MAX_EXERCISE_BYTES:
            raise DeepgradeError(
                f"{directory}: more than {MAX_EXERCISE_BYTES >> 20} MiB of files; data sets "
                "belong in the cache (spec.toml `datasets`), not in the exercise's folder"
            )
        files[relative.as_posix()] = data
    return files


def pack(
    settings: GradeSettings, *, allow_unlimited: bool = False
) -> tuple[JobBundle, dict[str, Path]]:
    """The batch's bundle, and the host path of each shipped file by its sha256 (what the
    driver puts in the object store)."""
    profile = settings.profile
    shipped: list[ShippedFile] = []
    paths: dict[str, Path] = {}
    for path, model in [(p, False) for p in profile.data_files] + [
        (p, True) for p in profile.model_files
    ]:
        digest = sha256(path)
        shipped.append(ShippedFile(path.name, digest, path.stat().st_size, model))
        paths[digest] = path
    bundle = JobBundle(
        exercise=settings.spec.name,
        exercise_files=_exercise_files(settings.spec.directory),
        notebook=settings.spec.notebook,
        release_notebook=settings.release_notebook.read_bytes(),
        profile=profile.to_json(),
        files=tuple(shipped),
        grader_version=settings.grader_version,
        unsafe=settings.unsafe,
        allow_unlimited=allow_unlimited,
        cell_timeout_s=settings.cell_timeout_s,
    )
    return bundle.with_digest(), paths


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (made if missing): one task per node fills a place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".part-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def cached_copies(cache: Path) -> dict[tuple[str, str], Path]:
    """(name, sha256) -> path of every file the cache's entries list in their SHA256SUMS
    (datasets' `<name>/<variant>/`, models' `models/<name>/<profile>/`), without hashing."""
    found: dict[tuple[str, str], Path] = {}
    for sums in sorted(cache.glob(f"*/*/{SUMS}")) + sorted(cache.glob(f"*/*/*/{SUMS}")):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            for name, digest in read_sums(sums.parent).items():
                path = sums.parent / name
                if name and "/" not in name and path.is_file():
                    found.setdefault((name, digest), path)
    return found


@dataclass(frozen=True)
class NodeFiles:
    """Where one node finds the files a bundle names: its own deepgrade cache first, then
    what bundles brought it, under `<cache>/cluster/`."""

    cache: Path

    @property
    def root(self) -> Path:
        return self.cache / "cluster"

    def file(
        self,
        shipped: ShippedFile,
        fetch: Callable[[], bytes],
        cached: Mapping[tuple[str, str], Path] | None = None,
    ) -> tuple[Path, bool]:
        """The node's copy of `shipped` (from `cached`, see cached_copies, when listed there),
        fetched (once, under a lock) when missing; whether it was fetched now. FileMismatch
        when what arrived is not what was shipped."""
        own = (cached or {}).get((shipped.name, shipped.sha256))
        if own is not None and own.stat().st_size == shipped.size:
            return own, False
        place = self.root / "files" / shipped.sha256
        target = place / shipped.name
        with _locked(place.with_suffix(".lock")):
            if target.is_file() and target.stat().st_size == shipped.size:
                return target, False  # checked when it was written; the name is its sha256
            data = fetch()
            if hashlib.sha256(data).hexdigest() != shipped.sha256:
                raise FileMismatch(f"{shipped.name}: what arrived is not the file shipped")
            _write_atomically(target, data)
            return target, True

    def exercise(self, bundle: JobBundle) -> tuple[ExerciseSpec, Path]:
        """The bundle's exercise and release notebook, unpacked once per node."""
        folder = self.root / "bundles" / bundle.digest
        done = folder / ".complete"
        with _locked(folder.with_suffix(".lock")):
            if not done.is_file():
                for relative, data in bundle.exercise_files.items():
                    target = folder / "autograder" / bundle.exercise / relative
                    if ".." in Path(relative).parts or Path(relative).is_absolute():
                        raise DeepgradeError(f"bundle {bundle.digest[:12]}: bad path {relative}")
                    _write_atomically(target, data)
                release = folder / "release" / bundle.exercise / bundle.notebook
                _write_atomically(release, bundle.release_notebook)
                done.write_text("")
        spec = load_exercise(folder / "autograder", bundle.exercise)
        return spec, folder / "release" / bundle.exercise / bundle.notebook


def node_settings(
    bundle: JobBundle, spec: ExerciseSpec, release: Path, files: Mapping[str, Path], workdir: Path
) -> GradeSettings:
    """The GradeSettings a node grades with: the driver's profile, this node's file copies."""
    with tempfile.TemporaryDirectory() as scratch:
        written = Path(scratch) / "profile.json"
        written.write_text(json.dumps(bundle.profile), encoding="utf-8")
        profile = GradingProfile.read(written, Path(scratch))
    data = tuple(files[f.sha256] for f in bundle.files if not f.model)
    models = tuple(files[f.sha256] for f in bundle.files if f.model)
    return GradeSettings(
        spec=spec,
        profile=replace(profile, data_files=data, model_files=models),
        release_notebook=release,
        workdir=workdir,
        unsafe=bundle.unsafe,
        cell_timeout_s=bundle.cell_timeout_s,
        grader_version=bundle.grader_version,
    )
