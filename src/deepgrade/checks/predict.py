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

from collections.abc import Callable
from typing import Any

from deepgrade.checks.expect import fail

LossFunction = Callable[[Any, Any], Any]  # keras.losses.get(name): per-image loss of (y, y_pred)


class SeveralOutputs(Exception):
    """The model returned a list or dict of outputs where the exercise wants one array."""


def predict_and_score(
    model: Any, x: Any, y: Any = None, loss: LossFunction | None = None, *, batch_size: int = 256
) -> tuple[Any, float | None]:
    """model(x, training=False) batch by batch, as one numpy array (what model.predict returns
    for a one-output model, without tracing a function), and with `loss` and labels `y` the
    mean loss as model.evaluate reports it (None without them).

    The loss is taken on each batch's output tensor, not on the numpy array: on TensorFlow a
    softmax output carries its logits and the loss uses them, as evaluate does, so a confident
    mistake costs its whole -log p; from the numpy probabilities it would be clipped at
    -log 1e-7 and a well-trained model's loss would disagree with evaluate's by a third.
    Raises what Keras raises (a wrong input shape) and SeveralOutputs for several outputs.
    """
    import keras
    import numpy as np

    batches = []
    total = 0.0
    for start in range(0, max(len(x), 1), batch_size):  # no images: one empty batch
        output = model(x[start : start + batch_size], training=False)
        if isinstance(output, list | tuple | dict):
            raise SeveralOutputs(f"{len(output)} outputs")
        if loss is not None and y is not None and len(x):
            per_image = keras.ops.convert_to_numpy(loss(y[start : start + batch_size], output))
            total += float(np.sum(per_image))
        batches.append(keras.ops.convert_to_numpy(output))
    mean = total / len(x) if loss is not None and y is not None and len(x) else None
    return np.concatenate(batches), mean


def predict_eagerly(model: Any, x: Any, *, batch_size: int = 256) -> Any:
    """model(x, training=False) batch by batch, as one numpy array (see predict_and_score)."""
    return predict_and_score(model, x, batch_size=batch_size)[0]


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
    return score_or_fail(
        model,
        x,
        outputs=outputs,
        input_hint=input_hint,
        output_hint=output_hint,
        batch_size=batch_size,
    )[0]


def score_or_fail(
    model: Any,
    x: Any,
    y: Any = None,
    loss: LossFunction | None = None,
    *,
    outputs: int,
    input_hint: str,
    output_hint: str,
    batch_size: int = 256,
) -> tuple[Any, float | None]:
    """predict_or_fail's predictions and, with `y` and `loss`, the mean loss model.evaluate
    would report without regularization (see predict_and_score)."""
    import numpy as np

    try:
        predicted, mean_loss = predict_and_score(model, x, y, loss, batch_size=batch_size)
    except SeveralOutputs as exc:
        fail(f"your saved model has {exc}; it should have one: {output_hint}")
    except Exception as exc:  # any Keras error on the grader's well-formed batch
        fail(f"your saved model could not predict {input_hint} ({type(exc).__name__})")
    predicted = np.asarray(predicted)
    if predicted.shape != (len(x), outputs):
        fail(
            f"your model outputs shape {predicted.shape[1:]} per image; it should output "
            f"{outputs} values per image: {output_hint}"
        )
    return predicted, mean_loss
