"""deepgrade.models: the resnet1 architecture, importing the author's .h5, the cached files."""

from __future__ import annotations

import json
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepgrade import artifacts, models
from deepgrade.cli import main
from deepgrade.errors import DeepgradeError, InputError
from deepgrade.models import resnet1

# Keras 3.15 with TensorFlow under numpy 2 warns on every weight save; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def keras() -> Any:
    import keras

    return keras


@pytest.fixture(scope="module")
def net(keras: Any) -> Any:
    return resnet1.build()


@pytest.fixture(scope="module")
def legacy_h5(tmp_path_factory: pytest.TempPathFactory, net: Any) -> Path:
    """resnet1 saved the way the author's file was: the whole model in legacy HDF5."""
    path = tmp_path_factory.mktemp("author") / "resnet1.h5"
    net.save(path)
    return path


def _probe() -> np.ndarray:
    return np.random.default_rng(1).uniform(-0.5, 0.5, (3, 32, 32, 3)).astype(np.float32)


def test_architecture_is_resnet20_v1(net: Any) -> None:
    """The numbers the Keras cifar10_resnet example prints for ResNet20v1: 274,442 / 273,066."""
    assert net.count_params() == resnet1.PARAMS == 274_442
    assert sum(int(np.prod(w.shape)) for w in net.trainable_weights) == 273_066
    assert tuple(net.input_shape) == (None, 32, 32, 3)
    assert tuple(net.output_shape) == (None, 10)
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds.count("Conv2D") == 21  # 1 + 3 stacks x 3 blocks x 2 + 2 projections
    assert kinds.count("BatchNormalization") == 19  # projections have none
    assert kinds.count("Add") == 9
    assert kinds[-3:] == ["GlobalAveragePooling2D", "Flatten", "Dense"]
    convs = [layer for layer in net.layers if type(layer).__name__ == "Conv2D"]
    assert [c.filters for c in convs].count(16) == 7
    assert {c.filters for c in convs} == {16, 32, 64}
    assert (
        sorted(c.kernel_size for c in convs if c.strides == (2, 2)) == [(1, 1)] * 2 + [(3, 3)] * 2
    )
    for conv in convs:
        assert conv.kernel_regularizer.get_config() == {"l2": pytest.approx(1e-4)}
        assert type(conv.kernel_initializer).__name__ == "HeNormal"
    assert net.layers[-1].activation.__name__ == "softmax"
    assert net.layers[-1].units == 10


def test_lr_schedule_and_preprocess() -> None:
    assert [resnet1.lr_schedule(e) for e in (0, 80, 81, 121, 161, 181)] == pytest.approx(
        [1e-3, 1e-3, 1e-4, 1e-5, 1e-6, 5e-7]
    )
    x = resnet1.preprocess(np.array([0, 255], dtype=np.uint8))
    assert x.dtype == np.float32 and x.tolist() == [-0.5, 0.5]


def test_built_model_passes_the_graders_validation(net: Any, tmp_path: Path) -> None:
    path = tmp_path / "resnet1.keras"
    net.save(path)
    artifacts.validate_model_file(path)
    loaded = artifacts.load_model(path)  # safe_mode=True, compile=False
    np.testing.assert_allclose(
        loaded.predict(_probe(), verbose=0), net.predict(_probe(), verbose=0)
    )
    # A .keras file (e.g. trained elsewhere with `deepgrade models train`) imports as well.
    imported = models.import_model("resnet1", path, tmp_path / "cache")
    recipe = json.loads((imported.parent / "RECIPE.json").read_text())
    assert recipe["source_sha256"] == models._cache.sha256(path)


def test_import_legacy_h5(legacy_h5: Path, net: Any, tmp_path: Path) -> None:
    import h5py

    with h5py.File(legacy_h5, "r") as f:  # the legacy format, as Keras 2 wrote it
        assert "model_config" in f.attrs and "model_weights" in f
    path = models.import_model("resnet1", legacy_h5, tmp_path)
    assert path == tmp_path / "models" / "resnet1" / "full" / "resnet1.keras"
    assert models.ensure("resnet1", "full", tmp_path) == path
    recipe = json.loads((path.parent / "RECIPE.json").read_text())
    assert recipe["how"] == "imported" and recipe["params"] == resnet1.PARAMS
    assert recipe["source_sha256"] == models._cache.sha256(legacy_h5)
    loaded = artifacts.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(_probe(), verbose=0), net.predict(_probe(), verbose=0), atol=1e-6
    )
    path.write_bytes(path.read_bytes() + b"x")  # changed after import: refused, not served
    with pytest.raises(DeepgradeError, match="changed since"):
        models.ensure("resnet1", "full", tmp_path)


def test_import_keras2_h5(legacy_h5: Path, net: Any, tmp_path: Path) -> None:
    """A file as Keras 2 wrote it (the author's era): Keras 2's config and version attributes
    grafted onto legacy HDF5 weights; Keras 3's legacy loader must rebuild and convert it."""
    import shutil

    import h5py

    attrs = json.loads((REPO / "tests" / "fixtures" / "resnet1_keras2_attrs.json").read_text())
    source = tmp_path / "resnet1.h5"
    shutil.copyfile(legacy_h5, source)
    with h5py.File(source, "r+") as f:
        for key in ("model_config", "training_config"):
            f.attrs[key] = json.dumps(attrs[key])
        f.attrs["keras_version"] = f["model_weights"].attrs["keras_version"] = attrs[
            "keras_version"
        ]
    path = models.import_model("resnet1", source, tmp_path / "cache")
    loaded = artifacts.load_model(path)
    assert loaded.count_params() == resnet1.PARAMS
    np.testing.assert_allclose(
        loaded.predict(_probe(), verbose=0), net.predict(_probe(), verbose=0), atol=1e-6
    )


@pytest.fixture(scope="module")
def wrong_files(tmp_path_factory: pytest.TempPathFactory, keras: Any) -> dict[str, Path]:
    from keras import layers

    out = tmp_path_factory.mktemp("wrong")
    files = {"text": out / "notes.h5", "suffix": out / "resnet1.pt"}
    files["text"].write_text("not a model")
    files["suffix"].write_bytes(b"\x00")

    def small(shape: tuple[int, ...], activation: str) -> Any:
        inputs = keras.Input(shape)
        x = layers.Conv2D(2, 3)(inputs)
        x = layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, layers.Dense(10, activation=activation)(x))

    for name, model in (
        ("mnist", small((28, 28, 1), "softmax")),
        ("logits", small((32, 32, 3), None)),
    ):
        files[name] = out / f"{name}.h5"
        model.save(files[name])
    files["weights"] = out / "resnet1.weights.h5"
    small((32, 32, 3), "softmax").save_weights(files["weights"])
    return files


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("text", "not an HDF5 file"),
        ("suffix", "expected the trained model as a Keras .h5"),
        ("mnist", r"input is \(None, 28, 28, 1\)"),
        ("logits", "not a softmax"),
        ("weights", "without a model_config"),
        ("missing", "no such file"),
    ],
)
def test_wrong_file_refused(
    wrong_files: dict[str, Path], legacy_h5: Path, tmp_path: Path, kind: str, problem: str
) -> None:
    source = wrong_files.get(kind, tmp_path / "absent.h5")
    cached = tmp_path / "models" / "resnet1" / "full" / "resnet1.keras"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"earlier import")
    with pytest.raises(InputError, match=problem) as info:
        models.import_model("resnet1", source, tmp_path)
    assert info.value.path == source
    assert cached.read_bytes() == b"earlier import"  # a refused file changes nothing


def test_ensure_full_missing_names_both_commands(tmp_path: Path) -> None:
    with pytest.raises(DeepgradeError) as info:
        models.ensure("resnet1", "full", tmp_path)
    message = str(info.value)
    assert "deepgrade models import resnet1 PATH" in message
    assert "deepgrade models train resnet1 --profile full" in message
    assert resnet1.SOURCE in message


def test_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(
        DeepgradeError, match=r"unknown model 'vgg' \(known: mobilenetv2, resnet1\)"
    ):
        models.ensure("vgg", "smoke", tmp_path)
    with pytest.raises(DeepgradeError, match="unknown model profile 'huge'"):
        models.ensure("resnet1", "huge", tmp_path)


TINY = resnet1.Recipe(
    epochs=1, seed=0, batch_size=32, data="synth", sizes=(("n_train", 32), ("n_test", 16))
)


def test_train_full_from_real_format_files(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`deepgrade models train resnet1 --profile full` on (tiny) imported CIFAR-10 batches."""
    import hashlib

    from deepgrade import datasets
    from deepgrade.datasets import cifar10

    source = tmp_path / "cifar-10-batches-py"
    cifar10.write(source, cifar10.generate(seed=3, n_train=40, n_test=20))
    md5s = {f: hashlib.md5((source / f).read_bytes()).hexdigest() for f in cifar10.FILES}
    datasets.import_dataset("cifar10", source, tmp_path, md5s=md5s)
    monkeypatch.setenv("DEEPGRADE_CACHE", str(tmp_path))
    argv = ["models", "train", "resnet1", "--profile", "full", "--epochs", "1", "--seed", "2"]
    assert main(argv) == 0
    path = models.ensure("resnet1", "full", tmp_path)
    assert f"into {path}" in capsys.readouterr().out
    model = artifacts.load_model(path)  # the bare network: no augmentation layers kept
    assert model.count_params() == resnet1.PARAMS
    assert not any("Random" in type(layer).__name__ for layer in model.layers)
    recipe = json.loads((path.parent / "RECIPE.json").read_text())
    assert recipe["how"] == "trained" and (recipe["epochs"], recipe["seed"]) == (1, 2)
    assert recipe["data"] == {"dataset": "cifar10", "variant": "real", "sizes": {}}
    assert (recipe["n_train"], recipe["n_test"]) == (40, 20)
    assert 0 <= recipe["accuracy"] <= 1 and recipe["seconds"] > 0


def test_ensure_smoke_trains_once_and_caches(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Graders asking at once wait on the lock; the second finds the first one's file."""
    import keras

    monkeypatch.setitem(resnet1.RECIPES, "smoke", TINY)
    seen: list[tuple[int, int, int]] = []

    def fake_train(x_train: Any, y_train: Any, x_test: Any, y_test: Any, **kw: Any) -> Any:
        seen.append((len(x_train), len(x_test), kw["epochs"]))
        time.sleep(0.5)
        model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten()])
        return resnet1.Trained(model=model, accuracy=0.5, seconds=0.5, epochs=kw["epochs"])

    monkeypatch.setattr(resnet1, "train", fake_train)
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(models.ensure("resnet1", "smoke", tmp_path)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    path = tmp_path / "models" / "resnet1" / "smoke" / "resnet1.keras"
    assert results == [path, path]
    assert seen == [(32, 16, 1)]  # trained once, on the look-alike at the recipe's sizes
    recipe = json.loads((path.parent / "RECIPE.json").read_text())
    assert recipe["data"] == {"dataset": "cifar10", "variant": "synth", "sizes": dict(TINY.sizes)}
    mtime = path.stat().st_mtime_ns
    assert models.ensure("resnet1", "smoke", tmp_path) == path
    assert len(seen) == 1 and path.stat().st_mtime_ns == mtime  # cached, not trained again
    # A changed recipe (more epochs) makes the cached file stale: trained again.
    monkeypatch.setitem(resnet1.RECIPES, "smoke", resnet1.Recipe(**{**vars(TINY), "epochs": 2}))
    models.ensure("resnet1", "smoke", tmp_path)
    assert seen[-1] == (32, 16, 2)


@pytest.mark.parametrize(
    "name", sorted(n for n, m in models.MODELS.items() if "smoke" in m.RECIPES)
)
def test_every_smoke_recipe_ships_its_trained_file(name: str) -> None:
    """A recipe changed without `scripts/ship-smoke-models` would train on each host, where
    another CPU family trains another model (the reason the files are shipped): caught here."""
    found = models.shipped(name)
    assert found is not None, f"run scripts/ship-smoke-models {name} and recalibrate"
    path, info = found
    artifacts.validate_model_file(path)  # loads in the grader's safe mode
    assert info["model"] == name and info["profile"] == "smoke" and 0 < info["accuracy"] <= 1


def test_ensure_smoke_copies_the_shipped_file_and_never_trains(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def no_training(*args: Any, **kw: Any) -> Any:
        raise AssertionError("trained although a current file is shipped")

    monkeypatch.setattr(resnet1, "train", no_training)
    path = models.ensure("resnet1", "smoke", tmp_path)
    assert path == tmp_path / "models" / "resnet1" / "smoke" / "resnet1.keras"
    shipped_path, info = models.shipped("resnet1")  # type: ignore[misc]
    assert path.read_bytes() == shipped_path.read_bytes()
    recipe = json.loads((path.parent / "RECIPE.json").read_text())
    assert recipe["accuracy"] == info["accuracy"] and recipe["epochs"] == resnet1.SMOKE.epochs
    mtime = path.stat().st_mtime_ns
    assert models.ensure("resnet1", "smoke", tmp_path) == path
    assert path.stat().st_mtime_ns == mtime  # copied once, then the cache entry is reused


def test_a_shipped_file_unlike_its_record_is_not_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A shipped file whose bytes are not the ones its .json records (a half-pulled LFS
    pointer, an edit) is not mounted: the model is trained as when none is shipped."""
    shipped_path, _ = models.shipped("resnet1")  # type: ignore[misc]
    fake = tmp_path / "shipped"
    fake.mkdir()
    (fake / "resnet1.json").write_bytes(shipped_path.with_suffix(".json").read_bytes())
    (fake / "resnet1.keras").write_bytes(shipped_path.read_bytes()[:-1] + b"x")
    monkeypatch.setattr(models, "SHIPPED", fake)
    assert models.shipped("resnet1") is None
    (fake / "resnet1.keras").unlink()
    assert models.shipped("resnet1") is None


def test_ship_trains_afresh_and_records_what_ensure_then_copies(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """scripts/ship-smoke-models: trained in a cache of its own (never the cached file), the
    record carries the sha256 shipped() checks, and ensure() then copies it, untrained."""
    import keras

    monkeypatch.setitem(resnet1.RECIPES, "smoke", TINY)
    monkeypatch.setattr(models, "SHIPPED", tmp_path / "shipped")
    trained: list[int] = []

    def fake_train(x_train: Any, y_train: Any, x_test: Any, y_test: Any, **kw: Any) -> Any:
        trained.append(kw["epochs"])
        model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten()])
        return resnet1.Trained(model=model, accuracy=0.25, seconds=0.5, epochs=kw["epochs"])

    monkeypatch.setattr(resnet1, "train", fake_train)
    target = models.ship("resnet1")
    assert target == tmp_path / "shipped" / "resnet1.keras" and trained == [TINY.epochs]
    record = json.loads(target.with_suffix(".json").read_text())
    assert record["accuracy"] == 0.25 and record["trained_on"]
    assert models.shipped("resnet1") == (target, record)
    path = models.ensure("resnet1", "smoke", tmp_path / "cache")
    assert path.read_bytes() == target.read_bytes() and trained == [TINY.epochs]


def test_smoke_sizes_match_the_tta_spec() -> None:
    """The smoke model trains on the same look-alike the TTA exercise's smoke profile mounts."""
    spec = REPO / "autograder" / "tta_resnet1" / "spec.toml"
    smoke = tomllib.loads(spec.read_text())["profiles"]["smoke"]
    assert smoke["data"] == resnet1.SMOKE.data
    assert smoke.get("data_sizes", {}).get("cifar10", {}) == dict(resnet1.SMOKE.sizes)


def test_cli_lists_models_and_refuses_bad_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "models" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["models", "train", "--help"])
    assert "--profile {smoke,full}" in capsys.readouterr().out
    monkeypatch.setenv("DEEPGRADE_CACHE", str(tmp_path))
    assert main(["models", "import", "resnet1", str(tmp_path / "nope.h5")]) == 2
    assert "nope.h5: no such file" in capsys.readouterr().err
    assert main(["models", "train", "resnet1", "--profile", "smoke", "--epochs", "0"]) == 2
    assert "epochs must be an integer >= 1" in capsys.readouterr().err
