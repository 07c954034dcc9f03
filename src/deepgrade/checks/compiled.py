"""What model.compile was given, read from the saved model file without compiling it.

Keras saves the optimizer as {"class_name", "config"} and the loss as a name, a built-in
function reference or a loss object; these helpers recognise all three spellings, so a student
who writes `loss=keras.losses.CategoricalCrossentropy()` is not failed for style.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deepgrade.checks.expect import close, fail

# Loss objects' class names and the function names they stand for.
_LOSS_CLASSES = {
    "CategoricalCrossentropy": "categorical_crossentropy",
    "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy",
    "BinaryCrossentropy": "binary_crossentropy",
    "MeanSquaredError": "mean_squared_error",
    "MeanAbsoluteError": "mean_absolute_error",
}


def compile_config(path: Path) -> dict[str, Any]:
    """The saved model's compile settings (optimizer, loss, metrics).

    The file is validated first: a model the grader refuses earns no points for its settings.
    Fails the check when the model was saved uncompiled.
    """
    from deepgrade.artifacts import read_compile_config, validate_model_file

    validate_model_file(path)
    config = read_compile_config(path)
    if config is None:
        fail(
            f"{path.name} was saved without compile settings: call model.compile(...) "
            "before model.fit"
        )
    return config


def optimizer_steps(path: Path) -> int | None:
    """How many updates the saved optimizer made: model.fit's batches over all its epochs
    (ceil(n / batch_size) per epoch), so a check can tell the batch size the exercise fixes.

    Read from the weights inside the .keras file (the optimizer's first variable is its
    iteration count) after the file is validated; None when it was saved without the
    optimizer's state (uncompiled, or `include_optimizer=False`).
    """
    import zipfile

    import h5py
    import numpy as np

    from deepgrade.artifacts import validate_model_file
    from deepgrade.errors import InputError

    validate_model_file(path)
    try:
        with (
            zipfile.ZipFile(path) as archive,
            archive.open("model.weights.h5") as handle,
            h5py.File(handle, "r") as weights,
        ):
            iterations = weights.get("optimizer/vars/0")
            if not isinstance(iterations, h5py.Dataset) or iterations.shape != ():
                return None
            value = np.asarray(iterations[()])
    except KeyError:  # no weights file: nothing was saved with the model
        return None
    except (OSError, zipfile.BadZipFile, RuntimeError, ValueError) as exc:
        raise InputError(path, f"damaged .keras file ({type(exc).__name__})") from None
    return int(value) if np.issubdtype(value.dtype, np.integer) else None


def loss_name(loss: Any) -> str | None:
    """The Keras function name of a saved loss ("categorical_crossentropy"), or None when it
    is not a plain built-in one (custom, from_logits, label smoothing)."""
    if isinstance(loss, str):
        return loss
    if not isinstance(loss, dict):
        return None
    config = loss.get("config")
    if loss.get("class_name") == "function":
        return config if isinstance(config, str) else None
    name = _LOSS_CLASSES.get(str(loss.get("class_name")))
    if (
        name is None
        or not str(loss.get("module", "")).startswith("keras")
        or not isinstance(config, dict)
        or config.get("from_logits", False)
        or config.get("label_smoothing", 0.0)
    ):
        return None
    return name


def expect_loss(config: Mapping[str, Any], expected: str, *, hint: str = "") -> None:
    """model.compile(loss=...) was `expected` (a Keras function name), in any spelling."""
    if loss_name(config.get("loss")) != expected:
        fail(f"the loss should be loss={expected!r}" + (f" ({hint})" if hint else ""))


def expect_optimizer(
    config: Mapping[str, Any],
    expected: str,
    settings: Mapping[str, float],
    *,
    spelled: str = "",
) -> None:
    """model.compile(optimizer=...) was the Keras optimizer class `expected` (e.g. "Adam")
    with each of `settings` (e.g. {"learning_rate": 0.001}) within float32 round-off.

    `spelled` is how the message writes the right call; by default the class with `settings`.
    """
    optimizer = config.get("optimizer")
    saved = optimizer.get("config", {}) if isinstance(optimizer, dict) else {}
    saved = saved if isinstance(saved, dict) else {}
    right_class = isinstance(optimizer, dict) and optimizer.get("class_name") == expected
    wrong = [name for name, value in settings.items() if not close(saved.get(name), value)]
    if right_class and not wrong:
        return
    call = spelled or (
        f"keras.optimizers.{expected}("
        + ", ".join(f"{name}={value:g}" for name, value in settings.items())
        + ")"
    )
    fail(
        f"the optimizer should be {call}"
        + (f"; yours differs in {', '.join(wrong)}" if right_class else "")
    )
