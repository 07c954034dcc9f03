"""Failing a check with the student's words, and the checks on numbers every exercise repeats."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NoReturn

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")
FIT_HINT = "compile with metrics=['accuracy'] and pass validation_data=... to model.fit"


def fail(message: str) -> NoReturn:
    """Fail the running check with `message` and nothing else: no traceback, no source line.

    The plugin shows a failed check's own message only; this is the way to fail outside an
    `assert ..., "message"` (e.g. when a file cannot be read before anything can be asserted).
    """
    import pytest

    pytest.fail(message, pytrace=False)


def close(value: Any, expected: float, *, rel_tol: float = 1e-5) -> bool:
    """`value` is a real number near `expected`: Keras saves rates as float32
    (0.0010000000474974513), and a bool or a string is never a number here."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isclose(value, expected, rel_tol=rel_tol)
    )


def expect_history(
    history: Mapping[str, Sequence[float]],
    *,
    epochs: int,
    keys: Iterable[str] = HISTORY_KEYS,
    fit_hint: str = FIT_HINT,
) -> None:
    """model.fit ran once for `epochs` epochs, recording every metric in `keys`, all finite.

    `fit_hint` says how to get the missing metrics in this exercise's words (which validation
    data to pass, for instance).
    """
    keys = tuple(keys)
    epochs = int(epochs)
    missing = [key for key in keys if key not in history]
    if missing:
        fail(f"the training history has no {', '.join(missing)}: {fit_hint}")
    lengths = sorted({len(history[key]) for key in keys})
    if lengths != [epochs]:
        fail(
            f"the history has {' / '.join(map(str, lengths))} epochs, but the notebook ran "
            f"with EPOCHS = {epochs}: train with model.fit(..., epochs=EPOCHS) once, in one call"
        )
    if not all(math.isfinite(v) for key in keys for v in history[key]):
        fail("the training loss became NaN or infinite: check the scaling of the images")


def expect_accuracy(
    accuracy: float,
    *,
    required: float,
    measure: Callable[[str, float], None],
    name: str = "test_accuracy",
    what: str = "your trained model classifies {accuracy} of the grader's test images correctly",
    hint: str = "check the scaling, the architecture and the optimizer, and train for all "
    "EPOCHS epochs",
) -> None:
    """Record `accuracy` as measurement `name`, then fail below `required`.

    The measurement is recorded first, pass or fail, so calibration sees every run. `what`
    describes the measured value ({accuracy} is filled in); the threshold is a public number
    of the profile, shown to the student.
    """
    accuracy = float(accuracy)
    measure(name, accuracy)
    if not accuracy >= required:  # NaN fails too
        fail(
            f"{what.format(accuracy=f'{accuracy:.1%}')}, below the required {required:.0%}: {hint}"
        )
