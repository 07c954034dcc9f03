"""Mutation operators: where one small change to a cell's Keras code makes a different solution.

Each operator walks the cell's syntax tree (never a regex over the text) and proposes edits:
a span of the source and its replacement, so the mutant differs from the original in exactly
that span and every other character (comments, formatting) stays. `deepgrade mutate` grades
each mutant; one that keeps full marks shows a check weaker than it claims.

Operators, by name: padding, kernel_size, pool_size, strides, units, dropout, activation,
scaling, labels, loss, optimizer, epochs, constant; and for inference-time and transfer-learning
code: views (a list of augmentation views), aggregate (how per-view predictions are combined),
pad_mode (how borders are filled), trainable (frozen or not), fine_tune (which layers are
unfrozen), from_logits.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

CONV = {"Conv1D", "Conv2D", "Conv3D", "SeparableConv2D", "Conv2DTranspose", "Conv3DTranspose"}
POOL_KINDS = {"MaxPooling": "AveragePooling", "AveragePooling": "MaxPooling"}
POOL_ALIASES = {"MaxPool": "AvgPool", "AvgPool": "MaxPool"}
OPTIMIZERS = {  # class name -> Keras's default learning rate
    "Adam": 0.001,
    "AdamW": 0.001,
    "Adamax": 0.001,
    "Nadam": 0.001,
    "RMSprop": 0.001,
    "Adagrad": 0.001,
    "Adadelta": 0.001,
    "SGD": 0.01,
}
ACTIVATIONS = {
    "relu": ("tanh", "elu", "linear"),
    "softmax": ("sigmoid",),
    "sigmoid": ("softmax",),
}
LOSSES = {
    "categorical_crossentropy": ("binary_crossentropy", "mean_squared_error"),
    "sparse_categorical_crossentropy": ("categorical_crossentropy",),
    "binary_crossentropy": ("categorical_crossentropy",),
}
LOSS_CLASSES = {  # keras.losses classes, as LOSSES for the names
    "CategoricalCrossentropy": "BinaryCrossentropy",
    "SparseCategoricalCrossentropy": "CategoricalCrossentropy",
    "BinaryCrossentropy": "CategoricalCrossentropy",
}
AGGREGATES = {"mean": ("max", "sum"), "max": ("mean",), "sum": ("mean",)}
ARRAY_MODULES = {"np", "numpy", "ops", "keras.ops"}  # np.mean(x, axis) vs images.mean(axis)
PAD_MODES = {  # np.pad's mode
    "edge": ("constant", "reflect"),
    "constant": ("edge", "reflect"),
    "reflect": ("edge", "constant"),
    "symmetric": ("edge", "constant"),
    "wrap": ("edge", "constant"),
}
FILL_MODES = {  # Keras image layers' fill_mode
    "reflect": ("constant", "nearest"),
    "constant": ("reflect", "nearest"),
    "nearest": ("reflect", "constant"),
    "wrap": ("reflect", "constant"),
}


@dataclass(frozen=True)
class Edit:
    """Replace source[start:end] (character offsets) with `text`."""

    operator: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Context:
    """What operators may know beyond the cell: the values a name holds when graded.

    `parameters`: the notebook's parameters as the profile runs them (the parameters cell
    with the profile's values over it); `released`: the parameters cell's own values;
    `calls`: for each function defined in the notebook, the constant values of its
    parameters found at its call sites (or its defaults)."""

    parameters: Mapping[str, Any]
    released: Mapping[str, Any]
    calls: Mapping[str, Mapping[str, Any]]


class _Source:
    """Offsets of syntax nodes in one cell's text (ast columns are UTF-8 byte offsets)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, lineno: int, col: int) -> int:
        line = self.lines[lineno - 1] if lineno - 1 < len(self.lines) else ""
        return self.starts[lineno - 1] + len(line.encode("utf-8")[:col].decode("utf-8"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        start = self.offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]
        end = self.offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
        return start, end

    def segment(self, node: ast.AST) -> str:
        start, end = self.span(node)
        return self.text[start:end]


def callee(call: ast.Call) -> str:
    """The called name's last part: `keras.layers.Conv2D(...)` -> "Conv2D"."""
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def argument(call: ast.Call, index: int | None, keyword: str) -> ast.expr | None:
    """The argument given by position `index` or by `keyword`, or None when not given."""
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    if index is not None and index < len(call.args):
        arg = call.args[index]
        return None if isinstance(arg, ast.Starred) else arg
    return None


def _literal(node: ast.expr | None) -> Any:
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _string(src: _Source, node: ast.AST, value: str) -> str:
    """`value` as a string literal quoted like the one at `node` (double quotes by default)."""
    quote = "'" if src.segment(node).startswith("'") else '"'
    return f"{quote}{value}{quote}"


def _replace(src: _Source, operator: str, node: ast.AST, text: str) -> Edit:
    start, end = src.span(node)
    return Edit(operator, start, end, text)


def _add_keyword(src: _Source, operator: str, call: ast.Call, text: str) -> Edit:
    """Insert `text` (e.g. 'padding="same"') as the call's last argument."""
    last: list[ast.AST] = [*call.args, *call.keywords]
    if last:
        end = max(src.span(node)[1] for node in last)
        return Edit(operator, end, end, f", {text}")
    end = src.span(call)[1] - 1  # just before the closing parenthesis
    return Edit(operator, end, end, text)


def _ints(value: Any) -> tuple[int, ...] | None:
    """An int, or a tuple/list of ints: as a tuple; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return (value,)
    if (
        isinstance(value, tuple | list)
        and value
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return tuple(value)
    return None


def _like(original: Any, values: tuple[int, ...]) -> str:
    """`values` written the way `original` was (an int, or a tuple)."""
    if isinstance(original, int):
        return str(values[0])
    return "(" + ", ".join(map(str, values)) + ")"


def _calls(tree: ast.AST) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _is_pool(name: str) -> bool:
    return any(name.startswith(kind) for kind in (*POOL_KINDS, *POOL_ALIASES))


def op_padding(tree: ast.AST, src: _Source, ctx: Context) -> Iterator[Edit]:
    """'valid' <-> 'same' where given; 'same' added to a convolution that leaves it out."""
    for call in _calls(tree):
        name = callee(call)
        if name not in CONV and not _is_pool(name):
            continue
        node = argument(call, None, "padding")
        value = _literal(node)
        if node is not None and value in ("valid", "same"):
            new = "same" if value == "valid" else "valid"
            yield _replace(src, "padding", node, _string(src, node, new))
        elif node is None and name in CONV:
            yield _add_keyword(src, "padding", call, 'padding="same"')


def op_kernel_size(tree: ast.AST, src: _Source, ctx: Context) -> Iterator[Edit]:
    """A convolution's kernel: 3 -> 5, anything else -> 3."""
    for call in _calls(tree):
        if callee(call) not in CONV:
            continue
        node = argument(call, 1, "kernel_size")
        value = _literal(node)
        sizes = _ints(value)
        if node is not None and sizes:
            yield _replace(
                src, "kernel_size", node, _like(value, tuple(5 if k == 3 else 3 for k in sizes))
            )


def op_pool_size(tree: ast.AST, src: _Source, ctx: Context) -> Iterator[Edit]:
    """A pooling window 2 -> 3 (anything else -> 2), and max <-> average pooling."""
    for call in _calls(tree):
        name = callee(call)
        if not _is_pool(name) or "Global" in name:
            continue
        node = argument(call, 0, "pool_size")
        value = _literal(node)
        sizes = _ints(value)
        if node is not None and sizes:
            new = _like(value, tuple(3 if k == 2 else 2 for k in sizes))
            yield _replace(src, "pool_size", node, new)
        elif node is None:
            yield _add_keyword(src, "pool_size", call, "pool_size=(3, 3)")
        for old, new_kind in (*POOL_KINDS.items(), *POOL_ALIASES.items()):
            if name.startswith(old):
                yield _rename_callee(src, "pool_size", call, new_kind + name[len(old) :])
                break


def _rename_callee(src: _Source, operator: str, call: ast.Call, new: str) -> Edit:
    end = src.span(call.func)[1]
    return Edit(operator, end - len(callee(call)), end, new)


def op_strides(tree: ast.AST, src: _Source, ctx: Context) -> Iterator[Edit]:
    """Strides 1 <-> 2 where given; strides=2 added to a convolution that leaves them out."""
    for call in _calls(tree):
        name = callee(call)
        if name not in CONV and not _is_pool(name):
            continue
        node = argument(call, 2 if name in CONV else 1, "strides")
        value = _literal(node)
        sizes = _ints(value)
        if node is not None and sizes:
            yield _replace(
                src, "strides", node, _like(value, tuple(2 if s == 1 else 1 for s in sizes))
            )
        elif node is None and name in CONV:
            yield _add_keyword(src, "strides", call, "strides=2")


def _is_output(call: ast.Call) -> bool:
    return _literal(argument(call, None, "activation")) in ("softmax", "sigmoid")


def op_units(tree: ast.AST, src: _Source, ctx: Context) -> Iterator[Edit]:
    """A Dense layer's units or a convolution's filters doubled (output layers left alone)."""
    for call in _calls(tree):
        name = callee(call)
        if name == "Dense" and not _is_output(call):
            node = argument(call, 0, "units")
        elif name in CONV:
            node = argument(call, 0, "filters")
        else:
            continue
        if node is None:
            continue
        value = _literal(node)
        if _ints(value) and isinstance(value, int):
            yield _replace(src, "units", node, str(value * 2))
        elif value is None:
            yield _replace(src, "units", node, f"2 * ({src.segment(node)})")


def op_dropout(tree: ast.AST, src: _Source, ctx: Context) -> Iterator[Edit]:
    """A Dropout rate -> 0.5 (0.5 -> 0.25)."""
    for call in _calls(tree):
        if callee(call) != "Dropout":
            continue
        node = argument(call, 0, "rate")
        value = _literal(node)
        if node is not None and isinstance(value, float | int) and not isinstance(value, bool):
            yield _replace(src, "dropout", node, "0.25" if value == 0.5 else "0.5")


def op_activation(tree: ast.AST, src: _Source, ctx: Context) -> Iterator[Edit]:
    """activation="relu" -> tanh, elu, linear; softmax <-> sigmoid; others -> relu."""
    for call in _calls(tree):
        node = argument(call, None, "activation")
        if callee(call) == "Activation":
            node = argument(call, 0, "activation")
        value = _literal(node)
        if node is None or not isinstance(value, str):
            continue
        for new in ACTIVATIONS.get(value, ("relu",)):
            yield _replace(src, "activation", node, _string(src, node, new))


def _number(node: ast.expr, *values: float) -> bool:
    value = _literal(node)
    return isinstance(value, int | float) and not isinstance(value, bool) and value in values


def op_scaling(tree: ast.AST, src: _Source, ctx: Context) -> Iterator[Edit]:
    """Input scaling: `/ 255` -> `/ 127.5` and removed; a centring `- 0.5` after it removed."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.BinOp):
            continue
        if isinstance(node.op, ast.Div) and _number(node.right, 255):
            yield _replace(src, "scaling", node.right, "127.5")
            yield _replace(src, "scaling", node, src.segment(node.left))
        left = node.left
        if (
            isinstance(node.op, ast.Sub)
            and _number(node.right, 0.5)
            and isinstance(left, ast.BinOp)
            and isinstance(left.op, ast.Div)
            and _number(left.right, 255)
        ):
            yield _replace(src, "scaling", node, src.segment(left))


def op_labels(tree: ast.AST, src: _Source, ctx: Context) -> Iterator[Edit]:
    """One-hot labels: to_categorical dropped (the integer labels kept), or one class more."""
    for call in _calls(tree):
        if callee(call) != "to_categorical" or not call.args:
            continue
        yield _replace(src, "labels", call, src.segment(call.args[0]))
        node = argument(call, 1, "num_classes")
        if node is None:
            continue
        value = _literal(node)
        text = str(value + 1) if isinstance(value, int) else f"{src.segment(node)} + 1"
        yield _replace(src, "labels", node, text)


def op_loss(tree: ast.AST, src: _Source, ctx: Context) -> Iterator[Edit]:
    """The loss named in compile(): another loss (a string, or a keras.losses class)."""
    for call in _calls(tree):
        node = argument(call, 1, "loss") if callee(call) == "compile" else None
        value = _literal(node)
        if isinstance(node, ast.Call) and callee(node) in LOSS_CLASSES:
            yield _rename_callee(src, "loss", node, LOSS_CLASSES[callee(node)])
        if node is None or not isinstance(value, str):
            continue
        for new in LOSSES.get(value, ("categorical_crossentropy",)):
            yield _replace(src, "loss", node, _string(src, node, new))


def op_optimizer(tree: ast.AST, src: _Source, ctx: Context) -> Iterator[Edit]:
    """Adam <-> SGD; the learning rate x10 (given or not); beta_1 / beta_2 changed."""
    for call in _calls(tree):
        name = callee(call)
        if name == "compile":
            node = argument(call, 0, "optimizer")
            value = _literal(node)
            if node is not None and isinstance(value, str):
                new = "sgd" if value != "sgd" else "adam"
                yield _replace(src, "optimizer", node, _string(src, node, new))
            continue
        if name not in OPTIMIZERS:
            continue
        yield _rename_callee(src, "optimizer", call, "SGD" if name != "SGD" else "Adam")
        rate = argument(call, 0, "learning_rate")
        value = _literal(rate)
        if rate is None:
            yield _add_keyword(src, "optimizer", call, f"learning_rate={OPTIMIZERS[name] * 10:g}")
        elif isinstance(value, int | float):
            yield _replace(src, "optimizer", rate, f"{value * 10:g}")
        for key, new in (("beta_1", "0.5"), ("beta_2", "0.9")):
            beta = argument(call, None, key)
            if beta is not None:
                yield _replace(
                    src, "optimizer", beta, new if _literal(beta) != float(new) else "0.99"
                )


def op_epochs(tree: ast.AST, src: _Source, ctx: Context) -> Iterator[Edit]:
    """fit(epochs=E) -> half of E."""
    for call in _calls(tree):
        node = argument(call, None, "epochs")
        if node is None:
            continue
        value = _literal(node)
        if isinstance(value, int):
            yield _replace(src, "epochs", node, str(max(1, value // 2) if value > 1 else 2))
        elif value is None:
            yield _replace(src, "epochs", node, f"{src.segment(node)} // 2")


def op_constant(tree: ast.AST, src: _Source, ctx: Context) -> Iterator[Edit]:
    """A constant where a parameter belongs: a notebook parameter (EPOCHS) replaced by its
    released value (or another constant when the profile runs that value), and a function's
    parameter replaced, at one use, by the value its callers pass."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Name)
            and isinstance(node.ctx, ast.Load)
            and node.id in ctx.released
            and not _shadowed_anywhere(tree, node.id)
        ):
            new = _other_constant(ctx.released[node.id], ctx.parameters.get(node.id))
            if new is not None:
                yield _replace(src, "constant", node, new)
        if isinstance(node, ast.FunctionDef):
            yield from _function_constants(node, src, ctx.calls.get(node.name, {}))


def _other_constant(released: Any, graded: Any) -> str | None:
    """The released value, or (when grading runs that same value) another one."""
    if released != graded and isinstance(released, int | float | str | bool):
        return repr(released)
    if isinstance(released, int) and not isinstance(released, bool):
        return repr(released + 1)
    return None


def _shadowed_anywhere(tree: ast.AST, name: str) -> bool:
    """Assigned in the cell: uses may then hold the cell's own value, not the parameter."""
    return any(
        isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Store)
        for node in ast.walk(tree)
    )


def _function_constants(
    func: ast.FunctionDef, src: _Source, values: Mapping[str, Any]
) -> Iterator[Edit]:
    names = [a.arg for a in (*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs)]
    body = ast.Module(body=func.body, type_ignores=[])
    for name in names:
        if name not in values or _shadowed_anywhere(body, name):
            continue
        for node in ast.walk(body):
            if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Load):
                yield _replace(src, "constant", node, repr(values[name]))


MAX_VIEW_CHANGES = 3  # per list: one changed field per column of the view tuples


def op_views(tree: ast.AST, src: _Source, ctx: Context) -> Iterator[Edit]:
    """A literal list of constant tuples (test-time augmentation's views): each element
    dropped in turn, and a few elements changed (a bool flipped, a non-zero int negated) into a
    view the list does not hold yet, at most one per column."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.List) or len(node.elts) < 2:
            continue
        views = [_literal(elt) for elt in node.elts]
        if not all(isinstance(elt, ast.Tuple) for elt in node.elts) or not all(
            isinstance(view, tuple) and view and all(_scalar(v) for v in view) for view in views
        ):
            continue
        if len({len(view) for view in views}) != 1:
            continue
        for i in range(len(node.elts)):
            yield _drop_element(src, "views", node.elts, i)
        changed = 0
        for column in range(len(views[0])):
            edit = _changed_view(src, node.elts, views, column)
            if edit is not None and changed < MAX_VIEW_CHANGES:
                changed += 1
                yield edit


def _scalar(value: Any) -> bool:
    return isinstance(value, bool | int | float | str)


def _drop_element(src: _Source, operator: str, elts: list[ast.expr], i: int) -> Edit:
    """The element and one comma next to it removed, so the other lines stay as they were:
    a line holding only this element goes whole."""
    start, end = src.span(elts[i])
    line_start = src.text.rfind("\n", 0, start) + 1
    line_end = src.text.find("\n", end)
    line_end = len(src.text) if line_end < 0 else line_end + 1
    before, after = src.text[line_start:start], src.text[end:line_end]
    if not before.strip() and after.strip() in ("", ","):
        return Edit(operator, line_start, line_end, "")
    if i + 1 < len(elts) and (i == 0 or "\n" not in src.text[end : src.span(elts[i + 1])[0]]):
        return Edit(operator, start, src.span(elts[i + 1])[0], "")
    return Edit(operator, src.span(elts[i - 1])[1], end, "")


def _changed_view(src: _Source, elts: list[ast.expr], views: list[Any], column: int) -> Edit | None:
    """The first element whose `column`, flipped or negated, makes a view not in the list."""
    for elt, view in zip(elts, views, strict=True):
        value = view[column]
        if isinstance(value, bool):
            new: Any = not value
        elif isinstance(value, int | float) and value != 0:
            new = -value
        else:
            continue
        changed = (*view[:column], new, *view[column + 1 :])
        if changed not in views:
            return _replace(src, "views", elt, "(" + ", ".join(map(repr, changed)) + ")")
    return None


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def op_aggregate(tree: ast.AST, src: _Source, ctx: Context) -> Iterator[Edit]:
    """A reduction along an axis (`.mean(axis=0)`, `np.mean(x, axis=0)`): mean -> max and
    sum, max or sum -> mean. Reductions without an axis (an accuracy's mean) are left alone."""
    for call in _calls(tree):
        name = callee(call)
        if name not in AGGREGATES or not isinstance(call.func, ast.Attribute):
            continue
        module = _dotted(call.func.value) in ARRAY_MODULES
        if argument(call, 1 if module else 0, "axis") is None:
            continue
        for new in AGGREGATES[name]:
            yield _rename_callee(src, "aggregate", call, new)


def op_pad_mode(tree: ast.AST, src: _Source, ctx: Context) -> Iterator[Edit]:
    """How borders are filled: np.pad's mode (edge -> constant, reflect; ...) and the
    fill_mode of Keras's image layers (RandomTranslation, RandomRotation, ...)."""
    for call in _calls(tree):
        if callee(call) == "pad":
            node, modes = argument(call, 2, "mode"), PAD_MODES
        else:
            node, modes = argument(call, None, "fill_mode"), FILL_MODES
        value = _literal(node)
        if node is None or not isinstance(value, str):
            continue
        for new in modes.get(value, ()):
            yield _replace(src, "pad_mode", node, _string(src, node, new))


def op_trainable(tree: ast.AST, src: _Source, ctx: Context) -> Iterator[Edit]:
    """`layer.trainable = True` <-> False: a frozen base trained, or a fine-tuned one frozen."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Attribute) and t.attr == "trainable" for t in node.targets)
            and isinstance(_literal(node.value), bool)
        ):
            yield _replace(src, "trainable", node.value, str(not _literal(node.value)))


FINE_TUNE_STEP = 10  # layers moved when the bound's value is not known


def op_fine_tune(tree: ast.AST, src: _Source, ctx: Context) -> Iterator[Edit]:
    """Which layers a `for layer in base.layers[:N]: layer.trainable = ...` loop touches: the
    other side of the slice (`[N:]`), and N a tenth lower and higher (where N is a literal, a
    name the cell assigns an int, or else the bound -/+ 10)."""
    assigned = _int_assignments(tree)
    for loop in ast.walk(tree):
        if not isinstance(loop, ast.For) or not _sets_trainable(loop):
            continue
        sub = loop.iter
        if not (
            isinstance(sub, ast.Subscript)
            and isinstance(sub.value, ast.Attribute)
            and sub.value.attr == "layers"
            and isinstance(sub.slice, ast.Slice)
            and sub.slice.step is None
            and (sub.slice.lower is None) != (sub.slice.upper is None)
        ):
            continue
        bound = sub.slice.upper or sub.slice.lower
        assert bound is not None
        text = src.segment(bound)
        other = f"[{text}:]" if sub.slice.upper is not None else f"[:{text}]"
        yield Edit("fine_tune", src.span(sub.value)[1], src.span(sub)[1], other)
        value = _literal(bound)
        target: ast.expr = bound
        if isinstance(bound, ast.Name) and bound.id in assigned:
            target = assigned[bound.id]
            value = _literal(target)
        if isinstance(value, int) and not isinstance(value, bool):
            step = max(1, abs(value) // 10)
            for new in (value - step, value + step):
                yield _replace(src, "fine_tune", target, str(new))
        else:
            for sign in ("-", "+"):
                yield _replace(src, "fine_tune", bound, f"{text} {sign} {FINE_TUNE_STEP}")


def _sets_trainable(loop: ast.For) -> bool:
    return isinstance(loop.target, ast.Name) and any(
        isinstance(node, ast.Attribute)
        and node.attr == "trainable"
        and isinstance(node.ctx, ast.Store)
        and isinstance(node.value, ast.Name)
        and node.value.id == loop.target.id
        for node in ast.walk(loop)
    )


def _int_assignments(tree: ast.AST) -> dict[str, ast.expr]:
    """Names the cell assigns exactly once, to an int literal: name -> the literal's node."""
    found: dict[str, list[ast.expr]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and node.value is not None:
                    found.setdefault(target.id, []).append(node.value)
    return {
        name: values[0]
        for name, values in found.items()
        if len(values) == 1
        and isinstance(_literal(values[0]), int)
        and not isinstance(_literal(values[0]), bool)
    }


def op_from_logits(tree: ast.AST, src: _Source, ctx: Context) -> Iterator[Edit]:
    """from_logits=True <-> False: a loss reading logits as probabilities, or the reverse."""
    for call in _calls(tree):
        node = argument(call, None, "from_logits")
        value = _literal(node)
        if node is not None and isinstance(value, bool):
            yield _replace(src, "from_logits", node, str(not value))


OPERATORS: dict[str, Callable[[ast.AST, _Source, Context], Iterator[Edit]]] = {
    "padding": op_padding,
    "kernel_size": op_kernel_size,
    "pool_size": op_pool_size,
    "strides": op_strides,
    "units": op_units,
    "dropout": op_dropout,
    "activation": op_activation,
    "scaling": op_scaling,
    "labels": op_labels,
    "loss": op_loss,
    "optimizer": op_optimizer,
    "epochs": op_epochs,
    "constant": op_constant,
    "views": op_views,
    "aggregate": op_aggregate,
    "pad_mode": op_pad_mode,
    "trainable": op_trainable,
    "fine_tune": op_fine_tune,
    "from_logits": op_from_logits,
}


def edits(source: str, ctx: Context, operators: Mapping[str, Any] | None = None) -> list[Edit]:
    """Every edit the operators propose for one cell's source (which must parse)."""
    tree = ast.parse(source)
    src = _Source(source)
    found: list[Edit] = []
    for operator in (operators or OPERATORS).values():
        found.extend(operator(tree, src, ctx))
    return found


def apply(source: str, edit: Edit) -> str:
    return source[: edit.start] + edit.text + source[edit.end :]


def call_values(sources: list[str], parameters: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """For each function defined in `sources`: its parameters' constant values, from its
    defaults and from calls whose arguments are literals or notebook parameters (first call
    wins). A parameter whose value is known nowhere is left out."""
    trees = []
    for source in sources:
        try:
            trees.append(ast.parse(source))
        except SyntaxError:
            continue
    defs: dict[str, ast.FunctionDef] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                defs[node.name] = node
    values: dict[str, dict[str, Any]] = {name: {} for name in defs}
    for tree in trees:
        for call in _calls(tree):
            name = call.func.id if isinstance(call.func, ast.Name) else ""
            if name not in defs:
                continue
            given = list(zip(_positional(defs[name]), call.args, strict=False))
            given += [(kw.arg, kw.value) for kw in call.keywords if kw.arg]
            for param, node in given:
                value = _resolve(node, parameters)
                if value is not _UNKNOWN:
                    values[name].setdefault(param, value)
    for name, func in defs.items():  # a default counts where no call passes a value
        names = _positional(func)
        for param, default in zip(reversed(names), reversed(func.args.defaults), strict=False):
            value = _resolve(default, parameters)
            if value is not _UNKNOWN:
                values[name].setdefault(param, value)
    return {name: found for name, found in values.items() if found}


_UNKNOWN = object()


def _positional(func: ast.FunctionDef) -> list[str]:
    return [a.arg for a in (*func.args.posonlyargs, *func.args.args)]


def _resolve(node: ast.expr, parameters: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Name) and node.id in parameters:
        return parameters[node.id]
    value = _literal(node)
    if isinstance(value, int | float | str | bool) or _ints(value):
        return value
    return _UNKNOWN
