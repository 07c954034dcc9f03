"""The grader's own predictions with a student's saved model, failing in the student's words.

Every exercise judges accuracy on predictions it makes itself, never on numbers the notebook
printed; a model that cannot predict the grader's batch fails the check with what to fix
instead of a Keras traceback.
"""

from __future__ import annotations

from typing import Any

from deepgrade.checks.expect import fail


def predict_or_fail(
    model: Any,
    x: Any,
    *,
    outputs: int,
    input_hint: str,
    output_hint: str,
    batch_size: int = 64,
) -> Any:
    """model.predict(x) as a numpy array of shape (len(x), outputs).

    `input_hint` names the images and the input to use ("64x64x3 images: start with
    keras.Input((64, 64, 3))"); `output_hint` the last layer ("end with Dense(6,
    activation='softmax')").
    """
    import numpy as np

    try:
        predicted = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    except Exception as exc:  # any Keras error on the grader's well-formed batch
        fail(f"your saved model could not predict {input_hint} ({type(exc).__name__})")
    if predicted.shape != (len(x), outputs):
        fail(
            f"your model outputs shape {predicted.shape[1:]} per image; it should output "
            f"{outputs} values per image: {output_hint}"
        )
    return predicted
