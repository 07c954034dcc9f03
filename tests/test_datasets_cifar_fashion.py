"""CIFAR-10 and Fashion-MNIST: official formats, look-alikes, verify, import, sized entries."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import pickle
import re
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepgrade import datasets
from deepgrade.datasets import _cache, cifar10, fashion_mnist
from deepgrade.errors import DeepgradeError, InputError

REPO = Path(__file__).resolve().parents[1]
SMALL_CIFAR = {"n_train": 23, "n_test": 7}  # batches of 4, 4, 4, 4 and 7 images
SMALL_FASHION = {"n_train": 20, "n_test": 10}


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def _unpickle(path: Path) -> Any:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def _pickle(path: Path, content: Any) -> None:
    path.write_bytes(pickle.dumps(content, protocol=2))


def _idx(path: Path) -> tuple[int, tuple[int, ...], bytes]:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[:4], "big")
    ndim = 3 if magic == 2051 else 1
    dims = tuple(int.from_bytes(raw[4 * i : 4 * i + 4], "big") for i in range(1, ndim + 1))
    return magic, dims, raw[4 * (ndim + 1) :]


def _write_idx(path: Path, raw: bytes) -> None:
    with gzip.open(path, "wb") as f:
        f.write(raw)


def _header(magic: int, *dims: int) -> bytes:
    return b"".join(value.to_bytes(4, "big") for value in (magic, *dims))


@pytest.fixture
def cifar(tmp_path: Path) -> Path:
    return datasets.synth("cifar10", tmp_path / "cifar-10-batches-py", seed=1, **SMALL_CIFAR)


@pytest.fixture
def fashion(tmp_path: Path) -> Path:
    return datasets.synth("fashion_mnist", tmp_path / "fashion", seed=1, **SMALL_FASHION)


# --- the official formats ----------------------------------------------------------------------


def test_cifar_look_alike_is_in_the_official_pickle_format(cifar: Path) -> None:
    assert sorted(p.name for p in cifar.iterdir()) == sorted(cifar10.FILES)
    made = cifar10.generate(seed=1, **SMALL_CIFAR)
    sizes = [4, 4, 4, 4, 7]
    start = 0
    for i, size in enumerate(sizes, 1):
        batch = _unpickle(cifar / f"data_batch_{i}")
        assert sorted(batch) == [b"batch_label", b"data", b"filenames", b"labels"]
        assert batch[b"batch_label"] == f"training batch {i} of 5".encode()
        data = batch[b"data"]
        assert data.dtype == np.uint8 and data.shape == (size, 3072)
        assert isinstance(batch[b"labels"], list) and len(batch[b"labels"]) == size
        assert all(type(label) is int for label in batch[b"labels"])
        assert batch[b"labels"] == made.y_train[start : start + size].tolist()
        assert all(isinstance(name, bytes) for name in batch[b"filenames"])
        # Rows are channel-first: 1024 red, then green, then blue values, row-major.
        image = made.x_train[start]
        assert np.array_equal(data[0, :1024], image[:, :, 0].ravel())
        assert np.array_equal(data[0, 1024:2048], image[:, :, 1].ravel())
        assert np.array_equal(data[0, 2048:], image[:, :, 2].ravel())
        start += size
    test = _unpickle(cifar / "test_batch")
    assert test[b"data"].shape == (7, 3072) and test[b"batch_label"] == b"testing batch 1 of 1"
    meta = _unpickle(cifar / "batches.meta")
    assert meta == {
        b"num_cases_per_batch": 4,
        b"label_names": [name.encode() for name in cifar10.LABEL_NAMES],
        b"num_vis": 3072,
    }
    assert meta[b"label_names"][3] == b"cat" and meta[b"label_names"][5] == b"dog"


def test_cifar_load_round_trips(cifar: Path) -> None:
    data = cifar10.load(cifar)
    made = cifar10.generate(seed=1, **SMALL_CIFAR)
    assert data.x_train.shape == (23, 32, 32, 3) and data.x_test.shape == (7, 32, 32, 3)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        stored, expected = getattr(data, field), getattr(made, field)
        assert stored.dtype == expected.dtype and np.array_equal(stored, expected), field
        assert not stored.flags.writeable, field
    assert data.y_train.dtype == np.int64 and data.label_names == list(cifar10.LABEL_NAMES)
    big = cifar10.generate(seed=0, n_train=50, n_test=20)
    assert np.bincount(big.y_train).tolist() == [5] * 10
    assert big.y_train.tolist() != sorted(big.y_train.tolist())


def test_cifar_load_test_reads_the_test_batch_alone(cifar: Path, tmp_path: Path) -> None:
    only = tmp_path / "only-test"
    only.mkdir()
    (only / cifar10.TEST_FILE).write_bytes((cifar / cifar10.TEST_FILE).read_bytes())
    images, labels = cifar10.load_test(only)
    made = cifar10.generate(seed=1, **SMALL_CIFAR)
    assert np.array_equal(images, made.x_test) and np.array_equal(labels, made.y_test)
    (only / cifar10.TEST_FILE).write_bytes(pickle.dumps(print, protocol=2))
    with pytest.raises(InputError, match="not a readable CIFAR-10 batch"):
        cifar10.load_test(only)  # the safe unpickler: no callable from a pickle


def test_cifar_loads_pickles_naming_numpy_core_as_the_official_files_do(cifar: Path) -> None:
    """The official batches were pickled by NumPy 1 (`numpy.core.multiarray._reconstruct`)."""
    for name in (*cifar10.TRAIN_FILES, cifar10.TEST_FILE):
        raw = (cifar / name).read_bytes()
        assert b"numpy._core.multiarray\n_reconstruct" in raw
        (cifar / name).write_bytes(raw.replace(b"numpy._core.", b"numpy.core."))
    datasets.verify("cifar10", cifar)
    assert cifar10.load(cifar).x_train.shape == (23, 32, 32, 3)


def test_fashion_look_alike_is_in_the_idx_format(fashion: Path) -> None:
    assert sorted(p.name for p in fashion.iterdir()) == sorted(fashion_mnist.FILES)
    made = fashion_mnist.generate(seed=1, **SMALL_FASHION)
    for name, magic, dims, array in (
        ("train-images-idx3-ubyte.gz", 2051, (20, 28, 28), made.x_train),
        ("train-labels-idx1-ubyte.gz", 2049, (20,), made.y_train),
        ("t10k-images-idx3-ubyte.gz", 2051, (10, 28, 28), made.x_test),
        ("t10k-labels-idx1-ubyte.gz", 2049, (10,), made.y_test),
    ):
        found_magic, found_dims, payload = _idx(fashion / name)
        assert (found_magic, found_dims) == (magic, dims), name
        assert payload == array.astype(np.uint8).tobytes(), name
    data = fashion_mnist.load(fashion)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(data, field), getattr(made, field)), field
        assert not getattr(data, field).flags.writeable
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    assert np.bincount(data.y_train).tolist() == [2] * 10
    # As in the real set: a black background, the item in the middle (wide ones reach the edges).
    assert (data.x_train[:, :2, :2] == 0).all() and (data.x_train[:, :2, -2:] == 0).all()
    assert data.x_train[:, 10:18, 10:18].mean() > 40


@pytest.mark.parametrize(
    ("name", "sizes"), [("cifar10", SMALL_CIFAR), ("fashion_mnist", SMALL_FASHION)]
)
def test_look_alikes_are_deterministic_per_seed(
    tmp_path: Path, name: str, sizes: dict[str, int]
) -> None:
    a = datasets.synth(name, tmp_path / "a", seed=3, **sizes)
    b = datasets.synth(name, tmp_path / "b", seed=3, **sizes)
    c = datasets.synth(name, tmp_path / "c", seed=4, **sizes)
    for file in datasets.FILES[name]:
        assert (a / file).read_bytes() == (b / file).read_bytes(), file
    assert any((a / f).read_bytes() != (c / f).read_bytes() for f in datasets.FILES[name])
    assert not [p for p in a.iterdir() if p.name.startswith(".")], "temporary files left"


@pytest.mark.parametrize("module", [cifar10, fashion_mnist])
def test_splits_do_not_depend_on_each_others_size(module: Any) -> None:
    a = module.generate(seed=2, n_train=10, n_test=9)
    b = module.generate(seed=2, n_train=40, n_test=3)
    c = module.generate(seed=2, n_train=40, n_test=9)
    assert np.array_equal(a.x_test, c.x_test) and np.array_equal(a.y_test, c.y_test)
    assert np.array_equal(b.x_train, c.x_train) and np.array_equal(b.y_train, c.y_train)


def test_cifar_needs_one_training_image_per_batch(tmp_path: Path) -> None:
    with pytest.raises(DeepgradeError, match=r"cifar10: n_train must be an integer >= 5, got 4"):
        datasets.synth("cifar10", tmp_path, n_train=4)
    with pytest.raises(DeepgradeError, match="unknown size n_valid for fashion_mnist"):
        datasets.synth("fashion_mnist", tmp_path, n_valid=3)


def test_footwear_points_left_so_a_horizontal_flip_is_wrong() -> None:
    data = fashion_mnist.generate(seed=0, n_train=300, n_test=1)
    for label in (5, 7, 9):  # sandal, sneaker, ankle boot: heel and shaft on the right
        mean = data.x_train[data.y_train == label].astype(float).mean(axis=0)
        upper = mean[:14]
        assert upper[:, 14:].sum() > 1.5 * upper[:, :14].sum(), fashion_mnist.CLASS_NAMES[label]


def test_cifar_cats_and_dogs_differ_only_in_the_ears() -> None:
    """Same body and palette: the mean images of cats and dogs are closer than any other pair's."""
    data = cifar10.generate(seed=0, n_train=2000, n_test=1)
    means = np.stack([data.x_train[data.y_train == k].astype(float).mean(0) for k in range(10)])
    distance = np.abs(means[:, None] - means[None]).mean(axis=(2, 3, 4))
    np.fill_diagonal(distance, np.inf)
    assert np.unravel_index(distance.argmin(), distance.shape) in ((3, 5), (5, 3))


# --- verify refuses wrong files, naming the file --------------------------------------------


def _batch_change(file: str, change: Callable[[dict[Any, Any]], Any]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        content = _unpickle(folder / file)
        result = change(content)
        _pickle(folder / file, content if result is None else result)

    return apply


class _Exploit:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("touch /tmp/deepgrade-pwned",))


CIFAR_BREAKAGE = [
    ("data_batch_2", lambda f: (f / "data_batch_2").unlink(), "missing: the CIFAR-10 python"),
    ("test_batch", lambda f: (f / "test_batch").write_text("<html>"), "not a readable CIFAR-10"),
    (
        "data_batch_1",
        _batch_change("data_batch_1", lambda c: {k.decode(): v for k, v in c.items()}),
        r"missing key b'batch_label' \(str keys",
    ),
    (
        "data_batch_3",
        _batch_change("data_batch_3", lambda c: c.update({b"data": c[b"data"][:, :1024]})),
        r"b'data' has shape \(4, 1024\); expected \(N, 3072\)",
    ),
    (
        "data_batch_4",
        _batch_change("data_batch_4", lambda c: c.update({b"data": c[b"data"] / 255.0})),
        "b'data' has dtype float64; expected uint8",
    ),
    (
        "test_batch",
        _batch_change("test_batch", lambda c: c[b"labels"].__setitem__(2, 10)),
        r"b'labels'\[2\] is 10; expected 0-9",
    ),
    (
        "data_batch_5",
        _batch_change("data_batch_5", lambda c: c[b"labels"].__delitem__(-1)),
        "b'labels' has 6 entries; expected 7",
    ),
    (
        "batches.meta",
        _batch_change("batches.meta", lambda c: c[b"label_names"].reverse()),
        "b'label_names' is .*; expected the 10 names",
    ),
    (
        "batches.meta",
        _batch_change("batches.meta", lambda c: [1, 2]),
        "holds a list; expected a dict",
    ),
    (
        "data_batch_1",
        _batch_change("data_batch_1", lambda c: c.update({b"labels": _Exploit()})),
        "refused to load posix.system",
    ),
]


@pytest.mark.parametrize(("file", "breakage", "message"), CIFAR_BREAKAGE)
def test_cifar_verify_refuses_wrong_files_naming_them(
    cifar: Path, file: str, breakage: Callable[[Path], None], message: str
) -> None:
    Path("/tmp/deepgrade-pwned").unlink(missing_ok=True)
    breakage(cifar)
    with pytest.raises(InputError, match=message) as caught:
        datasets.verify("cifar10", cifar)
    assert caught.value.path == cifar / file
    with pytest.raises(InputError, match=message):
        cifar10.load(cifar)
    assert not Path("/tmp/deepgrade-pwned").exists(), "a pickle ran code while being checked"


def _replace_idx(
    file: str, raw: Callable[[int, tuple[int, ...], bytes], bytes]
) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        magic, dims, payload = _idx(folder / file)
        _write_idx(folder / file, raw(magic, dims, payload))

    return apply


FASHION_BREAKAGE = [
    (
        "t10k-labels-idx1-ubyte.gz",
        lambda f: (f / "t10k-labels-idx1-ubyte.gz").unlink(),
        "missing: Fashion-MNIST needs",
    ),
    (
        "train-images-idx3-ubyte.gz",
        lambda f: (f / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip"),
        "not a readable gzip file",
    ),
    (
        "train-images-idx3-ubyte.gz",
        _replace_idx("train-images-idx3-ubyte.gz", lambda m, d, p: _header(2049, *d) + p),
        "magic number 2049; expected 2051",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        _replace_idx("t10k-images-idx3-ubyte.gz", lambda m, d, p: _header(m, 10, 32, 32) + p),
        "images are 32x32; expected 28x28",
    ),
    (
        "train-images-idx3-ubyte.gz",
        _replace_idx("train-images-idx3-ubyte.gz", lambda m, d, p: _header(m, *d) + p[:-5]),
        r"holds 15675 bytes of data; the header's dimensions \(20, 28, 28\) need 15680",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        _replace_idx("train-labels-idx1-ubyte.gz", lambda m, d, p: _header(m, 19) + p[:19]),
        "holds 19 labels; expected 20, one per image",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        _replace_idx("t10k-labels-idx1-ubyte.gz", lambda m, d, p: _header(m, *d) + b"\x0a" + p[1:]),
        "label 0 is 10; expected 0-9",
    ),
]


@pytest.mark.parametrize(("file", "breakage", "message"), FASHION_BREAKAGE)
def test_fashion_verify_refuses_wrong_files_naming_them(
    fashion: Path, file: str, breakage: Callable[[Path], None], message: str
) -> None:
    breakage(fashion)
    with pytest.raises(InputError, match=message) as caught:
        datasets.verify("fashion_mnist", fashion)
    assert caught.value.path == fashion / file
    with pytest.raises(InputError, match=message):
        fashion_mnist.load(fashion)


# --- import: published md5s, the official archive -------------------------------------------


def test_import_refuses_files_without_the_published_md5(
    cifar: Path, fashion: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(InputError, match="differs from the published c99cafc152244af7") as caught:
        datasets.import_dataset("cifar10", cifar, cache)
    assert caught.value.path == cifar / "data_batch_1"
    with pytest.raises(InputError, match="differs from the published 8d4fb7e6c68d591d") as caught:
        datasets.import_dataset("fashion_mnist", fashion / "t10k-images-idx3-ubyte.gz", cache)
    assert caught.value.path == fashion / "train-images-idx3-ubyte.gz"
    assert not (cache / "cifar10" / "real").exists()
    assert not (cache / "fashion_mnist" / "real").exists()


@pytest.mark.parametrize(("name", "folder"), [("cifar10", "cifar"), ("fashion_mnist", "fashion")])
def test_import_from_a_folder_checks_the_md5s_given(
    name: str, folder: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    source: Path = request.getfixturevalue(folder)
    md5s = {file: _md5(source / file) for file in datasets.FILES[name]}
    real = datasets.import_dataset(name, source, tmp_path / "cache", md5s=md5s)
    assert real == tmp_path / "cache" / name / "real"
    assert datasets.ensure(name, "real", tmp_path / "cache") == real
    for file in datasets.FILES[name]:
        assert (real / file).read_bytes() == (source / file).read_bytes()
    loaded = datasets.get(name).load(real)
    assert loaded.x_train.shape[0] == (23 if name == "cifar10" else 20)


def _tarball(path: Path, folder: Path, arcname: str = "cifar-10-batches-py") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname=arcname)
    return path


def test_import_takes_the_official_archive_after_checking_its_md5(
    cifar: Path, tmp_path: Path
) -> None:
    (cifar / "readme.html").write_text("<html>")
    archive = _tarball(tmp_path / "cifar-10-python.tar.gz", cifar)
    cache = tmp_path / "cache"
    with pytest.raises(
        InputError, match=r"md5 \w+ differs from the published c58f30108f"
    ) as caught:
        datasets.import_dataset("cifar10", archive, cache)
    assert caught.value.path == archive
    assert sorted(p.name for p in (cache / "cifar10").iterdir()) == [".lock"], "extracted anyway"
    real = datasets.import_dataset(
        "cifar10", archive, cache, md5s={"cifar-10-python.tar.gz": _md5(archive)}
    )
    assert sorted(p.name for p in real.iterdir()) == sorted([*cifar10.FILES, "SHA256SUMS"])
    assert np.array_equal(cifar10.load(real).x_train, cifar10.load(cifar).x_train)
    assert sorted(p.name for p in (cache / "cifar10").iterdir()) == [".lock", "real"]


def test_import_refuses_unsafe_or_incomplete_archives(cifar: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    escaping = _tarball(tmp_path / "escaping.tar.gz", cifar, arcname="../../escaped")
    with pytest.raises(InputError, match="is not a plain path") as caught:
        datasets.import_dataset("cifar10", escaping, cache, md5s={})
    assert caught.value.path == escaping
    assert not (tmp_path / "escaped").exists() and not (cache / "escaped").exists()
    (cifar / "data_batch_1").unlink()
    incomplete = _tarball(tmp_path / "incomplete.tar.gz", cifar)
    with pytest.raises(InputError, match="has no data_batch_1; expected cifar-10-batches-py/"):
        datasets.import_dataset("cifar10", incomplete, cache, md5s={})
    (tmp_path / "junk.tgz").write_bytes(b"not a tarball")
    with pytest.raises(InputError, match="not a readable tar archive"):
        datasets.import_dataset("cifar10", tmp_path / "junk.tgz", cache, md5s={})
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(InputError, match=r"the archive cifar-10-python\.tar\.gz, or the folder"):
        datasets.import_dataset("cifar10", tmp_path / "notes.txt", cache)
    assert [p.name for p in (cache / "cifar10").iterdir()] == [".lock"]


def test_ensure_real_says_the_archive_can_be_imported(tmp_path: Path) -> None:
    with pytest.raises(DeepgradeError, match="deepgrade datasets import cifar10 PATH") as caught:
        datasets.ensure("cifar10", "real", tmp_path)
    assert "PATH may also be the official cifar-10-python.tar.gz" in str(caught.value)


def test_a_broken_file_inside_the_archive_is_named(cifar: Path, tmp_path: Path) -> None:
    _batch_change("test_batch", lambda c: c[b"labels"].__setitem__(0, 11))(cifar)
    archive = _tarball(tmp_path / "cifar-10-python.tar.gz", cifar)
    with pytest.raises(InputError, match=r"test_batch in the archive: b'labels'\[0\] is 11"):
        datasets.import_dataset("cifar10", archive, tmp_path / "cache", md5s={})


# --- ensure with sizes --------------------------------------------------------------------------


def test_ensure_with_sizes_builds_a_separate_entry_once(tmp_path: Path) -> None:
    sizes = {"n_train": 30, "n_test": 10}
    entry = datasets.ensure("fashion_mnist", "synth", tmp_path, sizes=sizes)
    assert entry == tmp_path / "fashion_mnist" / "synth-n_test10-n_train30"
    recipe = json.loads((entry / "RECIPE.json").read_text())
    assert recipe["sizes"] == sizes and recipe["seed"] == 0
    assert fashion_mnist.load(entry).x_train.shape == (30, 28, 28)
    assert _cache.changed_files(entry, fashion_mnist.FILES) == []
    stamps = {p.name: p.stat().st_mtime_ns for p in entry.iterdir()}
    assert datasets.ensure("fashion_mnist", "synth", tmp_path, sizes=dict(sizes)) == entry
    assert {p.name: p.stat().st_mtime_ns for p in entry.iterdir()} == stamps
    # A partial table keeps the other default; nothing else was made beside it.
    assert sorted(p.name for p in (tmp_path / "fashion_mnist").iterdir()) == [
        ".lock",
        "synth-n_test10-n_train30",
    ]
    assert _cache.entry_name(fashion_mnist.DATASET, {"n_test": 10}) == "synth-n_test10-n_train60000"
    assert _cache.entry_name(fashion_mnist.DATASET, dict(fashion_mnist.SIZES)) == "synth"


def test_ensure_with_sizes_is_atomic_and_built_once_when_graders_race(tmp_path: Path) -> None:
    calls: list[Path] = []

    def counting_synth(out_dir: Path, **kwargs: int) -> None:
        calls.append(out_dir)
        assert not (tmp_path / "cifar10" / "synth-n_test5-n_train10").exists()
        cifar10.synth(out_dir, **kwargs)

    dataset = dataclasses.replace(cifar10.DATASET, synth=counting_synth)
    sizes = {"n_train": 10, "n_test": 5}
    results: list[Path] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(_cache.ensure_synth(dataset, tmp_path, sizes))
        )
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [tmp_path / "cifar10" / "synth-n_test5-n_train10"] * 3
    assert len(calls) == 1 and calls[0].name.startswith(".tmp-synth-n_test5-n_train10-")
    datasets.verify("cifar10", results[0])


@pytest.mark.parametrize(
    ("variant", "sizes", "message"),
    [
        ("real", {"n_train": 10}, "data sizes {'n_train': 10} given for the real cifar10"),
        ("synth", {"n_val": 10}, "unknown size n_val for cifar10"),
        ("synth", {"n_train": 0}, "n_train must be an integer >= 1, got 0"),
        ("synth", {"n_train": 3}, "cifar10: n_train must be an integer >= 5, got 3"),
    ],
)
def test_ensure_refuses_bad_sizes(
    tmp_path: Path, variant: str, sizes: dict[str, int], message: str
) -> None:
    with pytest.raises(DeepgradeError, match=re.escape(message)):
        datasets.ensure("cifar10", variant, tmp_path, sizes=sizes)
    assert not (tmp_path / "cifar10" / "real").exists()
    assert not [p for p in tmp_path.glob("cifar10/synth*")]


# --- manifest ------------------------------------------------------------------------------------


def test_manifest_gives_the_published_md5s_urls_and_licences() -> None:
    manifest = datasets.read_manifest(REPO / "datasets" / datasets.MANIFEST)
    for name in ("cifar10", "fashion_mnist"):
        checksums = manifest[name].checksums
        assert isinstance(checksums, dict)
        assert checksums == {f: f"md5:{h}" for f, h in datasets.PUBLISHED_MD5[name].items()}
    assert set(datasets.PUBLISHED_MD5["fashion_mnist"]) == set(fashion_mnist.FILES)
    assert set(datasets.PUBLISHED_MD5["cifar10"]) == {*cifar10.FILES, cifar10.ARCHIVE}
    assert manifest["cifar10"].source == cifar10.URL
    assert "Learning Multiple Layers of Features from Tiny Images" in manifest["cifar10"].licence
    assert manifest["fashion_mnist"].licence.startswith("MIT")


# --- learnability ---------------------------------------------------------------------------------


def _keras() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    keras.utils.set_random_seed(0)
    return keras


def test_a_small_cnn_learns_the_cifar_look_alike_and_confuses_cats_with_dogs() -> None:
    """Well above chance (0.1) in a few epochs; cat/dog, which differ only in the ears, is the
    pair the model mixes up most."""
    keras = _keras()
    data = cifar10.generate(seed=0, n_train=3000, n_test=600)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            layers.Conv2D(16, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(data.x_train / 255.0 - 0.5, data.y_train, batch_size=64, epochs=5, verbose=0)
    predicted = model.predict(data.x_test / 255.0 - 0.5, verbose=0).argmax(axis=1)
    accuracy = float((predicted == data.y_test).mean())
    assert accuracy > 0.5, f"test accuracy {accuracy:.2f} after 5 epochs (chance: 0.1)"
    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (data.y_test, predicted), 1)
    pairs = confusion + confusion.T
    np.fill_diagonal(pairs, 0)
    worst = np.unravel_index(pairs.argmax(), pairs.shape)
    assert set(worst) == {3, 5}, f"most confused pair {worst}, expected cat/dog:\n{confusion}"


def test_a_small_cnn_learns_the_fashion_look_alike() -> None:
    keras = _keras()
    data = fashion_mnist.generate(seed=0, n_train=2000, n_test=500)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(16, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(data.x_train[..., None] / 255.0, data.y_train, batch_size=64, epochs=1, verbose=0)
    first = float(
        (model.predict(data.x_test[..., None] / 255.0, verbose=0).argmax(1) == data.y_test).mean()
    )
    model.fit(data.x_train[..., None] / 255.0, data.y_train, batch_size=64, epochs=2, verbose=0)
    final = float(
        (model.predict(data.x_test[..., None] / 255.0, verbose=0).argmax(1) == data.y_test).mean()
    )
    assert final > 0.7, f"test accuracy {final:.2f} after 3 epochs (chance: 0.1)"
    assert first < 0.99, f"test accuracy {first:.2f} after one epoch: the look-alike is trivial"
