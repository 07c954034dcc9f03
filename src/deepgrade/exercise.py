"""Exercise specs: `autograder/<exercise>/spec.toml` read into frozen dataclasses.

A spec says which notebook is graded, which data sets it reads, which artifacts its locked cells
must save, the grade-time cells that call student functions on hidden inputs, and per profile
(smoke, full) the notebook parameters, time, memory and artifact limits and accuracy
thresholds. Points live beside the checks (pytest markers), so they cannot drift from them.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from deepgrade.errors import InputError
from deepgrade.spec_keys import key_help

# The profile names, spelled here only: spec.toml's [profiles.*] tables, --profile's choices, the
# model recipes. smoke: synthetic data, minutes on a CPU (the CLI's default and the demo's).
PROFILES = ("smoke", "full")
DEFAULT_PROFILE = PROFILES[0]
DATA_VARIANTS = ("synth", "real")
KERAS_BACKENDS = ("tensorflow", "jax", "torch")  # what KERAS_BACKEND may name


@dataclass(frozen=True)
class ProfileSpec:
    """How one profile runs: parameters injected into the notebook, limits and thresholds."""

    name: str
    parameters: Mapping[str, Any]  # injected into the notebook's `parameters` cell
    data: str  # "synth" (look-alikes made here) or "real" (imported into the cache)
    cell_timeout_s: int
    notebook_timeout_s: int
    memory_mb: int
    artifact_cap_mb: int
    thresholds: Mapping[str, float]
    gpus: float = 0.0  # fraction of one GPU a worker needs, 0..1 (0: CPU is fine)
    cpus: int = 2  # CPUs one run needs (a Ray task asks for them): the kernel's 2 threads
    gpu_memory_mb: int | None = None  # GPU memory one run may take; sets how many share a GPU
    # Sizes of the synthetic look-alikes per data set (smoke runs on small ones), e.g.
    # {"cifar10": {"n_train": 2000, "n_test": 500}}; empty: the real files' sizes.
    data_sizes: Mapping[str, Mapping[str, int]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    # Per threshold, how close a measurement may come before it is borderline: a loaded CPU or
    # another GPU can put the same notebook either side (the class report marks the band).
    borderline: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    borderline_runs: int = 2  # K: a borderline result is run again with K other seeds
    borderline_auto: bool = False  # do it while grading (else: `regrade --borderline`)
    # Thresholds that differ by Keras backend, e.g. {"jax": {"tta_cost_ratio": 16.0}}: a cost
    # measured against a plain predict scales with each backend's fixed cost per call.
    backend_thresholds: Mapping[str, Mapping[str, float]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def for_backend(self, backend: str) -> ProfileSpec:
        """This profile as `backend` grades it: its thresholds with that backend's overrides
        merged in, and no overrides left to apply twice."""
        merged = {**self.thresholds, **self.backend_thresholds.get(backend, {})}
        return replace(
            self,
            thresholds=MappingProxyType(merged),
            backend_thresholds=MappingProxyType({}),
        )


@dataclass(frozen=True)
class ExerciseSpec:
    """One exercise: what to run, what it must produce, how each profile grades it."""

    name: str
    title: str
    directory: Path  # autograder/<name>/: spec.toml, the hidden checks, grade-time cells
    notebook: str  # file name of the notebook in source/, release/ and solutions/
    datasets: tuple[str, ...]
    artifacts: tuple[str, ...]  # files the locked cells must save into ARTIFACT_DIR
    gradetime_cells: Path | None  # `# %%`-separated cells appended at grading time
    profiles: Mapping[str, ProfileSpec]
    # Values the student never sees (n-values, label arrays...): used by the grade-time cells
    # (rendered into the grader's copy only) and by the hidden checks.
    hidden: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # Trained models the notebook reads, mounted read-only beside the data (e.g. resnet1).
    models: tuple[str, ...] = ()
    # An exercise under construction: loadable by name, left out of "every exercise" (demo,
    # check-solutions, release --check) until it is complete.
    draft: bool = False
    # Code that makes hidden inputs from hidden values (arrays from a seed), written once: the
    # checks `import` it, the grade-time cells call it as `_dg_inputs` (grade.gradetime_cells).
    hidden_module: Path | None = None
    # Checks (ids like "test_architecture::test_layers") whose result a student may see as soon
    # as they submit; every other check is a hidden check, shown once grades are published.
    visible_checks: frozenset[str] = frozenset()
    # Whether feedback pages show each measurement's threshold (the checks' messages name it
    # when a student falls below it); false keeps thresholds off the pages.
    show_thresholds: bool = True

    def profile(self, name: str) -> ProfileSpec:
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join(sorted(self.profiles))
            raise InputError(
                self.directory / "spec.toml", f"no profile {name!r} (known: {known})"
            ) from None


def _require(table: Mapping[str, Any], key: str, kind: type, path: Path, where: str) -> Any:
    if key not in table:
        raise InputError(path, f"{where}: missing key {key!r}{key_help(key)}")
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InputError(path, f"{where}: {key!r} must be {kind.__name__}, got {value!r}")
    return value


def parse_profile(name: str, table: Mapping[str, Any], path: Path) -> ProfileSpec:
    """One [profiles.NAME] table (or its JSON copy for stage 2), validated; errors name `path`."""
    where = f"[profiles.{name}]"
    data = _require(table, "data", str, path, where)
    if data not in DATA_VARIANTS:
        raise InputError(path, f"{where}: data must be one of {DATA_VARIANTS}, got {data!r}")
    thresholds = table.get("thresholds", {})
    if not isinstance(thresholds, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in thresholds.values()
    ):
        raise InputError(path, f"{where}: thresholds must be a table of numbers")
    parameters = table.get("parameters", {})
    if not isinstance(parameters, dict):
        raise InputError(path, f"{where}: parameters must be a table")
    limits = {
        key: _require(table, key, int, path, where)
        for key in ("cell_timeout_s", "notebook_timeout_s", "memory_mb", "artifact_cap_mb")
    }
    for key, value in limits.items():
        if value <= 0:
            raise InputError(path, f"{where}: {key} must be positive, got {value}")
    gpus = table.get("gpus", 0.0)
    if isinstance(gpus, bool) or not isinstance(gpus, int | float) or not 0 <= gpus <= 1:
        raise InputError(
            path, f"{where}: gpus is the fraction of one GPU a worker needs, 0 to 1; got {gpus!r}"
        )
    cpus = table.get("cpus", 2)
    if isinstance(cpus, bool) or not isinstance(cpus, int) or not 1 <= cpus <= 256:
        raise InputError(path, f"{where}: cpus is the CPUs one run needs, 1 to 256; got {cpus!r}")
    gpu_memory = table.get("gpu_memory_mb")
    if gpu_memory is not None and (
        isinstance(gpu_memory, bool) or not isinstance(gpu_memory, int) or gpu_memory <= 0
    ):
        raise InputError(
            path, f"{where}: gpu_memory_mb is the GPU memory one run may take, a positive "
            f"number of MB; got {gpu_memory!r}"
        )  # fmt: skip
    sizes = table.get("data_sizes", {})
    if not isinstance(sizes, dict) or not all(
        isinstance(v, dict)
        and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in v.values())
        for v in sizes.values()
    ):
        raise InputError(path, f"{where}: data_sizes must map data sets to positive integers")
    borderline = table.get("borderline", {})
    if not isinstance(borderline, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and v > 0
        for v in borderline.values()
    ):
        raise InputError(path, f"{where}: borderline must map thresholds to positive margins")
    unknown = sorted(set(borderline) - set(thresholds))
    if unknown:
        raise InputError(
            path, f"{where}: borderline names {unknown}, which are not in its thresholds"
        )
    by_backend = table.get("backend_thresholds", {})
    if not isinstance(by_backend, dict) or not all(
        isinstance(t, dict)
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in t.values())
        for t in by_backend.values()
    ):
        raise InputError(
            path, f"{where}: backend_thresholds must map Keras backends to tables of numbers"
        )
    for backend, overrides in by_backend.items():
        if backend not in KERAS_BACKENDS:
            raise InputError(
                path, f"{where}: backend_thresholds names {backend!r}, not a Keras backend "
                f"({', '.join(KERAS_BACKENDS)})"
            )  # fmt: skip
        stray = sorted(set(overrides) - set(thresholds))
        if stray:
            raise InputError(
                path, f"{where}: backend_thresholds.{backend} names {stray}, which are not in "
                "its thresholds"
            )  # fmt: skip
    runs = table.get("borderline_runs", 2)
    if isinstance(runs, bool) or not isinstance(runs, int) or not 1 <= runs <= 10:
        raise InputError(path, f"{where}: borderline_runs must be an integer 1 to 10, got {runs!r}")
    auto = table.get("borderline_auto", False)
    if not isinstance(auto, bool):
        raise InputError(path, f"{where}: borderline_auto must be true or false, got {auto!r}")
    return ProfileSpec(
        name=name,
        borderline=MappingProxyType({k: float(v) for k, v in borderline.items()}),
        borderline_runs=runs,
        borderline_auto=auto,
        data_sizes=MappingProxyType({k: MappingProxyType(dict(v)) for k, v in sizes.items()}),
        parameters=MappingProxyType(dict(parameters)),
        data=data,
        thresholds=MappingProxyType({k: float(v) for k, v in thresholds.items()}),
        backend_thresholds=MappingProxyType(
            {
                backend: MappingProxyType({k: float(v) for k, v in overrides.items()})
                for backend, overrides in by_backend.items()
            }
        ),
        gpus=float(gpus),
        cpus=cpus,
        gpu_memory_mb=gpu_memory,
        **limits,
    )


def _hidden_module(value: Any, directory: Path, path: Path) -> Path | None:
    """The hidden_module file: a module of the exercise folder the checks can import by name."""
    if value is None:
        return None
    hint = 'e.g. hidden_module = "hidden_inputs.py", a file beside spec.toml'
    if not isinstance(value, str) or not value.endswith(".py"):
        raise InputError(path, f"hidden_module must name a .py file ({hint}), got {value!r}")
    if not value[:-3].isidentifier() or value.startswith(("test_", "conftest")):
        raise InputError(
            path,
            f"hidden_module {value!r} must be importable by name and not a test or conftest "
            f"file ({hint})",
        )
    module = directory / value
    if not module.is_file():
        raise InputError(path, f"hidden_module file {value!r} does not exist ({hint})")
    return module


def load_spec(directory: Path) -> ExerciseSpec:
    """Read and validate `directory/spec.toml`; every error names the file and the key."""
    path = directory / "spec.toml"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "no such exercise spec") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(path, f"not valid TOML: {exc}") from None
    name = _require(raw, "name", str, path, "top level")
    if name != directory.name:
        raise InputError(path, f"name {name!r} differs from the folder name {directory.name!r}")
    profiles_raw = _require(raw, "profiles", dict, path, "top level")
    unknown = set(profiles_raw) - set(PROFILES)
    if unknown:
        raise InputError(path, f"unknown profiles {sorted(unknown)}; known: {list(PROFILES)}")
    gradetime = raw.get("gradetime_cells")
    gradetime_path = directory / gradetime if gradetime else None
    if gradetime_path is not None and not gradetime_path.is_file():
        raise InputError(path, f"gradetime_cells file {gradetime!r} does not exist")
    visible = raw.get("visible_checks", [])
    if not isinstance(visible, list) or not all(
        isinstance(c, str) and re.fullmatch(r"test_\w+::test_\w+", c) for c in visible
    ):
        raise InputError(
            path,
            'visible_checks must list check ids like "test_architecture::test_layers", '
            f"got {visible!r}",
        )
    show = raw.get("show_thresholds", True)
    if not isinstance(show, bool):
        raise InputError(path, f"show_thresholds must be true or false, got {show!r}")
    return ExerciseSpec(
        show_thresholds=show,
        visible_checks=frozenset(visible),
        hidden_module=_hidden_module(raw.get("hidden_module"), directory, path),
        name=name,
        title=_require(raw, "title", str, path, "top level"),
        directory=directory,
        notebook=_require(raw, "notebook", str, path, "top level"),
        datasets=tuple(_require(raw, "datasets", list, path, "top level")),
        artifacts=tuple(_require(raw, "artifacts", list, path, "top level")),
        gradetime_cells=gradetime_path,
        hidden=MappingProxyType(dict(raw.get("hidden", {}))),
        models=tuple(raw.get("models", ())),
        draft=bool(raw.get("draft", False)),
        profiles=MappingProxyType(
            {pname: parse_profile(pname, table, path) for pname, table in profiles_raw.items()}
        ),
    )


def load_exercise(autograder_dir: Path, name: str) -> ExerciseSpec:
    """The spec of exercise `name`, with a clear error listing the known ones."""
    directory = autograder_dir / name
    if not (directory / "spec.toml").is_file():
        known = sorted(p.parent.name for p in autograder_dir.glob("*/spec.toml"))
        raise InputError(directory, f"no exercise {name!r} here (known: {', '.join(known)})")
    return load_spec(directory)
