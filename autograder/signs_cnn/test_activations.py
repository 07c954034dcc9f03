"""Exercises 7 to 9: the activation model and the batch axis."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from network import PUBLIC_N, expected_shapes, show

SHAPES = expected_shapes(PUBLIC_N)[:6]  # 3 Conv2D and 3 MaxPooling2D


@pytest.mark.points(2)
def test_activation_model_outputs(load_model: Callable[[str], Any]) -> None:
    """The activation model outputs the first six layers' activations"""
    model = load_model("activation_model.keras")
    shapes = [tuple(output.shape[1:]) for output in model.outputs]
    assert shapes == SHAPES, (
        f"your activation model has {len(shapes)} outputs shaped "
        f"{', '.join(map(show, shapes)) or 'nothing'}; it should output the 6 first "
        f"layers (3 Conv2D, 3 MaxPooling2D): {', '.join(map(show, SHAPES))}. Use "
        "keras.Model(inputs=model.inputs, outputs=[layer.output for layer in model.layers[:6]])"
    )


@pytest.mark.points(1)
def test_expand_dims(answers: dict[str, Any]) -> None:
    """One image gets a batch axis: (1, 64, 64, 3), first activation (1, 62, 62, 8)"""
    image = answers["img_tensor_shape"]
    assert image == [1, 64, 64, 3], (
        f"img_tensor has shape {image}; add a batch axis to one 64x64x3 image: "
        "np.expand_dims(X_test[index], axis=0) gives (1, 64, 64, 3)"
    )
    first = answers["first_activation_shape"]
    assert first == [1, 62, 62, 8], (
        f"the first activation has shape {first}, expected [1, 62, 62, 8]: it is "
        "activation_model.predict(img_tensor)[0], the first Conv2D's output"
    )
