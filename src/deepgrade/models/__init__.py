"""Trained models the exercises read (resnet1, mobilenetv2), as `.keras` files in the cache.

An exercise whose spec says `models = ["resnet1"]` gets `/data/resnet1.keras` mounted read-only.
The file lives at `cache/models/<name>/<profile>/<name>.keras` beside a RECIPE.json (how it was
made: trained with which epochs, seed and data, or imported from which file and its sha256, the
test accuracy and the seconds it took) and SHA256SUMS. For "smoke" it is the file shipped in this
package (`shipped/<name>.keras`, trained once by `scripts/ship-smoke-models` with the recipe its
`shipped/<name>.json` records) copied into the cache; only when the recipe changed since, it is
trained on demand on the CIFAR-10 look-alike. It is shipped because training is not the same
on every CPU: the same recipe and seed gave MobileNetV2 a ten-class accuracy of 0.836 on one
CPU family and 0.776 on another (oneDNN's kernels round differently with and without
AVX-512, and a thousand steps of training amplify it), which moved the exercises' measured
accuracies across their thresholds. For "full" it is the author's file imported by the
instructor or a full training run (hours on a CPU), never made behind the grader's back.

Files are written as the data cache writes its entries (deepgrade.datasets._cache): built in a
temporary folder, renamed into place, under an flock on `cache/models/<name>/.lock`, so parallel
graders train a missing smoke model once and never read half a file. Importing this package
imports no Keras.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

from deepgrade.datasets import _cache
from deepgrade.errors import DeepgradeError, InputError
from deepgrade.exercise import PROFILES
from deepgrade.models import mobilenetv2, resnet1
from deepgrade.tfquiet import import_tensorflow_quietly

__all__ = [
    "MODELS",
    "PROFILES",
    "ensure",
    "get",
    "import_model",
    "model_path",
    "ship",
    "shipped",
    "train",
]

log = logging.getLogger(__name__)

MODELS: Mapping[str, ModuleType] = MappingProxyType(
    {resnet1.NAME: resnet1, mobilenetv2.NAME: mobilenetv2}
)
RECIPE = _cache.RECIPE
SHIPPED = Path(__file__).parent / "shipped"  # the smoke profile's files, trained once
RECIPE_VERSION = 1  # bump when training changes in a way RECIPE.json's fields do not show


def get(name: str) -> ModuleType:
    """The module of model `name` (build, train, RECIPES, ...), or DeepgradeError."""
    try:
        return MODELS[name]
    except KeyError:
        raise DeepgradeError(
            f"unknown model {name!r} (known: {', '.join(sorted(MODELS))})"
        ) from None


def _profile(profile_name: str) -> str:
    if profile_name not in PROFILES:
        raise DeepgradeError(
            f"unknown model profile {profile_name!r} (known: {', '.join(PROFILES)})"
        )
    return profile_name


def model_path(name: str, profile_name: str, cache: Path) -> Path:
    """Where ensure() finds the file: cache/models/<name>/<profile>/<name>.keras."""
    get(name)
    return Path(cache) / "models" / name / _profile(profile_name) / f"{name}.keras"


def _recorded(entry: Path, file: str) -> dict[str, Any] | None:
    """RECIPE.json of an intact entry (file unchanged since written), else None."""
    try:
        recipe = json.loads((entry / RECIPE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(recipe, dict) or _cache.changed_files(entry, [file]):
        return None
    return recipe


def _smoke_expected(name: str) -> dict[str, Any]:
    recipe = get(name).RECIPES["smoke"]
    return {"how": "trained", "recipe_version": RECIPE_VERSION, **recipe.as_json()}


def _smoke_is_current(name: str, recorded: dict[str, Any] | None) -> bool:
    if recorded is None:
        return False
    expected = _smoke_expected(name)
    return all(recorded.get(key) == value for key, value in expected.items())


def _commands(name: str, cache: Path) -> tuple[str, str]:
    from deepgrade.project import cache_dir

    prefix = "" if Path(cache) == cache_dir() else f"DEEPGRADE_CACHE={cache} "
    return (
        f"`{prefix}deepgrade models import {name} PATH`",
        f"`{prefix}deepgrade models train {name} --profile full`",
    )


def shipped(name: str) -> tuple[Path, dict[str, Any]] | None:
    """The shipped smoke file of model `name` and its record, if it matches today's recipe.

    None when the package ships none, when the file's sha256 is not the recorded one, or when
    the recipe changed since it was trained (then ensure() trains, and says the file is stale).
    """
    path = SHIPPED / f"{get(name).NAME}.keras"
    try:
        info = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        not isinstance(info, dict)
        or not path.is_file()
        or info.get("sha256") != _cache.sha256(path)
    ):
        log.warning("%s: missing or not the file its .json records; training instead", path)
        return None
    if not _smoke_is_current(name, info):
        log.warning("%s was trained with another recipe than today's; training instead", path)
        return None
    return path, info


def ship(name: str) -> Path:
    """Train model `name` with today's smoke recipe and store it in the package (SHIPPED).

    For maintainers (`scripts/ship-smoke-models`) after a recipe change: the file and its record,
    with its sha256 and the CPU that trained it, are then committed and recalibrated against.
    It trains in a cache of its own, so nothing cached or shipped before is reused.
    """
    import platform
    import tempfile

    with tempfile.TemporaryDirectory(prefix="deepgrade-ship-") as cache:
        trained = train(name, "smoke", Path(cache))
        info = json.loads((trained.parent / RECIPE).read_text(encoding="utf-8"))
        SHIPPED.mkdir(exist_ok=True)
        target = SHIPPED / trained.name
        shutil.copyfile(trained, target)
    info.update(sha256=_cache.sha256(target), trained_on=_cpu_model() or platform.machine())
    target.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return target


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return ""


def _install_shipped(name: str, cache: Path, source: Path, info: dict[str, Any]) -> Path:
    """Copy the shipped file into the cache entry (under the model's lock, as train() does)."""
    path = model_path(name, "smoke", cache)
    folder = path.parent.parent

    def fill(tmp: Path) -> None:
        shutil.copyfile(source, tmp / path.name)
        record = {k: v for k, v in info.items() if k != "sha256"}
        (tmp / RECIPE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        _cache.write_sums(tmp, [path.name])

    with _cache._locked(folder):
        if not _smoke_is_current(name, _recorded(path.parent, path.name)):
            _cache._build(folder, "smoke", fill)
    return path


def ensure(name: str, profile_name: str, cache: Path) -> Path:
    """The `.keras` file of model `name` for the profile, for mounting at /data/<name>.keras.

    "smoke": the shipped file, copied into the cache once (trained on the look-alike instead
    when the recipe changed since it was shipped), then reused.
    "full": must have been imported or trained; else DeepgradeError naming both commands.
    """
    path = model_path(name, profile_name, cache)
    entry = path.parent
    if profile_name == "full":
        if _recorded(entry, path.name) is not None:
            return path
        imp, trn = _commands(name, cache)
        if (entry / RECIPE).is_file():
            raise DeepgradeError(
                f"{path}: missing or changed since it was written (sha256 differs from "
                f"{_cache.SUMS}); import the author's file again with {imp} or train with {trn}"
            )
        module = get(name)
        if hasattr(module, "FULL_MISSING"):  # imported only (e.g. ImageNet weights)
            how = module.FULL_MISSING.format(source=module.SOURCE, imp=imp)
            raise DeepgradeError(f"the full {name} model is not in the cache ({path}); {how}")
        raise DeepgradeError(
            f"the full {name} model is not in the cache ({path}); import the author's "
            f"trained file ({module.SOURCE}) with {imp}, or train it with {trn} "
            f"({module.RECIPES['full'].epochs} epochs on the real data: hours, use a GPU)"
        )
    if _smoke_is_current(name, _recorded(entry, path.name)):
        return path
    found = shipped(name)
    if found is not None:
        return _install_shipped(name, cache, *found)
    return train(name, "smoke", cache)


def _training_data(recipe: Any, cache: Path) -> Any:
    """The cifar10 arrays a recipe trains on (the look-alike at its sizes, or the real set)."""
    from deepgrade import datasets

    if recipe.sizes:
        directory = datasets.ensure("cifar10", recipe.data, cache, sizes=dict(recipe.sizes))
    else:
        directory = datasets.ensure("cifar10", recipe.data, cache)
    from deepgrade.datasets import cifar10

    return cifar10.load(directory)


def train(
    name: str,
    profile_name: str,
    cache: Path,
    *,
    epochs: int | None = None,
    seed: int | None = None,
    verbose: int = 0,
) -> Path:
    """Train model `name` with the profile's recipe (epochs/seed overridable) into the cache.

    Smoke training waits on the model's lock and skips the work when another process finished
    the same recipe meanwhile; an explicit run (the CLI) always trains and replaces the file.
    """
    import dataclasses
    import inspect

    import_tensorflow_quietly()
    module = get(name)
    path = model_path(name, profile_name, cache)
    if profile_name not in module.RECIPES:
        imp, _ = _commands(name, cache)
        raise DeepgradeError(f"the {profile_name} {name} model is not trained here: use {imp}")
    recipe = module.RECIPES[profile_name]
    for key, value, least in (("epochs", epochs, 1), ("seed", seed, 0)):
        if value is not None and (isinstance(value, bool) or value < least):
            raise DeepgradeError(f"{key} must be an integer >= {least}, got {value!r}")
    overrides = {k: v for k, v in (("epochs", epochs), ("seed", seed)) if v is not None}
    recipe = dataclasses.replace(recipe, **overrides)
    on_demand = profile_name == "smoke" and not overrides
    folder = path.parent.parent
    with _cache._locked(folder):
        if on_demand and _smoke_is_current(name, _recorded(path.parent, path.name)):
            return path  # another grader trained it while we waited for the lock
        if hasattr(module, "training_data"):  # its own draw (mobilenetv2: another seed)
            data = module.training_data(recipe)
        else:
            data = _training_data(recipe, Path(cache))
        takes_recipe = "recipe" in inspect.signature(module.train).parameters
        extra = {"recipe": recipe} if takes_recipe else {}
        log.warning(
            "training %s (%s: %d epochs on %d %s images); this happens once",
            name,
            profile_name,
            recipe.epochs,
            len(data.x_train),
            f"cifar10 {recipe.data}",
        )
        result = module.train(
            data.x_train,
            data.y_train,
            data.x_test,
            data.y_test,
            epochs=recipe.epochs,
            seed=recipe.seed,
            batch_size=recipe.batch_size,
            verbose=verbose,
            **extra,
        )
        info = {
            "model": name,
            "profile": profile_name,
            "how": "trained",
            "recipe_version": RECIPE_VERSION,
            **recipe.as_json(),
            "n_train": len(data.x_train),
            "n_test": len(data.x_test),
            "accuracy": round(result.accuracy, 4),
            "seconds": round(result.seconds, 1),
        }

        def fill(tmp: Path) -> None:
            _save(result.model, tmp / path.name, info)

        _cache._build(folder, profile_name, fill)
    log.warning("%s: test accuracy %.4f after %.0f s", path, result.accuracy, result.seconds)
    return path


def _save(model: Any, target: Path, info: dict[str, Any]) -> None:
    """Save, validate as the grader will, write RECIPE.json and SHA256SUMS beside it."""
    import keras

    from deepgrade.artifacts import validate_model_file

    model.save(target)
    validate_model_file(target)
    info = {**info, "keras_version": keras.__version__}
    (target.parent / RECIPE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    _cache.write_sums(target.parent, [target.name])


def _check_interface(model: Any, module: ModuleType, path: Path) -> None:
    """Refuse a model whose input is not the exercise's images or whose output is no softmax."""
    import numpy as np

    inputs = model.inputs
    if len(inputs) != 1 or tuple(inputs[0].shape[1:]) != module.INPUT_SHAPE:
        shapes = ", ".join(str(tuple(t.shape)) for t in inputs)
        raise InputError(
            path,
            f"the model's input is {shapes}, expected {(None, *module.INPUT_SHAPE)} images",
        )
    outputs = model.outputs
    if len(outputs) != 1 or tuple(outputs[0].shape[1:]) != (module.NUM_CLASSES,):
        shapes = ", ".join(str(tuple(t.shape)) for t in outputs)
        raise InputError(
            path,
            f"the model's output is {shapes}, expected {module.NUM_CLASSES} class probabilities",
        )
    rng = np.random.default_rng(0)
    probe = rng.uniform(-0.5, 0.5, size=(4, *module.INPUT_SHAPE)).astype(np.float32)
    p = np.asarray(model.predict(probe, verbose=0), dtype=np.float64)
    if not (np.all(np.isfinite(p)) and np.all(p >= 0) and np.allclose(p.sum(axis=1), 1, atol=1e-3)):
        raise InputError(path, "the model's output is not a softmax (rows must sum to 1)")


def import_model(name: str, source: Path, cache: Path) -> Path:
    """Convert the author's trained file (legacy Keras 2 `.h5`, or `.keras`) into the cache.

    The author's file is trusted (the instructor supplies it), so Keras' legacy HDF5 loader may
    rebuild it; what lands in the cache is a `.keras` file that passes the grader's static
    validation, with the source's sha256 in RECIPE.json. Used by the full profile. A refused
    file (InputError naming it) leaves an earlier import untouched.
    """
    import tempfile

    import_tensorflow_quietly()
    module = get(name)
    source = Path(source)
    if not source.is_file():
        raise InputError(source, "no such file" if not source.exists() else "not a file")
    if source.suffix not in (".h5", ".hdf5", ".keras") and not hasattr(module, "load_source"):
        raise InputError(source, "expected the trained model as a Keras .h5 (or .keras) file")
    path = model_path(name, "full", cache)
    with tempfile.TemporaryDirectory(prefix="deepgrade-import-") as tmp:
        # Load a private copy, so the sha256 recorded is of exactly the bytes converted.
        staged = Path(tmp) / f"source{source.suffix}"
        shutil.copyfile(source, staged)
        digest = _cache.sha256(staged)
        extra: dict[str, Any] = {}
        if hasattr(module, "load_source"):  # the model's own format (e.g. ImageNet weights)
            model, extra = module.load_source(staged, source)
        else:
            model = _load_trusted(staged, source)
            _check_interface(model, module, source)
    info = {
        "model": name,
        "profile": "full",
        "how": "imported",
        "source": str(source.resolve()),
        "source_sha256": digest,
        "params": int(model.count_params()),
        **extra,
    }
    if info["params"] != module.PARAMS:
        log.warning(
            "%s: %d parameters, the course's %s has %d", source, info["params"], name, module.PARAMS
        )
    folder = path.parent.parent
    with _cache._locked(folder):
        _cache._build(folder, "full", lambda tmp: _save(model, tmp / path.name, info))
    return path


def _load_trusted(staged: Path, source: Path) -> Any:
    """Load a trusted model file (a copy of `source`); problems are InputError(source, ...)."""
    import keras

    if staged.suffix == ".keras":
        from deepgrade.artifacts import validate_model_file

        try:
            validate_model_file(staged)
        except InputError as exc:
            raise InputError(source, exc.problem) from None
    else:
        import h5py

        try:
            with h5py.File(staged, "r", locking=False) as f:
                if "model_config" not in f.attrs:
                    raise InputError(
                        source,
                        "an HDF5 file without a model_config (weights only?): expected the "
                        "whole model saved by model.save('resnet1.h5')",
                    )
        except OSError:
            raise InputError(source, "not an HDF5 file") from None
    try:
        return keras.models.load_model(staged, compile=False, safe_mode=staged.suffix == ".keras")
    except InputError:
        raise
    except Exception as exc:  # Keras raises many types for files it cannot rebuild
        raise InputError(source, f"Keras could not load it ({type(exc).__name__}: {exc})") from None
