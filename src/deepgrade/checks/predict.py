"""The grader's own predictions with a student's saved model, failing in the student's words.

Every exercise judges accuracy on predictions it makes itself, never on numbers the notebook
printed; a model that cannot predict the grader's batch fails the check with what to fix
instead of a Keras traceback.

The model is called eagerly, batch by batch, rather than through `model.predict`: predict traces
a graph function for every model it meets (about 0.3 CPU-seconds for a small CNN, more than the
few hundred images cost), and the checks meet each model once. The same layers run in
inference mode on the same batches, so the numbers agree with predict's to float32 round-off.
"""

from __future__ import annotations

from typing import Any

from deepgrade.checks.expect import fail


class SeveralOutputs(Exception):
    """The model returned a list or dict of outputs where the exercise wants one array."""


def predict_eagerly(model: Any, x: Any, *, batch_size: int = 256) -> Any:
    """model(x, training=False) batch by batch, as one numpy array: what model.predict
    returns for a one-output model, without tracing a function. Raises what Keras raises (a
    wrong input shape) and SeveralOutputs for a model with several outputs."""
    import keras
    import numpy as np

    batches = []
    for start in range(0, max(len(x), 1), batch_size):  # no images: one empty batch
        output = model(x[start : start + batch_size], training=False)
        if isinstance(output, list | tuple | dict):
            raise SeveralOutputs(f"{len(output)} outputs")
        batches.append(keras.ops.convert_to_numpy(output))
    return np.concatenate(batches)


def predict_or_fail(
    model: Any,
    x: Any,
    *,
    outputs: int,
    input_hint: str,
    output_hint: str,
    batch_size: int = 256,  # eager: 1,320 SIGNS images cost 0.40 CPU-s at 256, 0.54 s at 64
) -> Any:
    """model.predict(x) as a numpy array of shape (len(x), outputs) (made by predict_eagerly).

    `input_hint` names the images and the input to use ("64x64x3 images: start with
    keras.Input((64, 64, 3))"); `output_hint` the last layer ("end with Dense(6,
    activation='softmax')").
    """
    import numpy as np

    try:
        predicted = np.asarray(predict_eagerly(model, x, batch_size=batch_size))
    except SeveralOutputs as exc:
        fail(f"your saved model has {exc}; it should have one: {output_hint}")
    except Exception as exc:  # any Keras error on the grader's well-formed batch
        fail(f"your saved model could not predict {input_hint} ({type(exc).__name__})")
    if predicted.shape != (len(x), outputs):
        fail(
            f"your model outputs shape {predicted.shape[1:]} per image; it should output "
            f"{outputs} values per image: {output_hint}"
        )
    return predicted
