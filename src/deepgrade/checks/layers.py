"""A saved model's layers, listed and compared with what an exercise asks for.

Layers are compared by type and by the config keys the exercise fixes, so a check can say
exactly which layer differs ("layer 3 (Conv2D): kernel_size should be (5, 5), yours is
(3, 3)"), and a check on a hidden input can say the same without a number (`show=False`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any

from deepgrade.checks.expect import fail

# Config keys Keras saves either as an int or as a per-axis tuple.
_PER_AXIS = frozenset({"kernel_size", "strides", "pool_size", "dilation_rate", "size"})
MAX_LISTED = 3  # differences named in one message
LONG = 12  # longer lists of layer types are not spelled out in a message


def pair(value: Any) -> tuple[Any, ...]:
    """(3, 3) for 3 or [3, 3]: how Keras may save a 2-D size."""
    return tuple(value) if isinstance(value, list | tuple) else (value, value)


def flat_layers(model: Any, *, keep: Callable[[Any], bool] | None = None) -> list[Any]:
    """Every layer in order, nested Sequential/Functional models opened, InputLayers dropped,
    and only those `keep` accepts (e.g. leave out augmentation layers)."""
    found: list[Any] = []
    for layer in getattr(model, "layers", []):
        if type(layer).__name__ == "InputLayer":
            continue
        inner = getattr(layer, "layers", None)
        found.extend(flat_layers(layer, keep=keep) if isinstance(inner, list) else [layer])
    return [layer for layer in found if keep is None or keep(layer)]


@dataclass(frozen=True)
class LayerInfo:
    """One row of a model summary: what a student may be shown about their own model."""

    name: str
    kind: str  # the layer's class, e.g. "Conv2D"
    output_shape: tuple[int | None, ...] | None
    params: int
    config: Mapping[str, Any]


def _output_shape(layer: Any) -> tuple[int | None, ...] | None:
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):
        return None
    return tuple(None if dim is None else int(dim) for dim in shape)


def layer_table(model: Any, *, keep: Callable[[Any], bool] | None = None) -> list[LayerInfo]:
    """The model's flat layers as LayerInfo rows (type, output shape, parameters, config)."""
    return [
        LayerInfo(
            name=str(layer.name),
            kind=type(layer).__name__,
            output_shape=_output_shape(layer),
            params=int(layer.count_params()),
            config=layer.get_config(),
        )
        for layer in flat_layers(model, keep=keep)
    ]


def _same(found: Any, expected: Any, key: str) -> bool:
    if key in _PER_AXIS and not isinstance(expected, str):
        return pair(found) == pair(expected)
    if isinstance(expected, float) and isinstance(found, int | float):
        return not isinstance(found, bool) and math.isclose(found, expected, rel_tol=1e-5)
    return bool(found == expected)


def _show(value: Any, key: str) -> str:
    if key in _PER_AXIS and not isinstance(value, str):
        return "x".join(str(v) for v in pair(value))
    return (
        repr(value)
        if isinstance(value, str)
        else f"{value:g}"
        if isinstance(value, float)
        else str(value)
    )


def layer_differences(
    layers: Sequence[Any],
    expected: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    show: bool = True,
) -> list[str]:
    """What differs between `layers` and `expected` [(type, {config key: value})]: first the
    sequence of types, then each layer's fixed keys. Empty when they match. With show=False
    the differences name layers and keys but no values (for models built on hidden inputs)."""
    kinds = [type(layer).__name__ for layer in layers]
    wanted = [kind for kind, _ in expected]
    if kinds != wanted:
        if show and len(wanted) > LONG:  # a whole list would not fit: the first difference
            index = next(
                i for i, pair in enumerate(zip_longest(kinds, wanted)) if len(set(pair)) > 1
            )
            found = kinds[index] if index < len(kinds) else "nothing"
            should = wanted[index] if index < len(wanted) else "nothing"
            return [
                f"layer {index + 1} is {found} where the exercise has {should} ({len(kinds)} "
                f"layers; the exercise has {len(wanted)})"
            ]
        if show:
            return [
                f"the layers are {', '.join(kinds) or 'none'}; they should be {', '.join(wanted)}"
            ]
        return [f"it has {len(kinds)} layers of other types or order than the exercise asks"]
    problems = []
    for index, (layer, (kind, fixed)) in enumerate(zip(layers, expected, strict=True)):
        config = layer.get_config()
        for key, value in fixed.items():
            found = config.get(key)
            if _same(found, value, key):
                continue
            where = f"layer {index + 1} ({kind})"
            problems.append(
                f"{where}: {key} should be {_show(value, key)}, yours is {_show(found, key)}"
                if show
                else f"{where} has the wrong {key}"
            )
    return problems


def expect_layers(
    model: Any,
    expected: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    what: str = "your network",
    keep: Callable[[Any], bool] | None = None,
    show: bool = True,
    hint: str = "",
) -> None:
    """The model's flat layers (those `keep` accepts) are `expected`, type by type and in
    each fixed config key; fails naming the first differences, then `hint` (what to do)."""
    problems = layer_differences(flat_layers(model, keep=keep), expected, show=show)
    if problems:
        more = len(problems) - MAX_LISTED
        listed = "; ".join(problems[:MAX_LISTED]) + (f"; and {more} more" if more > 0 else "")
        fail(f"{what}: {listed}" + (f". {hint}" if hint else ""))


def of_kind(*kinds: str) -> Callable[[Any], bool]:
    """A `keep` for layers of these classes only: `flat_layers(model, keep=of_kind("Conv2D"))`."""
    return lambda layer: type(layer).__name__ in kinds


def input_shape(model: Any) -> tuple[int | None, ...] | None:
    """The model's input shape without the batch axis, or None when it has no single input."""
    try:
        (tensor,) = model.inputs
        return tuple(None if dim is None else int(dim) for dim in tensor.shape[1:])
    except (AttributeError, TypeError, ValueError):
        return None


def expect_input(model: Any, shape: Sequence[int], *, hint: str) -> None:
    """The model takes one input of `shape` (batch axis left out); `hint` says how."""
    found = input_shape(model)
    if found != tuple(shape):
        seen = "no single input" if found is None else "x".join(map(str, found))
        fail(f"the network's input is {seen}; it should be {'x'.join(map(str, shape))}: {hint}")
