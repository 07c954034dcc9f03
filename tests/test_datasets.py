"""deepgrade.datasets: SIGNS format, look-alike, verify, import, cache, manifest, learnability."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from deepgrade import datasets
from deepgrade.datasets import _cache, signs
from deepgrade.errors import DeepgradeError, InputError

REPO = Path(__file__).resolve().parents[1]
SMALL = {"n_train": 12, "n_test": 6}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """A small valid look-alike, to be broken by the tests."""
    return datasets.synth("signs", tmp_path / "small", seed=1, **SMALL)


@pytest.fixture(scope="module")
def default_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding the default look-alike (made once: ~1.5 s)."""
    cache = tmp_path_factory.mktemp("cache")
    datasets.ensure("signs", "synth", cache)
    return cache


# --- the real format ------------------------------------------------------------------------


def test_default_synth_has_the_real_files_keys_shapes_and_dtypes(default_cache: Path) -> None:
    folder = default_cache / "signs" / "synth"
    expected = {
        "train_signs.h5": {
            "train_set_x": ((1080, 64, 64, 3), "uint8"),
            "train_set_y": ((1080,), "int64"),
            "list_classes": ((6,), "int64"),
        },
        "test_signs.h5": {
            "test_set_x": ((120, 64, 64, 3), "uint8"),
            "test_set_y": ((120,), "int64"),
            "list_classes": ((6,), "int64"),
        },
    }
    for file, arrays in expected.items():
        with h5py.File(folder / file, "r") as f:
            found = {key: (f[key].shape, str(f[key].dtype)) for key in f}
            assert found == arrays
            assert f["list_classes"][()].tolist() == [0, 1, 2, 3, 4, 5]
    assert expected == signs.LAYOUT


def test_synth_round_trips_through_load(tmp_path: Path) -> None:
    out = datasets.synth("signs", tmp_path / "out", seed=5, n_train=30, n_test=12)
    assert out == tmp_path / "out"
    datasets.verify("signs", out)
    data = signs.load(out)
    made = signs.generate(seed=5, n_train=30, n_test=12)
    for field in ("x_train", "y_train", "x_test", "y_test", "classes"):
        stored, expected = getattr(data, field), getattr(made, field)
        assert stored.dtype == expected.dtype and np.array_equal(stored, expected), field
        assert not stored.flags.writeable, f"{field} can be changed by one check for the next"
    assert data.x_train.shape == (30, 64, 64, 3) and data.x_test.shape == (12, 64, 64, 3)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    # Balanced classes, shuffled order; a light background like the real photos.
    assert np.bincount(data.y_train, minlength=6).tolist() == [5] * 6
    assert np.bincount(data.y_test, minlength=6).tolist() == [2] * 6
    assert data.y_train.tolist() != sorted(data.y_train.tolist())
    assert data.x_train[:, :4, :4].mean() > 150


def test_synth_is_deterministic_per_seed_and_files_are_byte_identical(tmp_path: Path) -> None:
    a = datasets.synth("signs", tmp_path / "a", seed=3, **SMALL)
    b = datasets.synth("signs", tmp_path / "b", seed=3, **SMALL)
    c = datasets.synth("signs", tmp_path / "c", seed=4, **SMALL)
    for name in datasets.FILES["signs"]:
        assert _sha(a / name) == _sha(b / name)
        assert _sha(a / name) != _sha(c / name)
    assert not [p for p in a.iterdir() if p.name.startswith(".")], "temporary files left"


def test_sizes_are_configurable_and_splits_do_not_depend_on_each_others_size() -> None:
    a = signs.generate(seed=2, n_train=7, n_test=9)
    b = signs.generate(seed=2, n_train=40, n_test=3)
    assert a.x_train.shape == (7, 64, 64, 3) and a.y_test.shape == (9,)
    assert b.x_train.shape == (40, 64, 64, 3) and b.y_test.shape == (3,)
    c = signs.generate(seed=2, n_train=40, n_test=9)
    assert np.array_equal(a.x_test, c.x_test) and np.array_equal(a.y_test, c.y_test)
    assert np.array_equal(b.x_train, c.x_train) and np.array_equal(b.y_train, c.y_train)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_valid": 3}, "unknown size n_valid for signs (known: n_train, n_test)"),
        ({"n_train": 0}, "n_train must be an integer >= 1, got 0"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
    ],
)
def test_synth_refuses_bad_sizes(tmp_path: Path, kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(DeepgradeError, match=re.escape(message)):
        datasets.synth("signs", tmp_path, **kwargs)


def test_unknown_data_set_is_named() -> None:
    with pytest.raises(
        DeepgradeError, match=r"unknown data set .mnist. \(known: cifar10, fashion_mnist, signs\)"
    ):
        datasets.get("mnist")


def test_importing_the_package_stays_cheap() -> None:
    code = (
        "import sys, deepgrade.datasets; "
        "print(sorted({'numpy', 'h5py', 'keras'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- verify refuses wrong files, naming the file ----------------------------------------------


def _rewrite(path: Path, change: Callable[[dict[str, np.ndarray]], None]) -> None:
    with h5py.File(path, "r") as f:
        arrays = {key: f[key][()] for key in f}
    change(arrays)
    path.unlink()
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value)


def _rename_x(a: dict[str, np.ndarray]) -> None:
    a["train_x"] = a.pop("train_set_x")


def _small_images(a: dict[str, np.ndarray]) -> None:
    a["train_set_x"] = a["train_set_x"][:, :32, :32]


def _float_images(a: dict[str, np.ndarray]) -> None:
    a["train_set_x"] = a["train_set_x"].astype(np.float32)


def _label_seven(a: dict[str, np.ndarray]) -> None:
    a["test_set_y"][2] = 7


def _short_labels(a: dict[str, np.ndarray]) -> None:
    a["train_set_y"] = a["train_set_y"][:-1]


def _float_labels(a: dict[str, np.ndarray]) -> None:
    a["test_set_y"] = a["test_set_y"].astype(np.float64)


def _five_classes(a: dict[str, np.ndarray]) -> None:
    a["list_classes"] = np.arange(5, dtype=np.int64)


@pytest.mark.parametrize(
    ("file", "change", "message"),
    [
        ("train_signs.h5", _rename_x, r"missing dataset 'train_set_x' \(found: list_classes, "),
        ("train_signs.h5", _small_images, r"train_set_x has shape \(12, 32, 32, 3\); expected"),
        ("train_signs.h5", _float_images, "train_set_x has dtype float32; expected uint8"),
        ("test_signs.h5", _label_seven, r"test_set_y\[2\] is 7; expected labels 0-5"),
        ("train_signs.h5", _short_labels, r"train_set_y has shape \(11,\); expected \(12,\)"),
        ("test_signs.h5", _float_labels, "test_set_y has dtype float64; expected integer"),
        ("train_signs.h5", _five_classes, r"list_classes has shape \(5,\)"),
    ],
)
def test_verify_refuses_wrong_contents_naming_the_file(
    small: Path, file: str, change: Callable[[dict[str, np.ndarray]], None], message: str
) -> None:
    _rewrite(small / file, change)
    with pytest.raises(InputError, match=message) as caught:
        datasets.verify("signs", small)
    assert caught.value.path == small / file
    assert str(caught.value).startswith(f"{small / file}: ")
    with pytest.raises(InputError, match=message):  # load checks the same things
        signs.load(small)


def test_verify_refuses_a_file_that_is_not_hdf5(small: Path) -> None:
    (small / "test_signs.h5").write_text("<html>Google Drive: sign in</html>")
    with pytest.raises(InputError, match="not a readable HDF5 file") as caught:
        datasets.verify("signs", small)
    assert caught.value.path == small / "test_signs.h5"


def test_verify_refuses_a_missing_file_and_a_missing_folder(small: Path, tmp_path: Path) -> None:
    (small / "test_signs.h5").unlink()
    with pytest.raises(InputError, match="missing: the SIGNS data set needs both") as caught:
        datasets.verify("signs", small)
    assert caught.value.path == small / "test_signs.h5"
    with pytest.raises(InputError, match="no such folder") as caught:
        datasets.verify("signs", tmp_path / "nowhere")
    assert caught.value.path == tmp_path / "nowhere"


def test_verify_accepts_other_sizes_and_uint8_labels(small: Path) -> None:
    def to_uint8(a: dict[str, np.ndarray]) -> None:
        a["train_set_y"] = a["train_set_y"].astype(np.uint8)

    _rewrite(small / "train_signs.h5", to_uint8)
    datasets.verify("signs", small)
    assert signs.load(small).y_train.dtype == np.int64


# --- import into the cache ---------------------------------------------------------------------


def test_import_copies_verifies_and_records_sha256(small: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    real = datasets.import_dataset("signs", small, cache)
    assert real == cache / "signs" / "real"
    lines = (real / "SHA256SUMS").read_text().splitlines()
    assert lines == [f"{_sha(small / name)}  {name}" for name in datasets.FILES["signs"]]
    for name in datasets.FILES["signs"]:
        assert (real / name).read_bytes() == (small / name).read_bytes()
    assert datasets.ensure("signs", "real", cache) == real
    assert sorted(p.name for p in (cache / "signs").iterdir()) == [".lock", "real"]


def test_import_takes_the_folder_of_a_file_and_refuses_foreign_files(
    small: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    assert datasets.import_dataset("signs", small / "test_signs.h5", cache).is_dir()
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(InputError, match="not a file of the signs data set") as caught:
        datasets.import_dataset("signs", tmp_path / "notes.txt", cache)
    assert caught.value.path == tmp_path / "notes.txt"
    with pytest.raises(InputError, match="no such file or folder"):
        datasets.import_dataset("signs", tmp_path / "missing", cache)


def test_refused_import_keeps_the_existing_cache_entry(small: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    real = datasets.import_dataset("signs", small, cache)
    before = {p.name: p.read_bytes() for p in real.iterdir()}
    bad = datasets.synth("signs", tmp_path / "bad", seed=9, **SMALL)
    _rewrite(bad / "test_signs.h5", _label_seven)
    with pytest.raises(InputError, match=r"test_set_y\[2\] is 7") as caught:
        datasets.import_dataset("signs", bad, cache)
    assert caught.value.path == bad / "test_signs.h5"
    assert {p.name: p.read_bytes() for p in real.iterdir()} == before
    assert datasets.ensure("signs", "real", cache) == real


def test_reimport_replaces_the_entry(small: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    datasets.import_dataset("signs", small, cache)
    other = datasets.synth("signs", tmp_path / "other", seed=2, **SMALL)
    real = datasets.import_dataset("signs", other, cache)
    assert _sha(real / "train_signs.h5") == _sha(other / "train_signs.h5")
    assert sorted(p.name for p in (cache / "signs").iterdir()) == [".lock", "real"]


# --- ensure ------------------------------------------------------------------------------------


def test_ensure_real_missing_says_which_command_to_run(tmp_path: Path) -> None:
    with pytest.raises(DeepgradeError, match="deepgrade datasets import signs PATH") as caught:
        datasets.ensure("signs", "real", tmp_path)
    assert "train_signs.h5, test_signs.h5" in str(caught.value)
    with pytest.raises(DeepgradeError, match="unknown data variant 'fake'"):
        datasets.ensure("signs", "fake", tmp_path)


def test_ensure_real_refuses_files_changed_since_import(small: Path, tmp_path: Path) -> None:
    real = datasets.import_dataset("signs", small, tmp_path)
    with open(real / "test_signs.h5", "ab") as f:
        f.write(b"\0")
    with pytest.raises(DeepgradeError, match=r"test_signs\.h5 missing or changed since import"):
        datasets.ensure("signs", "real", tmp_path)


def test_ensure_synth_is_idempotent(default_cache: Path) -> None:
    folder = default_cache / "signs" / "synth"
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert datasets.ensure("signs", "synth", default_cache) == folder
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    assert json.loads((folder / "RECIPE.json").read_text())["sizes"] == dict(signs.SIZES)
    assert _cache.changed_files(folder, signs.FILES) == []


@pytest.fixture
def tiny_signs() -> datasets.Dataset:
    """SIGNS with small default sizes, so cache tests that rebuild stay fast."""
    return dataclasses.replace(signs.DATASET, sizes={"n_train": 6, "n_test": 6})


def test_ensure_synth_builds_once_when_two_graders_race(
    tiny_signs: datasets.Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    real_synth = tiny_signs.synth

    def counting_synth(out_dir: Path, **kwargs: int) -> None:
        calls.append(out_dir)
        assert not (tmp_path / "signs" / "synth").exists(), "written in place, not in a temp dir"
        real_synth(out_dir, **kwargs)

    dataset = dataclasses.replace(tiny_signs, synth=counting_synth)
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(_cache.ensure_synth(dataset, tmp_path)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [tmp_path / "signs" / "synth"] * 4
    assert len(calls) == 1
    assert calls[0].parent == tmp_path / "signs" and calls[0].name.startswith(".tmp-synth-")
    datasets.verify("signs", results[0])


def test_ensure_synth_rebuilds_stale_or_broken_entries_and_tidies_leftovers(
    tiny_signs: datasets.Dataset, tmp_path: Path
) -> None:
    entry = _cache.ensure_synth(tiny_signs, tmp_path)
    leftover = tmp_path / "signs" / ".tmp-synth-killed"
    leftover.mkdir()
    (leftover / "train_signs.h5").write_bytes(b"half")
    newer = dataclasses.replace(tiny_signs, recipe_version=tiny_signs.recipe_version + 1)
    assert _cache.ensure_synth(newer, tmp_path) == entry
    assert json.loads((entry / "RECIPE.json").read_text())["recipe_version"] == 2
    assert not leftover.exists()
    (entry / "test_signs.h5").write_bytes(b"corrupt")
    _cache.ensure_synth(newer, tmp_path)
    datasets.verify("signs", entry)


def test_a_failing_build_leaves_no_entry_and_no_temp_folder(
    tiny_signs: datasets.Dataset, tmp_path: Path
) -> None:
    def broken(out_dir: Path, **kwargs: int) -> None:
        (out_dir / "train_signs.h5").write_bytes(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        _cache.ensure_synth(dataclasses.replace(tiny_signs, synth=broken), tmp_path)
    assert [p.name for p in (tmp_path / "signs").iterdir()] == [".lock"]


# --- the manifest agrees with the code ---------------------------------------------------------


def test_manifest_and_registry_agree() -> None:
    manifest = datasets.read_manifest(REPO / "datasets" / datasets.MANIFEST)
    assert set(manifest) == set(datasets.DATASETS)
    for name, entry in manifest.items():
        dataset = datasets.DATASETS[name]
        assert tuple(entry.layout) == dataset.files == datasets.FILES[name]
        assert entry.layout == dataset.layout
        module, _, function = entry.synthetic["generator"].rpartition(".")
        assert getattr(importlib.import_module(module), function) is dataset.synth
        assert entry.synthetic["sizes"] == dict(dataset.sizes)
        assert entry.synthetic["recipe_version"] == dataset.recipe_version
        assert entry.synthetic["seed"] == 0  # what ensure(name, "synth", ...) makes
        assert entry.source.startswith("https://") and entry.licence
    assert manifest["signs"].checksums.startswith("none published")


def test_manifest_errors_name_the_table(tmp_path: Path) -> None:
    path = tmp_path / "manifest.toml"
    path.write_text('[signs]\ntitle = "x"\n')
    with pytest.raises(InputError, match=r"\[signs\]: missing key 'source'"):
        datasets.read_manifest(path)


# --- learnability ------------------------------------------------------------------------------


def test_a_small_cnn_learns_to_count_fingers_on_the_look_alike() -> None:
    """The course's CNN, trained briefly on a reduced look-alike, beats chance (1/6) widely,
    but not after one epoch: the classes need learned features, not one colour or template."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    data = signs.generate(seed=0, n_train=600, n_test=120)
    keras.utils.set_random_seed(0)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((64, 64, 3)),
            layers.Conv2D(8, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(16, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(32, activation="relu"),
            layers.Dense(6, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    x_train, x_test = data.x_train / 255.0, data.x_test / 255.0
    model.fit(x_train, data.y_train, batch_size=32, epochs=1, verbose=0)
    first = model.evaluate(x_test, data.y_test, verbose=0)[1]
    model.fit(x_train, data.y_train, batch_size=32, epochs=7, verbose=0)
    final = model.evaluate(x_test, data.y_test, verbose=0)[1]
    assert first < 0.9, f"test accuracy {first:.2f} after one epoch: the look-alike is trivial"
    assert final >= 0.7, f"test accuracy {final:.2f} after 8 epochs (chance: 0.17)"
