"""What a saved model's config.json may name: Keras built-ins, by exact name, per place.

Loading a `.keras` file rebuilds every `{"module", "class_name", "config"}` object its
config.json names, and Keras resolves a name under any `keras.*` module: a "layer" naming
`keras.utils.get_file`, or an "activation" naming `keras.config.enable_unsafe_deserialization`,
were the building blocks of published `safe_mode` bypasses. So a module prefix proves nothing.
Here every object must be one of the names below, from the module Keras 3 writes for it, in a
place where that kind of object belongs (a layer in a model's `layers`, an initializer under a
`*_initializer` key, an activation function under `activation`...). The lists hold the layers
the course's six exercises use plus the common Keras layers; anything else is refused with a
message a student can act on. Keras' own `safe_mode=True` stays behind this as a second wall.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# Layers that run arbitrary code or load things from outside the file: named in messages.
FORBIDDEN_CLASSES = frozenset(
    {"Lambda", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "FlaxLayer"}
)
# Keras' markers for plain data inside a config; `__lambda__` (bytecode) is not among them.
DATA_MARKERS = frozenset(
    {"__keras_tensor__", "__tensor__", "__numpy__", "__bytes__", "__ellipsis__", "__slice__"}
)

COURSE_LAYERS = frozenset(
    {
        "InputLayer", "Dense", "Conv2D", "MaxPooling2D", "BatchNormalization", "Dropout",
        "Flatten", "Activation", "Add", "GlobalAveragePooling2D", "RandomFlip",
        "RandomRotation", "RandomTranslation", "Resizing",
    }
)  # fmt: skip
COMMON_LAYERS = frozenset(
    {
        "Conv1D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
        "SeparableConv1D", "SeparableConv2D", "DepthwiseConv1D", "DepthwiseConv2D",
        "MaxPooling1D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
        "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling3D",
        "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
        "Reshape", "Permute", "RepeatVector", "Identity", "Embedding",
        "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
        "GaussianDropout", "AlphaDropout", "ActivityRegularization",
        "LayerNormalization", "GroupNormalization", "UnitNormalization", "Normalization",
        "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax",
        "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot",
        "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D",
        "Cropping3D", "UpSampling1D", "UpSampling2D", "UpSampling3D",
        "Rescaling", "CenterCrop", "RandomCrop", "RandomZoom", "RandomContrast",
        "RandomBrightness",
    }
)  # fmt: skip
MODELS = frozenset({"Sequential", "Functional"})
INITIALIZERS = frozenset(
    {
        "Zeros", "Ones", "Constant", "GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform",
        "LecunNormal", "LecunUniform", "RandomNormal", "RandomUniform", "TruncatedNormal",
        "VarianceScaling", "Orthogonal", "OrthogonalInitializer", "Identity",
        "IdentityInitializer",
    }
)  # fmt: skip
REGULARIZERS = frozenset({"L1", "L2", "L1L2", "OrthogonalRegularizer"})
CONSTRAINTS = frozenset({"MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm"})
OPTIMIZERS = frozenset(
    {
        "Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "Ftrl", "Lamb", "Lion",
        "Nadam", "RMSprop", "SGD",
    }
)  # fmt: skip
SCHEDULES = frozenset(
    {
        "CosineDecay", "CosineDecayRestarts", "ExponentialDecay", "InverseTimeDecay",
        "PiecewiseConstantDecay", "PolynomialDecay",
    }
)  # fmt: skip
LOSSES = frozenset(
    {
        "BinaryCrossentropy", "BinaryFocalCrossentropy", "CategoricalCrossentropy",
        "CategoricalFocalCrossentropy", "CategoricalHinge", "CosineSimilarity", "Hinge",
        "Huber", "KLDivergence", "LogCosh", "MeanAbsoluteError", "MeanAbsolutePercentageError",
        "MeanSquaredError", "MeanSquaredLogarithmicError", "Poisson",
        "SparseCategoricalCrossentropy", "SquaredHinge",
    }
)  # fmt: skip
METRICS = frozenset(
    {
        "AUC", "Accuracy", "BinaryAccuracy", "BinaryCrossentropy", "CategoricalAccuracy",
        "CategoricalCrossentropy", "CategoricalHinge", "F1Score", "FBetaScore",
        "FalseNegatives", "FalsePositives", "Hinge", "KLDivergence", "Mean",
        "MeanAbsoluteError", "MeanSquaredError", "Precision", "Recall",
        "RootMeanSquaredError", "SparseCategoricalAccuracy", "SparseCategoricalCrossentropy",
        "SparseTopKCategoricalAccuracy", "SquaredHinge", "Sum", "TopKCategoricalAccuracy",
        "TrueNegatives", "TruePositives",
    }
)  # fmt: skip
DTYPE_POLICIES = frozenset({"DTypePolicy", "FloatDTypePolicy"})

ACTIVATIONS = frozenset(
    {
        "relu", "sigmoid", "softmax", "tanh", "linear", "elu", "selu", "celu", "gelu", "glu",
        "softplus", "softsign", "swish", "silu", "mish", "exponential", "hard_sigmoid",
        "hard_silu", "hard_swish", "hard_tanh", "hard_shrink", "soft_shrink", "tanh_shrink",
        "leaky_relu", "relu6", "log_softmax", "log_sigmoid", "squareplus", "sparse_plus",
        "sparsemax", "sparse_sigmoid", "threshold",
    }
)  # fmt: skip
LOSS_FUNCTIONS = frozenset(
    {
        "binary_crossentropy", "binary_focal_crossentropy", "categorical_crossentropy",
        "categorical_focal_crossentropy", "sparse_categorical_crossentropy",
        "mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
        "mean_squared_logarithmic_error", "hinge", "squared_hinge", "categorical_hinge",
        "kl_divergence", "poisson", "huber", "log_cosh", "cosine_similarity",
    }
)  # fmt: skip
METRIC_FUNCTIONS = LOSS_FUNCTIONS | frozenset(
    {
        "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
        "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Kind:
    """One kind of Keras object: the names allowed and the modules Keras 3 writes for them."""

    label: str  # for messages: "layer", "initializer"...
    names: frozenset[str]
    public: frozenset[str]  # e.g. keras.layers
    private: str  # e.g. keras.src.layers: the defining modules, which some versions write
    # Other defining modules, e.g. the backend's own optimizer classes (the PyTorch backend's
    # Adam is keras.src.backend.torch.optimizers.torch_adam.Adam): same names, same configs.
    also_private: tuple[str, ...] = ()

    def module_ok(self, module: object) -> bool:
        if not isinstance(module, str):
            return False
        private = any(
            module == prefix or module.startswith(prefix + ".")
            for prefix in (self.private, *self.also_private)
        )
        return private or module in self.public


KINDS: dict[str, Kind] = {
    "model": Kind("model", MODELS, frozenset({"keras", "keras.models"}), "keras.src.models"),
    "layer": Kind(
        "layer", COURSE_LAYERS | COMMON_LAYERS, frozenset({"keras.layers"}), "keras.src.layers"
    ),
    "initializer": Kind(
        "initializer", INITIALIZERS, frozenset({"keras.initializers"}), "keras.src.initializers"
    ),
    "regularizer": Kind(
        "regularizer", REGULARIZERS, frozenset({"keras.regularizers"}), "keras.src.regularizers"
    ),
    "constraint": Kind(
        "constraint", CONSTRAINTS, frozenset({"keras.constraints"}), "keras.src.constraints"
    ),
    "optimizer": Kind(
        "optimizer",
        OPTIMIZERS,
        frozenset({"keras.optimizers"}),
        "keras.src.optimizers",
        tuple(f"keras.src.backend.{name}.optimizers" for name in ("tensorflow", "jax", "torch")),
    ),
    "schedule": Kind(
        "learning-rate schedule",
        SCHEDULES,
        frozenset({"keras.optimizers.schedules"}),
        "keras.src.optimizers.schedules",
    ),
    "loss": Kind("loss", LOSSES, frozenset({"keras.losses"}), "keras.src.losses"),
    "metric": Kind("metric", METRICS, frozenset({"keras.metrics"}), "keras.src.metrics"),
    "dtype": Kind(
        "dtype policy",
        DTYPE_POLICIES,
        frozenset({"keras", "keras.dtype_policies"}),
        "keras.src.dtype_policies",
    ),
}
# Functions (class_name "function"): the family a module stands for, and its names.
FUNCTIONS: dict[str, frozenset[str]] = {
    "activation": ACTIVATIONS,
    "loss": LOSS_FUNCTIONS,
    "metric": METRIC_FUNCTIONS,
}
_FUNCTION_MODULES = {
    "activation": ("keras.activations", "keras.src.activations"),
    "loss": ("keras.losses", "keras.src.losses"),
    "metric": ("keras.metrics", "keras.src.metrics"),
}
# What each place in a config may hold: kinds of objects, and families of functions.
_SLOTS: dict[str | None, tuple[frozenset[str], frozenset[str]]] = {
    "model": (frozenset({"model"}), frozenset()),
    "layer": (frozenset({"layer", "model"}), frozenset()),
    "activation": (frozenset(), frozenset({"activation"})),
    "initializer": (frozenset({"initializer"}), frozenset()),
    "regularizer": (frozenset({"regularizer"}), frozenset()),
    "constraint": (frozenset({"constraint"}), frozenset()),
    "optimizer": (frozenset({"optimizer"}), frozenset()),
    "schedule": (frozenset({"schedule"}), frozenset()),
    "loss": (frozenset({"loss"}), frozenset({"loss"})),
    "metric": (frozenset({"metric"}), frozenset({"metric"})),
    "dtype": (frozenset({"dtype"}), frozenset()),
    None: (frozenset(KINDS), frozenset(FUNCTIONS)),  # anywhere else: any built-in
}
# Strings Keras resolves by name in these places (e.g. activation="relu").
_STRING_SLOTS = {
    "activation": ACTIVATIONS,
    "initializer": INITIALIZERS,
    "regularizer": REGULARIZERS,
    "constraint": CONSTRAINTS,
}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ARTICLE = {True: "an", False: "a"}


def slot_of(key: str) -> str | None:
    """The kind of place a config key is (None: nothing in particular)."""
    if key == "layers":
        return "layer"
    if key in ("activation", "recurrent_activation"):
        return "activation"
    for suffix in ("initializer", "regularizer", "constraint"):
        if key.endswith(suffix):
            return suffix
    named = {
        "optimizer": "optimizer",
        "learning_rate": "schedule",
        "loss": "loss",
        "metrics": "metric",
        "weighted_metrics": "metric",
        "dtype": "dtype",
    }
    return named.get(key)


def _a(label: str) -> str:
    return f"{_ARTICLE[label[:1] in 'aeiou']} {label}"


def _squash(name: str) -> str:
    return name.replace("_", "").lower()


def string_problem(value: str, slot: str | None) -> str | None:
    """Why a name written as a plain string in this place is not allowed, or None."""
    allowed = _STRING_SLOTS.get(slot or "")
    if allowed is None:
        return None
    if value in allowed or _squash(value) in {_squash(name) for name in allowed}:
        return None
    return f"uses {value[:60]!r} as {_a(str(slot))}, which is not one of Keras' built-in {slot}s"


def _function_problem(obj: Mapping[str, Any], slot: str | None) -> str | None:
    families = _SLOTS.get(slot, _SLOTS[None])[1]
    fn, module = obj.get("config"), obj.get("module")
    if not isinstance(fn, str) or not _IDENTIFIER.match(fn):
        return "names a function that is not a Keras built-in"
    if not families:
        return (
            f"uses the function {fn!r} where {_a(slot or 'object')} goes; "
            "use Keras' built-in classes there"
        )
    if module == "builtins":
        from_module = set(families)
    else:
        from_module = {
            family
            for family, (public, private) in _FUNCTION_MODULES.items()
            if isinstance(module, str)
            and (module in (public, private) or module.startswith(private + "."))
        } & families
    if not any(fn in FUNCTIONS[family] for family in from_module):
        wanted = " or ".join(sorted(families))
        return (
            f"uses the Python function {fn!r} from {module!r}; "
            f"use Keras' built-in {wanted} functions (for example activation='relu')"
        )
    if obj.get("registered_name") not in (None, fn, "function"):
        return f"uses a custom function {obj.get('registered_name')!r}; use Keras' built-ins"
    return None


def object_problem(obj: Mapping[str, Any], slot: str | None) -> str | None:
    """Why this serialized object may not be loaded in this place, or None when allowed."""
    class_name, module = obj.get("class_name"), obj.get("module")
    if class_name == "__lambda__":
        return "contains a serialized Python lambda; use named Keras layers and activations"
    if isinstance(class_name, str) and class_name.startswith("__"):
        if class_name in DATA_MARKERS and slot not in ("model", "layer"):
            return None
        return f"contains an object of unsupported kind {class_name[:60]!r}"
    if class_name in FORBIDDEN_CLASSES:
        return (
            f"uses a {class_name} layer, which runs code the grader cannot check; "
            "build the model from Keras' built-in layers only"
        )
    if class_name == "function":
        return _function_problem(obj, slot)
    if not isinstance(class_name, str) or not _IDENTIFIER.match(class_name):
        return f"contains an object with an invalid class name {str(class_name)[:60]!r}"
    kinds = [KINDS[name] for name in sorted(_SLOTS.get(slot, _SLOTS[None])[0])]
    matching = [kind for kind in kinds if class_name in kind.names]
    if not matching:
        elsewhere = [kind.label for kind in KINDS.values() if class_name in kind.names]
        if elsewhere and slot is not None:
            return (
                f"uses the {elsewhere[0]} {class_name!r} where {_a(slot)} goes; "
                "save the model with model.save and do not edit the file"
            )
        what = " or ".join(kind.label for kind in kinds) if slot is not None else "object"
        return (
            f"uses the custom class {class_name!r} (module {module!r}), which is not a "
            f"Keras built-in {what} the grader accepts; build the model from Keras' "
            "standard layers (Dense, Conv2D, MaxPooling2D, BatchNormalization, ...)"
        )
    if not any(kind.module_ok(module) for kind in matching):
        return (
            f"uses the custom class {class_name!r} (module {module!r}); "
            "only Keras' built-in layers can be graded"
        )
    if obj.get("registered_name") not in (None, class_name):
        return (
            f"uses the custom registered object {obj.get('registered_name')!r}; "
            "use Keras' built-in layers"
        )
    return None


def walk(config: Any) -> Iterator[tuple[Any, str | None]]:
    """Every node of the config with the kind of place it sits in, iteratively.

    An object's own fields are places by their key; a plain list or mapping passes its
    place on to what it holds (a list of metrics, a mapping of losses per output).
    """
    stack: list[tuple[Any, str | None]] = [(config, "model")]
    while stack:
        node, slot = stack.pop()
        yield node, slot
        if isinstance(node, dict):
            is_object = "class_name" in node or "module" in node
            for key, value in node.items():
                child = slot_of(key) if isinstance(key, str) else None
                stack.append((value, child or (None if is_object else slot)))
        elif isinstance(node, list):
            stack.extend((item, slot) for item in node)
