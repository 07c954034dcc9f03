"""deepgrade.models' mobilenetv2: importing ImageNet's no-top weights file, the smoke base."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepgrade import artifacts, models
from deepgrade.cli import main
from deepgrade.errors import DeepgradeError, InputError
from deepgrade.models import mobilenetv2

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


def _save_legacy_weights(model: Any, path: Path) -> None:
    """Write weights as Keras Applications' files are written: Keras 2's save_weights to .h5
    (layer_names and weight_names attributes, one group per layer)."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)


@pytest.fixture(scope="module")
def source_net() -> Any:
    """A MobileNetV2 0.35 without top and without downloaded weights, its weights perturbed so
    an import that silently kept fresh weights would show."""
    import keras

    keras.utils.set_random_seed(7)
    net = mobilenetv2.build(96, 0.35)
    rng = np.random.default_rng(3)
    net.set_weights([w + rng.normal(0, 0.01, w.shape).astype(w.dtype) for w in net.get_weights()])
    return net


@pytest.fixture(scope="module")
def weights_h5(tmp_path_factory: pytest.TempPathFactory, source_net: Any) -> Path:
    path = tmp_path_factory.mktemp("imagenet") / (
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5"
    )
    _save_legacy_weights(source_net, path)
    return path


def test_real_format_file_is_legacy_weights(weights_h5: Path) -> None:
    import h5py

    with h5py.File(weights_h5, "r") as handle:
        assert "model_config" not in handle.attrs and "layer_names" in handle.attrs
        names = [n.decode() if isinstance(n, bytes) else n for n in handle.attrs["layer_names"]]
    assert names[0] == "input_layer" or "Conv1" in names
    assert "block_16_project" in names and "predictions" not in names


def test_import_weights(weights_h5: Path, source_net: Any, tmp_path: Path) -> None:
    path = models.import_model("mobilenetv2", weights_h5, tmp_path)
    assert path == tmp_path / "models" / "mobilenetv2" / "full" / "mobilenetv2.keras"
    assert models.ensure("mobilenetv2", "full", tmp_path) == path
    recipe = json.loads((path.parent / "RECIPE.json").read_text())
    assert recipe["how"] == "imported" and recipe["alpha"] == 0.35
    assert recipe["input_size"] == mobilenetv2.FULL_INPUT
    assert recipe["source_sha256"] == models._cache.sha256(weights_h5)
    base = artifacts.load_model(path)  # passes the grader's static validation, safe mode
    assert tuple(base.input_shape) == (None, 160, 160, 3)
    assert len(base.layers) == mobilenetv2.N_LAYERS
    assert [w.shape for w in base.get_weights()] == [w.shape for w in source_net.get_weights()]
    for got, want in zip(base.get_weights(), source_net.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)


def test_full_alpha_one_matches_keras_applications() -> None:
    """The course's base: 2,257,984 parameters, 154 layers, 5x5x1280 features at 160x160."""
    base = mobilenetv2.build(mobilenetv2.FULL_INPUT, 1.0)
    assert base.count_params() == mobilenetv2.PARAMS
    assert len(base.layers) == mobilenetv2.N_LAYERS
    assert tuple(base.output_shape) == (None, 5, 5, 1280)


@pytest.fixture(scope="module")
def wrong_files(tmp_path_factory: pytest.TempPathFactory, source_net: Any) -> dict[str, Path]:
    import h5py
    import keras

    out = tmp_path_factory.mktemp("wrong")
    files = {"text": out / "notes.h5", "suffix": out / "weights.pt"}
    files["text"].write_text("not weights")
    files["suffix"].write_bytes(b"\x00")
    files["model"] = out / "whole.h5"
    source_net.save(files["model"])  # a whole model, not the weights file
    files["top"] = out / "with_top.h5"
    _save_legacy_weights(
        keras.applications.MobileNetV2(
            input_shape=(96, 96, 3), alpha=0.35, include_top=True, weights=None, classes=3
        ),
        files["top"],
    )
    inputs = keras.Input((32, 32, 3))
    other = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    files["other"] = out / "other.h5"
    _save_legacy_weights(other, files["other"])
    files["renamed"] = out / "renamed.h5"
    _save_legacy_weights(source_net, files["renamed"])
    with h5py.File(files["renamed"], "r+") as handle:
        names = [n.decode() if isinstance(n, bytes) else n for n in handle.attrs["layer_names"]]
        handle.move("Conv1", "conv_first")
        handle.attrs["layer_names"] = [
            ("conv_first" if n == "Conv1" else n).encode() for n in names
        ]
    return files


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("text", "not an HDF5 file"),
        ("suffix", r"weights file \(\.h5\)"),
        ("model", "a whole saved model"),
        ("top", "include_top=True"),
        ("other", "not MobileNetV2 weights"),
        ("renamed", "its layers are not MobileNetV2's: 'conv_first' where MobileNetV2 has 'Conv1'"),
        ("missing", "no such file"),
    ],
)
def test_wrong_file_refused(
    wrong_files: dict[str, Path], tmp_path: Path, kind: str, problem: str
) -> None:
    source = wrong_files.get(kind, tmp_path / "absent.h5")
    cached = tmp_path / "models" / "mobilenetv2" / "full" / "mobilenetv2.keras"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"earlier import")
    with pytest.raises(InputError, match=problem) as info:
        models.import_model("mobilenetv2", source, tmp_path)
    assert info.value.path == source
    assert cached.read_bytes() == b"earlier import"  # a refused file changes nothing


def test_full_is_imported_never_trained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(DeepgradeError) as info:
        models.ensure("mobilenetv2", "full", tmp_path)
    message = str(info.value)
    assert "deepgrade models import mobilenetv2 PATH" in message
    assert "_1.0_160_no_top.h5" in message and "models train" not in message
    monkeypatch.setenv("DEEPGRADE_CACHE", str(tmp_path))
    assert main(["models", "train", "mobilenetv2", "--profile", "full"]) == 2
    assert "not trained here" in capsys.readouterr().err


def _digests(images: np.ndarray) -> set[bytes]:
    import hashlib

    return {hashlib.sha256(image.tobytes()).digest() for image in images}


def test_pretraining_never_sees_the_exercises_images(tmp_path: Path) -> None:
    """The smoke base learns from its own draw of the look-alike: not one image of it is an
    image transfer_mobilenet trains or is graded on (the smoke profile's data, seed 0)."""
    from deepgrade import datasets
    from deepgrade.datasets import cifar10
    from deepgrade.exercise import load_exercise

    recipe = mobilenetv2.SMOKE
    assert recipe.data_seed != 0
    seen = mobilenetv2.training_data(recipe)
    spec = load_exercise(Path(__file__).resolve().parents[1] / "autograder", "transfer_mobilenet")
    smoke = spec.profile("smoke")
    assert smoke.data == "synth" and "mobilenetv2" in spec.models
    graded = cifar10.load(
        datasets.ensure("cifar10", "synth", tmp_path, sizes=smoke.data_sizes["cifar10"])
    )
    pretrained_on = _digests(seen.x_train) | _digests(seen.x_test)
    exercise = _digests(graded.x_train) | _digests(graded.x_test)
    assert len(pretrained_on) > 3000 and len(exercise) > 5000
    assert not pretrained_on & exercise
    # Its training split: every cat and dog of the draw, others_per_class of each other class.
    counts = np.bincount(seen.y_train, minlength=10)
    drawn = dict(recipe.sizes)["n_train"] // 10
    assert [counts[c] for c in mobilenetv2.PETS] == [drawn, drawn]
    others = [n for c, n in enumerate(counts) if c not in mobilenetv2.PETS]
    assert others == [recipe.others_per_class] * 8


def test_pretraining_refuses_the_graded_draw() -> None:
    import dataclasses

    with pytest.raises(ValueError, match="seed > 0"):
        mobilenetv2.training_data(dataclasses.replace(mobilenetv2.SMOKE, data_seed=0))


TINY = mobilenetv2.Recipe(
    epochs=1, seed=0, batch_size=16, data="synth", sizes=(("n_train", 40), ("n_test", 20))
)


def test_smoke_base_trained_once_and_rebuilt_when_its_recipe_changes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The real pretraining on a tiny look-alike: the cached file is the bare base (no head),
    with the recipe's width and momentum; a changed field (alpha) trains it again."""
    monkeypatch.setitem(mobilenetv2.RECIPES, "smoke", TINY)
    path = models.ensure("mobilenetv2", "smoke", tmp_path)
    assert path == tmp_path / "models" / "mobilenetv2" / "smoke" / "mobilenetv2.keras"
    base = artifacts.load_model(path)
    assert tuple(base.input_shape) == (None, 32, 32, 3)
    assert tuple(base.output_shape) == (None, 1, 1, 1280)
    assert len(base.layers) == mobilenetv2.N_LAYERS
    assert not any(type(layer).__name__ == "Dense" for layer in base.layers)
    norms = [layer for layer in base.layers if type(layer).__name__ == "BatchNormalization"]
    momenta = [layer.momentum for layer in norms]
    assert momenta and all(m == pytest.approx(0.9) for m in momenta)
    recipe = json.loads((path.parent / "RECIPE.json").read_text())
    assert recipe["alpha"] == 0.35 and recipe["classes"] == 10
    assert recipe["data"]["seed"] == TINY.data_seed != 0  # its own draw, not the graded one
    assert recipe["n_train"] == 40 and 0 <= recipe["accuracy"] <= 1
    mtime = path.stat().st_mtime_ns
    assert models.ensure("mobilenetv2", "smoke", tmp_path) == path
    assert path.stat().st_mtime_ns == mtime  # cached

    seen: list[float] = []

    def fake_train(*args: Any, recipe: mobilenetv2.Recipe, **kw: Any) -> Any:
        seen.append(recipe.alpha)
        return mobilenetv2.Trained(
            model=mobilenetv2.build(32, recipe.alpha), accuracy=0.5, seconds=0.1, epochs=1
        )

    monkeypatch.setattr(mobilenetv2, "train", fake_train)
    monkeypatch.setitem(
        mobilenetv2.RECIPES, "smoke", mobilenetv2.Recipe(**{**vars(TINY), "alpha": 0.5})
    )
    models.ensure("mobilenetv2", "smoke", tmp_path)
    assert seen == [0.5]  # the recipe's own fields reach the training, and retrain it
    assert json.loads((path.parent / "RECIPE.json").read_text())["alpha"] == 0.5


def test_base_pretrained_on_upscaled_images_takes_its_own_size() -> None:
    """A recipe whose input_size is not 32 (the smoke base: 64, so MobileNetV2's five halvings
    keep the look-alike's ears) trains on the 32x32 images through a Resizing layer, and
    returns the bare base at that size: the exercise's IMG_SIZE is read from it."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    y = np.arange(20) % 10
    recipe = mobilenetv2.Recipe(
        epochs=1, seed=0, batch_size=10, data="synth", input_size=64, alpha=0.35
    )
    trained = mobilenetv2.train(x, y, x, y, epochs=1, seed=0, batch_size=10, recipe=recipe)
    assert tuple(trained.model.input_shape) == (None, 64, 64, 3)
    assert tuple(trained.model.output_shape) == (None, 2, 2, 1280)
    assert len(trained.model.layers) == mobilenetv2.N_LAYERS
    assert 0 <= trained.accuracy <= 1
