"""Exercise 6: the comparison with LeNet, present and plausible.

The LeNet is saved as lenet.keras: the grader measures its accuracy itself, requires a trained
network (the profile's lenet_test_accuracy threshold, well under the course's 91%) and the
accuracy the notebook reported to agree with what it measured, so the comparison rests on a
real run, not a number copied from the course.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

AGREEMENT = 0.02  # the notebook evaluated the same images; GPU vs CPU round-off only
MAX_CONVS = 3  # a LeNet, not a second VGG


@pytest.mark.points(2)
def test_lenet_comparison(
    answers: dict[str, Any],
    load_model: Callable[[str], Any],
    accuracy_of: Callable[[str], float],
    threshold: Callable[[str], float],
    measure: Callable[[str, float], None],
) -> None:
    """A trained LeNet, its test accuracy reported for the comparison"""
    lenet = load_model("lenet.keras")
    convs = sum(type(layer).__name__ == "Conv2D" for layer in lenet.layers)
    assert 1 <= convs <= MAX_CONVS, (
        f"lenet has {convs} Conv2D layers; the LeNet to compare with has two 5x5 convolutions "
        "(20 and 40 filters), each followed by max-pooling"
    )
    measured = accuracy_of("lenet.keras")
    measure("lenet_test_accuracy", measured)
    required = threshold("lenet_test_accuracy")
    assert measured >= required, (
        f"your LeNet classifies {measured:.1%} of the grader's test images correctly, below "
        f"{required:.0%}: train it with lenet.fit(X_train, Y_train_hot, batch_size=100, "
        "epochs=LENET_EPOCHS) before evaluating it"
    )
    reported = answers["lenet_test_accuracy"]
    valid = isinstance(reported, int | float) and not isinstance(reported, bool)
    assert valid and math.isfinite(reported) and abs(reported - measured) <= AGREEMENT, (
        f"the LeNet accuracy you reported ({reported!r}) is not what your saved LeNet scores "
        f"on the grader's test set ({measured:.1%}): set lenet_eval = lenet.evaluate(X_test, "
        "Y_test_hot) after training and report that; if you did, your pad_images pads the "
        "images differently from the grader (see the padding check)"
    )
