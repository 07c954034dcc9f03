"""The profile a grading run uses, resolved once: what both stages and the checks take.

`resolve_profile` looks the profile up in the exercise's spec (an unknown name is refused here,
up front, naming spec.toml and the profiles it has), merges the notebook parameters (the
profile's, then the caller's overrides such as {"SEED": 3}, then PROFILE) and the thresholds of
the Keras backend in use (`backend_thresholds`), and finds the data
and model files in the cache (making synthetic look-alikes on first use). Nothing downstream
looks the name up again: stage 1 gets the parameters, limits and files from this value, and
stage 2's checks read its JSON copy (`to_json`), bound read-only into their sandbox, so the
checks see exactly the parameters the notebook ran with.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from deepgrade.errors import DeepgradeError, InputError
from deepgrade.exercise import ExerciseSpec, ProfileSpec, parse_profile

RESERVED_PARAMETERS = ("PROFILE",)  # set from the profile's name, never overridden


@dataclass(frozen=True)
class GradingProfile:
    """One exercise's profile as a grading run uses it (make it with resolve_profile)."""

    exercise: str  # the exercise's name: a profile of another exercise is refused
    spec: ProfileSpec  # as spec.toml says: limits, thresholds, gpus, data variant
    parameters: Mapping[str, Any]  # what the notebook gets: profile's + overrides + PROFILE
    data_files: tuple[Path, ...]  # the data sets' files, mounted read-only at /data
    model_files: tuple[Path, ...]  # trained models the notebook reads, beside them

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def thresholds(self) -> Mapping[str, float]:
        return self.spec.thresholds

    @property
    def gpus(self) -> float:
        """The fraction of one GPU a worker needs (0: the CPU is fine)."""
        return self.spec.gpus

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file mounted at /data in both stages."""
        return self.data_files + self.model_files

    def to_json(self) -> dict[str, Any]:
        """What the checks read in stage 2: no host path, the files by their names in /data."""
        spec = self.spec
        return {
            "exercise": self.exercise,
            "profile": {
                "name": spec.name,
                "data": spec.data,
                "cell_timeout_s": spec.cell_timeout_s,
                "notebook_timeout_s": spec.notebook_timeout_s,
                "memory_mb": spec.memory_mb,
                "artifact_cap_mb": spec.artifact_cap_mb,
                "gpus": spec.gpus,
                "cpus": spec.cpus,
                "gpu_memory_mb": spec.gpu_memory_mb,
                "parameters": dict(spec.parameters),
                "thresholds": dict(spec.thresholds),
                "data_sizes": {k: dict(v) for k, v in spec.data_sizes.items()},
            },
            "parameters": dict(self.parameters),
            "data_files": [path.name for path in self.data_files],
            "model_files": [path.name for path in self.model_files],
        }

    def write(self, path: Path) -> Path:
        """The checks' copy (to_json) at `path`; stage 2 binds it read-only."""
        path.write_text(json.dumps(self.to_json(), indent=1, sort_keys=True), encoding="utf-8")
        return path

    @classmethod
    def read(cls, path: Path, data_dir: Path) -> GradingProfile:
        """The value `write` wrote, its files under `data_dir` (where stage 2 sees them)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            table = dict(data["profile"])
            name = table.pop("name")
            return cls(
                exercise=str(data["exercise"]),
                spec=parse_profile(str(name), table, path),
                parameters=MappingProxyType(dict(data["parameters"])),
                data_files=tuple(data_dir / str(n) for n in data["data_files"]),
                model_files=tuple(data_dir / str(n) for n in data["model_files"]),
            )
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(path, f"cannot read the grading profile: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(path, f"not a grading profile ({type(exc).__name__}: {exc})") from None


def _data_files(spec: ExerciseSpec, profile: ProfileSpec, cache: Path) -> tuple[Path, ...]:
    """The data sets' files: synthetic look-alikes (at the profile's sizes) are made on first
    use, real files must have been imported."""
    from deepgrade import datasets

    files: list[Path] = []
    for name in spec.datasets:
        sizes = profile.data_sizes.get(name)
        if sizes:
            directory = datasets.ensure(name, profile.data, cache, sizes=dict(sizes))
        else:
            directory = datasets.ensure(name, profile.data, cache)
        files.extend(directory / filename for filename in datasets.FILES[name])
    return tuple(files)


def _model_files(spec: ExerciseSpec, profile: ProfileSpec, cache: Path) -> tuple[Path, ...]:
    if not spec.models:
        return ()
    from deepgrade import models

    return tuple(models.ensure(name, profile.name, cache) for name in spec.models)


def keras_backend() -> str:
    """The Keras backend every kernel and check of this run uses (KERAS_BACKEND, passed on)."""
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def resolve_profile(
    spec: ExerciseSpec,
    name: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    cache: Path | None = None,
    data_files: Sequence[Path] | None = None,
    model_files: Sequence[Path] | None = None,
    look_alike: bool = False,
) -> GradingProfile:
    """Profile `name` of `spec`, with its parameters merged and its files found in `cache`
    (default: the user's cache). `data_files`/`model_files` replace the cache's when given
    (tests and benchmarks that bring their own). `look_alike` runs a profile made for the real
    data on the synthetic look-alike at the real files' sizes (data "synth"; the checks see
    it), which measures a full profile's time where the real data cannot be had.
    InputError naming spec.toml and the known profiles for an unknown name; DeepgradeError
    for an override of PROFILE."""
    from deepgrade.project import cache_dir

    profile = spec.profile(name).for_backend(keras_backend())
    if look_alike and profile.data == "real":
        profile = replace(profile, data="synth")
    reserved = sorted(set(overrides or {}) & set(RESERVED_PARAMETERS))
    if reserved:
        raise DeepgradeError(f"{', '.join(reserved)} is set from the profile name, not overridden")
    where = cache if cache is not None else cache_dir()
    return GradingProfile(
        exercise=spec.name,
        spec=profile,
        parameters=MappingProxyType(
            {**profile.parameters, **(overrides or {}), "PROFILE": profile.name}
        ),
        data_files=(
            tuple(data_files) if data_files is not None else _data_files(spec, profile, where)
        ),
        model_files=(
            tuple(model_files) if model_files is not None else _model_files(spec, profile, where)
        ),
    )
