"""Static validation of saved models: Keras built-ins pass, code and custom objects do not."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from deepgrade import artifacts
from deepgrade.errors import InputError

# Keras 3.15 with TensorFlow under numpy 2 warns on every weight save; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


@pytest.fixture(scope="module")
def keras() -> Any:
    import keras

    return keras


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, keras: Any) -> dict[str, Path]:
    """Saved models, built once: a good one and each kind the grader must refuse."""
    from keras import layers

    out = tmp_path_factory.mktemp("models")
    saved: dict[str, Path] = {}

    def save(name: str, model: Any) -> None:
        saved[name] = out / f"{name}.keras"
        model.save(saved[name])

    good = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            layers.Conv2D(4, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(3, activation="softmax"),
        ]
    )
    good.compile(optimizer=keras.optimizers.Adam(0.001), loss="categorical_crossentropy")
    save("good", good)
    save("functional", keras.Model(good.inputs, [good.layers[0].output, good.layers[1].output]))
    save(
        "lambda",
        keras.Sequential([keras.Input((4,)), layers.Lambda(lambda x: x * 2), layers.Dense(2)]),
    )

    @keras.saving.register_keras_serializable(package="student")
    class Custom(layers.Layer):  # type: ignore[misc]
        def call(self, x: Any) -> Any:
            return x

    save("custom", keras.Sequential([keras.Input((4,)), Custom(), layers.Dense(2)]))
    return saved


def _rewrite_config(source: Path, dest: Path, change: Any) -> Path:
    """A copy of `source` whose config.json went through `change(config)`."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(dest, "w") as out:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "config.json":
                config = json.loads(data)
                change(config)
                data = json.dumps(config).encode()
            out.writestr(info.filename, data)
    return dest


def test_missing_artifacts_lists_absent_files_and_links(tmp_path: Path) -> None:
    (tmp_path / "answers.json").write_text("{}")
    (tmp_path / "link.json").symlink_to(tmp_path / "answers.json")
    (tmp_path / "dir.keras").mkdir()
    required = ["answers.json", "history.json", "link.json", "dir.keras"]
    assert artifacts.missing_artifacts(tmp_path, required) == [
        "history.json",
        "link.json",
        "dir.keras",
    ]


def test_builtin_sequential_and_functional_models_pass(models: dict[str, Path]) -> None:
    artifacts.validate_model_file(models["good"])
    artifacts.validate_model_file(models["functional"])
    model = artifacts.load_model(models["good"])
    assert [type(layer).__name__ for layer in model.layers][:2] == ["Conv2D", "MaxPooling2D"]
    assert len(artifacts.load_model(models["functional"]).outputs) == 2


def test_compile_config_is_read_without_compiling(models: dict[str, Path]) -> None:
    config = artifacts.read_compile_config(models["good"])
    assert config is not None
    assert config["optimizer"]["class_name"] == "Adam"
    assert config["optimizer"]["config"]["beta_2"] == pytest.approx(0.999)
    assert config["loss"] == "categorical_crossentropy"
    assert artifacts.read_compile_config(models["lambda"]) is None  # never compiled


def test_lambda_layer_is_refused_statically_and_by_keras(
    models: dict[str, Path], keras: Any
) -> None:
    with pytest.raises(InputError, match="Lambda layer"):
        artifacts.validate_model_file(models["lambda"])
    with pytest.raises(InputError, match="Lambda layer"):
        artifacts.load_model(models["lambda"])
    # Keras' own safe mode, our second wall, refuses the same file.
    with pytest.raises(ValueError, match="Lambda"):
        keras.saving.load_model(models["lambda"], safe_mode=True, compile=False)


def test_custom_registered_layer_is_refused(models: dict[str, Path]) -> None:
    with pytest.raises(InputError, match="custom class 'Custom'") as info:
        artifacts.validate_model_file(models["custom"])
    assert info.value.path == models["custom"]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda c: c["config"]["layers"][1].update(module="os"), "custom class 'Conv2D'"),
        (
            lambda c: c["config"]["layers"][1].update(registered_name="student>Conv2D"),
            "registered object 'student>Conv2D'",
        ),
        (lambda c: c["config"]["layers"][1].update(class_name="TFSMLayer"), "TFSMLayer"),
        (
            lambda c: c["config"]["layers"][1]["config"].update(
                activation={"module": "mymod", "class_name": "function", "config": "evil"}
            ),
            "Python function 'evil'",
        ),
        (
            lambda c: c["config"]["layers"][1]["config"].update(
                activation={"class_name": "__lambda__", "config": {"value": "x"}}
            ),
            "serialized Python lambda",
        ),
        (
            # What Keras writes for `activation=lambda x: x`: base64 of marshalled bytecode.
            lambda c: c["config"]["layers"][1]["config"].update(
                activation={
                    "value": ["4wEAAAAAAAAAAAAAAAEAAAADAAAA8wYAAACXAHwAUwCpAU6pAKkB2gF4", None]
                }
            ),
            "serialized Python code",
        ),
        (lambda c: c.clear(), "does not describe a Keras model"),
    ],
)
def test_tampered_configs_are_refused(
    models: dict[str, Path], tmp_path: Path, change: Any, problem: str
) -> None:
    bad = _rewrite_config(models["good"], tmp_path / "bad.keras", change)
    with pytest.raises(InputError, match=problem):
        artifacts.validate_model_file(bad)


def test_builtin_function_references_pass(models: dict[str, Path], tmp_path: Path) -> None:
    """Keras writes built-in losses and activations as module "builtins", class "function"."""
    builtin = {
        "module": "builtins",
        "class_name": "function",
        "config": "relu",
        "registered_name": "function",
    }
    ok = _rewrite_config(
        models["good"],
        tmp_path / "ok.keras",
        lambda c: c["config"]["layers"][1]["config"].update(activation=builtin),
    )
    artifacts.validate_model_file(ok)


def test_non_zip_missing_config_and_bad_json_are_refused(tmp_path: Path) -> None:
    not_zip = tmp_path / "model.keras"
    not_zip.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(InputError, match="not a zip archive"):
        artifacts.validate_model_file(not_zip)
    with pytest.raises(InputError, match="no such model file"):
        artifacts.load_model(tmp_path / "absent.keras")
    no_config = tmp_path / "noconfig.keras"
    with zipfile.ZipFile(no_config, "w") as archive:
        archive.writestr("metadata.json", "{}")
    with pytest.raises(InputError, match=r"no config\.json"):
        artifacts.validate_model_file(no_config)
    bad_json = tmp_path / "badjson.keras"
    with zipfile.ZipFile(bad_json, "w") as archive:
        archive.writestr("config.json", "{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        artifacts.read_compile_config(bad_json)


def test_zip_bomb_is_refused_before_unpacking(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.keras"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", json.dumps({"class_name": "Sequential"}))
        archive.writestr("model.weights.h5", b"\0" * (64 * 2**20))
    with pytest.raises(InputError, match="compressed suspiciously"):
        artifacts.validate_model_file(bomb)


def test_oversize_model_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(artifacts, "MAX_MODEL_BYTES", 1000)
    big = tmp_path / "big.keras"
    with zipfile.ZipFile(big, "w") as archive:
        archive.writestr("config.json", json.dumps({"class_name": "Sequential"}))
        archive.writestr("model.weights.h5", bytes(range(256)) * 8)
    with pytest.raises(InputError, match="too large once unpacked"):
        artifacts.validate_model_file(big)
