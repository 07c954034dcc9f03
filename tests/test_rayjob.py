"""What a batch ships to a cluster's nodes, and how a node unpacks it (no Ray needed)."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest

from deepgrade.batch import batch_settings
from deepgrade.project import Project
from deepgrade.rayjob import (
    FileMismatch,
    NodeFiles,
    ShippedFile,
    cached_copies,
    node_settings,
    pack,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    settings = batch_settings(
        Project(ROOT), "signs_cnn", "smoke", tmp_path_factory.mktemp("runs"), unsafe=True
    )
    return settings, *pack(settings)


def test_the_bundle_carries_the_exercise_and_no_path_of_this_host(packed: tuple) -> None:
    settings, bundle, paths = packed
    assert "test_training.py" in bundle.exercise_files and "spec.toml" in bundle.exercise_files
    assert not any("__pycache__" in name for name in bundle.exercise_files)
    assert bundle.release_notebook == settings.release_notebook.read_bytes()
    text = json.dumps(bundle.profile)
    assert str(ROOT) not in text and str(Path.home()) not in text  # nothing assumes our disk
    assert {f.name for f in bundle.files} == {p.name for p in settings.profile.files}
    for shipped in bundle.files:
        assert hashlib.sha256(paths[shipped.sha256].read_bytes()).hexdigest() == shipped.sha256
    assert len(bundle.digest) == 64 and pack(settings)[0].digest == bundle.digest


def test_a_node_fetches_each_file_once_and_refuses_a_wrong_one(
    packed: tuple, tmp_path: Path
) -> None:
    _, bundle, paths = packed
    node = NodeFiles(tmp_path / "node-cache")
    shipped = bundle.files[0]
    calls: list[int] = []

    def fetch() -> bytes:
        calls.append(1)
        return paths[shipped.sha256].read_bytes()

    workers = [threading.Thread(target=node.file, args=(shipped, fetch)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    path, fetched = node.file(shipped, fetch)
    assert calls == [1] and not fetched  # four tasks at once, one fetch
    assert path.name == shipped.name and path.read_bytes() == paths[shipped.sha256].read_bytes()
    forged = ShippedFile("x.h5", "0" * 64, 3)
    with pytest.raises(FileMismatch, match=r"x\.h5: what arrived"):
        node.file(forged, lambda: b"abc")
    assert not (node.root / "files" / forged.sha256 / "x.h5").exists()


def test_a_node_uses_its_own_cache_when_its_checksums_list_the_file(
    packed: tuple, tmp_path: Path
) -> None:
    _, bundle, paths = packed
    shipped = bundle.files[0]
    entry = tmp_path / "cache" / "signs" / "real"
    entry.mkdir(parents=True)
    (entry / shipped.name).write_bytes(paths[shipped.sha256].read_bytes())
    (entry / "SHA256SUMS").write_text(f"{shipped.sha256}  {shipped.name}\n")
    node = NodeFiles(tmp_path / "cache")
    found, fetched = node.file(shipped, lambda: pytest.fail("fetched"), cached_copies(node.cache))
    assert found == entry / shipped.name and not fetched


def test_the_node_grades_with_the_drivers_profile_and_its_own_copies(
    packed: tuple, tmp_path: Path
) -> None:
    settings, bundle, paths = packed
    node = NodeFiles(tmp_path / "node")
    local = {f.sha256: node.file(f, paths[f.sha256].read_bytes)[0] for f in bundle.files}
    spec, release = node.exercise(bundle)
    assert spec.directory.is_relative_to(node.root) and release.read_bytes() == (
        settings.release_notebook.read_bytes()
    )
    there = node_settings(bundle, spec, release, local, tmp_path / "runs")
    assert there.profile.to_json() == settings.profile.to_json()
    assert all(path.is_relative_to(node.root) for path in there.profile.files)
    assert there.grader_version == settings.grader_version
