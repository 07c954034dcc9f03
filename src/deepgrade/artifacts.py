"""What a submission's run produced: presence checks and the static validation of models.

A `.keras` file is a zip holding `config.json` (the architecture) and the weights. Loading it
rebuilds every object the config names, so a hostile file could name a `Lambda` holding
marshalled bytecode, a custom class, or a `TFSMLayer` pointing at a SavedModel. Keras' own
`safe_mode=True` refuses lambdas only; we go further and read config.json with the standard
library *before* Keras sees the file, allowing nothing but the Keras built-ins listed in
model_allowlist, each by exact name and in its place. The checks then load with
`safe_mode=True, compile=False` as a second wall (keras' lower bound in pyproject.toml is past
the releases with published safe_mode bypasses).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from deepgrade import model_allowlist
from deepgrade.errors import InputError

MAX_MODEL_BYTES = 512 * 1024 * 1024  # uncompressed total: the course's models are a few MB
MAX_CONFIG_BYTES = 16 * 1024 * 1024
MAX_RATIO = 200  # uncompressed / compressed per member above 1 MB: a zip bomb, not weights

_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]{40,}$")


def missing_artifacts(artifacts_dir: Path, required: Iterable[str]) -> list[str]:
    """The required artifact names that are not plain files in `artifacts_dir`, in order."""
    missing = []
    for name in required:
        path = artifacts_dir / name
        if path.is_symlink() or not path.is_file():
            missing.append(name)
    return missing


def _looks_like_bytecode(text: str) -> bool:
    """True for base64 of a marshalled code object, as Keras' func_dump writes it."""
    if not _BASE64.match(text):
        return False
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=False)
    except (binascii.Error, ValueError):
        return False
    return raw[:1] in (b"c", b"\xe3")


def check_config(config: Any, path: Path | str) -> None:
    """Refuse a model config naming anything but allowed Keras built-ins (model_allowlist)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise InputError(path, "config.json does not describe a Keras model")
    for node, slot in model_allowlist.walk(config):
        problem = None
        if isinstance(node, str):
            if _looks_like_bytecode(node):
                raise InputError(path, "the saved model contains serialized Python code")
            problem = model_allowlist.string_problem(node, slot)
        elif isinstance(node, dict) and ("class_name" in node or "module" in node):
            problem = model_allowlist.object_problem(node, slot)
        if problem:
            raise InputError(path, f"the saved model {problem}")


def _read_config(path: Path) -> dict[str, Any]:
    """config.json of a .keras zip, after size checks that stop zip bombs."""
    if not path.is_file():
        raise InputError(path, "no such model file")
    if not zipfile.is_zipfile(path):
        raise InputError(path, "not a Keras .keras file (not a zip archive); save with model.save")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            total = sum(info.file_size for info in infos)
            if total > MAX_MODEL_BYTES:
                raise InputError(path, f"too large once unpacked ({total // 2**20} MiB)")
            for info in infos:
                if info.file_size > 2**20 and info.file_size > MAX_RATIO * max(
                    info.compress_size, 1
                ):
                    raise InputError(path, f"member {info.filename!r} is compressed suspiciously")
            names = {info.filename for info in infos}
            if "config.json" not in names:
                raise InputError(path, "not a Keras .keras file (no config.json inside)")
            with archive.open("config.json") as handle:
                raw = handle.read(MAX_CONFIG_BYTES + 1)
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as exc:
        raise InputError(path, f"damaged .keras file ({type(exc).__name__})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise InputError(path, "config.json is too large")
    try:
        config = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise InputError(path, "config.json is not valid JSON") from None
    if not isinstance(config, dict):
        raise InputError(path, "config.json does not describe a Keras model")
    return config


def validate_model_file(path: Path) -> None:
    """Raise InputError unless `path` is a .keras zip built only from Keras built-ins."""
    path = Path(path)
    check_config(_read_config(path), path)


def read_compile_config(path: Path) -> dict[str, Any] | None:
    """The optimizer, loss and metrics saved with the model, read without compiling it.

    None when the model was saved uncompiled (Keras then writes no or an empty table).
    """
    path = Path(path)
    config = _read_config(path)
    compile_config = config.get("compile_config")
    return compile_config if isinstance(compile_config, dict) and compile_config else None


def load_model(path: Path) -> Any:
    """Validate, then load in Keras' safe mode without compiling (the checks only predict)."""
    path = Path(path)
    validate_model_file(path)
    import keras

    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises many types for a file it cannot rebuild
        raise InputError(path, f"Keras could not load it ({type(exc).__name__})") from None
