"""`datasets/manifest.toml`: what each real data set is and where it comes from, for people.

The manifest is documentation that a test keeps honest (it must agree with the registry: files,
arrays, shapes, dtypes, the look-alike's generator and sizes). It is TOML, not code, so an
instructor can read it without Python; the code never needs it at grading time.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from deepgrade.datasets._registry import Layout
from deepgrade.errors import InputError

MANIFEST = "manifest.toml"  # in the course repository's datasets/ folder
_REQUIRED = ("title", "source", "licence", "checksums", "files", "synthetic")


@dataclass(frozen=True)
class ManifestEntry:
    """One real data set as the manifest describes it."""

    name: str
    title: str
    source: str  # where the course points people for it
    licence: str
    # file -> "md5:<hex>" (or "sha256:<hex>") where published; else a sentence saying none is
    # (the import records its own sha256 either way)
    checksums: str | Mapping[str, str]
    layout: Layout
    synthetic: Mapping[str, Any]  # generator, recipe_version, seed, sizes, recipe


def _layout(raw: Any, path: Path, where: str) -> Layout:
    if not isinstance(raw, dict) or not raw:
        raise InputError(path, f"{where}: expected a table of files")
    layout: dict[str, dict[str, tuple[tuple[int, ...], str]]] = {}
    for file, arrays in raw.items():
        if not isinstance(arrays, dict):
            raise InputError(path, f"{where}.{file}: expected a table of arrays")
        layout[file] = {}
        for key, spec in arrays.items():
            shape = spec.get("shape") if isinstance(spec, dict) else None
            dtype = spec.get("dtype") if isinstance(spec, dict) else None
            if not (isinstance(shape, list) and all(isinstance(d, int) for d in shape)) or not (
                isinstance(dtype, str)
            ):
                raise InputError(
                    path, f'{where}.{file}.{key}: expected {{ shape = [ints], dtype = "..." }}'
                )
            layout[file][key] = (tuple(shape), dtype)
    return layout


def read_manifest(path: Path) -> dict[str, ManifestEntry]:
    """Read and check the manifest; every problem names the file and the table."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "no data set manifest here") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(path, f"not valid TOML: {exc}") from None
    entries = {}
    for name, table in raw.items():
        where = f"[{name}]"
        if not isinstance(table, dict):
            raise InputError(path, f"{where}: expected a table")
        for key in _REQUIRED:
            if key not in table:
                raise InputError(path, f"{where}: missing key {key!r}")
        checksums = table["checksums"]
        if not isinstance(checksums, str | dict):
            raise InputError(path, f"{where}: checksums must be a sentence or a file table")
        if not isinstance(table["synthetic"], dict):
            raise InputError(path, f"{where}.synthetic: expected a table")
        entries[name] = ManifestEntry(
            name=name,
            title=str(table["title"]),
            source=str(table["source"]),
            licence=str(table["licence"]),
            checksums=checksums,
            layout=_layout(table["files"], path, f"{where}.files"),
            synthetic=MappingProxyType(table["synthetic"]),
        )
    return entries
