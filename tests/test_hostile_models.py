"""Threat: a saved model whose config.json names something other than Keras' own layers.

Loading a `.keras` file rebuilds whatever its config names. The static check allows Keras
built-ins by exact name in their place (model_allowlist), not anything under a `keras.*`
module: `keras.utils.get_file` as a "layer" and `keras.config.enable_unsafe_deserialization`
as an activation were the building blocks of published safe_mode bypasses. Every model the
course's reference solutions build must still pass, and Keras' own safe mode stays behind it.
"""

from __future__ import annotations

import ast
import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_artifacts import _rewrite_config, keras, models

from deepgrade import artifacts
from deepgrade.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = (keras, models)  # test_artifacts' keras module and saved models, reused here

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

GET_FILE_LAYER = {
    "module": "keras.utils",
    "class_name": "get_file",
    "config": {"fname": "x", "origin": "http://example.invalid/x"},
    "registered_name": None,
}
UNSAFE = {
    "module": "keras.config",
    "class_name": "function",
    "config": "enable_unsafe_deserialization",
    "registered_name": "function",
}


def _layer(config: dict[str, Any], index: int = 1) -> dict[str, Any]:
    layer: dict[str, Any] = config["config"]["layers"][index]
    return layer


def _set_in_layer(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda c: _layer(c)["config"].update({key: value})


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        pytest.param(
            lambda c: c["config"]["layers"].insert(1, GET_FILE_LAYER),
            r"custom class 'get_file' \(module 'keras.utils'\)",
            id="get_file-as-a-layer",
        ),
        pytest.param(
            lambda c: c["config"]["layers"].insert(1, dict(GET_FILE_LAYER, module="keras")),
            "custom class 'get_file'",
            id="get_file-from-keras",
        ),
        pytest.param(
            _set_in_layer("activation", UNSAFE),
            "Python function 'enable_unsafe_deserialization' from 'keras.config'",
            id="unsafe-switch-as-activation",
        ),
        pytest.param(
            lambda c: c["config"]["layers"].insert(1, UNSAFE),
            "function 'enable_unsafe_deserialization' where a layer goes",
            id="unsafe-switch-as-a-layer",
        ),
        pytest.param(
            _set_in_layer("activation", dict(UNSAFE, module="builtins")),
            "Python function 'enable_unsafe_deserialization' from 'builtins'",
            id="unsafe-switch-as-builtin",
        ),
        pytest.param(
            _set_in_layer("activation", "enable_unsafe_deserialization"),
            "'enable_unsafe_deserialization' as an activation",
            id="unsafe-switch-as-string",
        ),
        pytest.param(
            _set_in_layer(
                "kernel_initializer",
                {
                    "module": "builtins",
                    "class_name": "function",
                    "config": "relu",
                    "registered_name": "function",
                },
            ),
            "function 'relu' where an initializer goes",
            id="function-as-initializer",
        ),
        pytest.param(
            _set_in_layer(
                "kernel_initializer",
                {"module": "keras.initializers", "class_name": "function", "config": "zeros"},
            ),
            "function 'zeros' where an initializer goes",
            id="initializer-function",
        ),
        pytest.param(
            _set_in_layer(
                "kernel_initializer",
                {"module": "keras.layers", "class_name": "Dense", "config": {"units": 1}},
            ),
            "layer 'Dense' where an initializer goes",
            id="layer-as-initializer",
        ),
        pytest.param(
            lambda c: c["config"]["layers"].insert(
                1, {"module": "keras.optimizers", "class_name": "Adam", "config": {}}
            ),
            "optimizer 'Adam' where a layer goes",
            id="optimizer-as-layer",
        ),
        pytest.param(
            lambda c: _layer(c).update(module="keras.utils"),
            r"custom class 'Conv2D' \(module 'keras.utils'\)",
            id="layer-from-the-wrong-module",
        ),
        pytest.param(
            lambda c: c["compile_config"].update(
                loss={"module": "builtins", "class_name": "function", "config": "exec"}
            ),
            "Python function 'exec' from 'builtins'",
            id="builtins-exec-as-loss",
        ),
        pytest.param(
            lambda c: c["compile_config"]["optimizer"].update(module="keras.src.saving"),
            r"custom class 'Adam' \(module 'keras.src.saving'\)",
            id="optimizer-from-the-wrong-module",
        ),
        pytest.param(
            lambda c: c["compile_config"]["optimizer"]["config"].update(
                learning_rate={"module": "keras.utils", "class_name": "get_file", "config": {}}
            ),
            "custom class 'get_file'",
            id="get_file-as-learning-rate",
        ),
        pytest.param(
            _set_in_layer("dtype", dict(GET_FILE_LAYER, module="keras")),
            "custom class 'get_file'",
            id="get_file-as-dtype-policy",
        ),
        pytest.param(
            lambda c: c.update(module="keras.layers", class_name="Dense"),
            "layer 'Dense' where a model goes",
            id="top-level-not-a-model",
        ),
        pytest.param(
            lambda c: _layer(c)["config"].update(
                bias_constraint={
                    "module": "keras.layers",
                    "class_name": "TFSMLayer",
                    "config": {"filepath": "/tmp/x"},
                }
            ),
            "TFSMLayer layer",
            id="tfsmlayer-hidden-in-a-constraint",
        ),
        pytest.param(
            lambda c: _layer(c, 0).update(
                class_name="__typespec__", module=None, config={"value": 1}
            ),
            "unsupported kind '__typespec__'",
            id="unknown-marker",
        ),
    ],
)
def test_crafted_configs_are_refused(
    models: dict[str, Path], tmp_path: Path, change: Any, problem: str
) -> None:
    bad = _rewrite_config(models["good"], tmp_path / "bad.keras", change)
    with pytest.raises(InputError, match=problem) as info:
        artifacts.validate_model_file(bad)
    assert info.value.path == bad
    with pytest.raises(InputError, match=problem):  # load_model checks before Keras sees it
        artifacts.load_model(bad)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda c: _layer(c).update(module="keras.src.layers.convolutional"), id="src"),
        pytest.param(_set_in_layer("activation", "leaky_relu"), id="activation-string"),
        pytest.param(
            _set_in_layer(
                "activation",
                {"module": "keras.activations", "class_name": "function", "config": "tanh"},
            ),
            id="activation-function",
        ),
        pytest.param(_set_in_layer("kernel_initializer", "he_normal"), id="initializer-string"),
        pytest.param(_set_in_layer("kernel_regularizer", "l1_l2"), id="regularizer-string"),
    ],
)
def test_builtins_written_other_ways_pass(
    models: dict[str, Path], tmp_path: Path, change: Any
) -> None:
    """Spellings Keras 3 versions write or resolve for the same built-ins are not refused."""
    artifacts.validate_model_file(_rewrite_config(models["good"], tmp_path / "ok.keras", change))


def test_nested_shared_and_mixed_models_pass(tmp_path: Path, keras: Any) -> None:
    """A Sequential inside a Functional, a Functional inside that, shared layers: accepted."""
    from keras import layers

    inner = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(2, 3), layers.Flatten()])
    block_in = keras.Input((72,))
    block = keras.Model(block_in, layers.Dense(4, activation="relu")(block_in), name="block")
    inputs = keras.Input((8, 8, 3))
    shared = layers.Dense(3, activation="softmax", name="shared")
    features = block(inner(inputs))
    outputs = layers.Average()([shared(features), shared(layers.Dropout(0.1)(features))])
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(), metrics=["acc"])
    path = tmp_path / "nested.keras"
    model.save(path)
    kinds = [layer["class_name"] for layer in artifacts._read_config(path)["config"]["layers"]]
    assert kinds[:3] == ["InputLayer", "Sequential", "Functional"] and kinds.count("Dense") == 1
    loaded = artifacts.load_model(path)
    assert loaded.count_params() == model.count_params()
    assert len(loaded.get_layer("shared")._inbound_nodes) == 2


def _solution_namespace(
    exercise: str, keras: Any, names: set[str], params: dict[str, Any]
) -> dict[str, Any]:
    """Run, from the reference solution, the function definitions, the assignments to
    `names` and their `.compile(...)` calls: the models the solution builds, without data."""
    notebook = json.loads((ROOT / "solutions" / exercise / f"{exercise}.ipynb").read_text())
    namespace: dict[str, Any] = {"keras": keras, **params}
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        for stmt in ast.parse("".join(cell["source"])).body:
            target = None
            if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name):
                target = stmt.targets[0].id
            elif (
                isinstance(stmt, ast.Expr)
                and isinstance(stmt.value, ast.Call)
                and isinstance(stmt.value.func, ast.Attribute)
                and stmt.value.func.attr == "compile"
                and isinstance(stmt.value.func.value, ast.Name)
            ):
                target = stmt.value.func.value.id
            if isinstance(stmt, ast.FunctionDef) or target in names:
                exec(compile(ast.Module([stmt], []), exercise, "exec"), namespace)
    return namespace


# exercise: (the profile values its model code reads, the models a student saves)
SOLUTIONS = {
    "signs_cnn": ({}, ("optimizer", "model", "layer_outputs", "activation_model")),
    "bn_discovery": ({"WIDTH": 40}, ("model",)),
    "fashion_vgg": ({"WIDTH": 64}, ("model", "lenet")),
    "catdog_split": ({}, ("model",)),
}


@pytest.mark.parametrize("exercise", sorted(SOLUTIONS))
def test_every_reference_solution_model_passes(exercise: str, tmp_path: Path, keras: Any) -> None:
    params, names = SOLUTIONS[exercise]
    namespace = _solution_namespace(exercise, keras, set(names), params)
    saved = [name for name in names if isinstance(namespace.get(name), keras.Model)]
    assert saved, f"no model built from the {exercise} solution"
    if "build_model" in namespace and exercise == "signs_cnn":  # the hidden_model artifact
        namespace["hidden_model"] = namespace["build_model"](4, 4, 4, 8, 8, 6)
        saved.append("hidden_model")
    if exercise == "fashion_vgg":  # the hidden_vgg artifact: another width
        namespace["hidden_vgg"] = namespace["build_vgg"](32)
        saved.append("hidden_vgg")
    for name in saved:
        path = tmp_path / f"{name}.keras"
        namespace[name].save(path)
        loaded = artifacts.load_model(path)  # both walls: the allow-list and safe_mode
        assert loaded.count_params() == namespace[name].count_params(), name


def test_the_resnet1_models_pass(tmp_path: Path, keras: Any) -> None:
    """tta_resnet1's network (Add, Activation, he_normal, L2) and its augmenting trainer."""
    from keras import layers

    from deepgrade.models import resnet1

    network = resnet1.build(input_shape=(16, 16, 3), num_classes=4)
    inputs = keras.Input((16, 16, 3))
    augmented = layers.RandomFlip("horizontal")(layers.RandomTranslation(0.1, 0.1)(inputs))
    trainer = keras.Model(inputs, network(augmented))
    trainer.compile(
        optimizer=keras.optimizers.Adam(0.001),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    for name, model in (("network", network), ("trainer", trainer)):
        path = tmp_path / f"{name}.keras"
        model.save(path)
        assert artifacts.load_model(path).count_params() == model.count_params()


def test_every_course_layer_is_allowed() -> None:
    """The layers the six exercises' sources and the course models use are on the list."""
    from deepgrade import model_allowlist

    used: set[str] = set()
    for path in [*ROOT.glob("source/*/*.ipynb"), *ROOT.glob("src/deepgrade/models/*.py")]:
        used |= set(re.findall(r"layers\.([A-Z][A-Za-z0-9]*)\(", path.read_text()))
    assert used, "no layers found in the course sources"
    assert used <= model_allowlist.COURSE_LAYERS, used - model_allowlist.COURSE_LAYERS


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def test_keras_lower_bound_is_past_the_published_safe_mode_bypasses(keras: Any) -> None:
    """keras>=3.13.2: CVE-2025-1550 (3.9), -8747/-9906 (3.11.0), -9905/-49655 (3.11.3),
    CVE-2026-1462 (TFSMLayer, 3.13.2); see the comment in pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    bounds = [d for d in project["project"]["dependencies"] if d.startswith("keras")]
    assert len(bounds) == 1 and ">=" in bounds[0], bounds
    assert _version(bounds[0].split(">=")[1]) >= (3, 13, 2)
    assert _version(keras.__version__) >= _version(bounds[0].split(">=")[1])


@pytest.mark.parametrize(
    ("module", "class_name", "problem"),
    [
        ("keras.src.backend.torch.optimizers.torch_adam", "Adam", None),
        ("keras.src.backend.jax.optimizers", "Adam", None),
        ("keras.src.backend.torch.layers", "Adam", "custom class 'Adam'"),
        ("keras.src.backend.torch.optimizers", "TFSMLayer", "TFSMLayer"),
    ],
)
def test_backend_optimizers_pass_and_nothing_else_under_backend(
    tmp_path: Path, keras: Any, module: str, class_name: str, problem: str | None
) -> None:
    """The PyTorch backend saves its Adam from its own module: graded like keras.optimizers'
    (every backend's model gets the same points), while the backends' other modules stay
    closed."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(0.001), loss="mse")
    model.save(tmp_path / "m.keras")

    def change(config: dict[str, Any]) -> None:
        config["compile_config"]["optimizer"].update(module=module, class_name=class_name)

    path = _rewrite_config(tmp_path / "m.keras", tmp_path / "changed.keras", change)
    if problem is None:
        artifacts.validate_model_file(path)
    else:
        with pytest.raises(InputError, match=problem):
            artifacts.validate_model_file(path)
