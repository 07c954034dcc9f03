"""Gradescope: an autograder bundle for one exercise and profile, and the grading inside it.

`build_bundle` writes the `autograder.zip` Gradescope's "Zip file upload" expects:

    setup.sh          run once, as root, when Gradescope builds the image: Python 3.11+, a
                      virtual environment with the pinned requirements, bubblewrap, and the
                      unprivileged account `dgstudent`; the hidden checks made root-only
    run_autograder    run per submission: `python -m deepgrade gradescope inside`
    requirements.txt  deepgrade's dependencies and the Keras backend, pinned to this host's
    lib/deepgrade/    deepgrade itself (this version: the one the bundle was tested with)
    course/           autograder/<exercise>/ (hidden checks, spec) and release/<exercise>/
    data/<name>       the profile's data and model files (what the sandbox sees as /data)
    bundle.json       the exercise, the resolved profile, the files' sha256, the grader version

Inside (`grade_inside`), the submission in `/autograder/submission` is graded exactly as
`deepgrade grade` grades one: both stages, in bubblewrap. Gradescope's container may refuse the
namespaces bubblewrap needs; then the notebook runs as `dgstudent`, who cannot read the hidden
checks, under the limits the container allows, and results.json says so. The score is the
points that count; hidden checks are `after_published`, the spec's visible ones shown at once,
and Gradescope's own stdout stays hidden from students (`stdout_visibility`).

`run_local` runs a bundle in a temporary folder laid out like Gradescope's, so CI tests the
bundle itself (its lib, its data, its run_autograder), not this checkout.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import deepgrade
from deepgrade.errors import DeepgradeError, InputError
from deepgrade.profiles import keras_backend
from deepgrade.project import Project

ROOT_ENV = "DEEPGRADE_AUTOGRADER_ROOT"  # /autograder on Gradescope; a temporary folder locally
PYTHON_ENV = "DEEPGRADE_PYTHON"  # the interpreter run_autograder uses (setup.sh's venv)
SANDBOX_ENV = "DEEPGRADE_GRADESCOPE_SANDBOX"  # "off": grade as where bubblewrap cannot start
USER_ENV = "DEEPGRADE_GRADESCOPE_USER"  # the unprivileged account (default dgstudent)
STUDENT_USER = "dgstudent"
MANIFEST = "bundle.json"
BACKEND_PACKAGES = {
    "tensorflow": ("tensorflow-cpu", "tensorflow"),
    "jax": ("jax", "jaxlib"),
    "torch": ("torch",),
}
SKIPPED_PARTS = ("__pycache__", ".pytest_cache")
LOCAL_TIMEOUT_S = 3600

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (written by
# `deepgrade gradescope bundle`).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1
apt-get update -qq
apt-get install -y -qq bubblewrap util-linux >/dev/null
PY=python3
if ! python3 -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  apt-get install -y -qq python3.11 python3.11-venv >/dev/null
  PY=python3.11
fi
"$PY" -m venv /opt/deepgrade 2>/dev/null || {
  apt-get install -y -qq python3-venv >/dev/null && "$PY" -m venv /opt/deepgrade; }
/opt/deepgrade/bin/python -m pip install -q --upgrade pip
/opt/deepgrade/bin/python -m pip install -q -r /autograder/source/requirements.txt
# Where Gradescope's container cannot start bubblewrap, the notebook runs as this account.
id dgstudent >/dev/null 2>&1 \\
  || useradd --system --no-create-home --shell /usr/sbin/nologin dgstudent
chmod -R a+rX /opt/deepgrade /autograder/source/lib /autograder/source/data
chmod -R go-rwx /autograder/source/course   # the hidden checks: root only
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this for every submission, as root; it writes results/results.json.
ROOT="${{{root_env}:-/autograder}}"
export PYTHONPATH="$ROOT/source/lib"{backend}
exec "${{{python_env}:-/opt/deepgrade/bin/python}}" -m deepgrade gradescope inside --root "$ROOT"
"""


GRADER_ALLOWANCE_MB = 1024  # the grader's own process beside the notebook's limit
START_ALLOWANCE_S = 120  # the grader's start and the kernel's, on Gradescope's CPUs


@dataclass(frozen=True)
class Bundle:
    """A bundle written: where, its size, how many files it holds, and the Gradescope
    settings it needs (memory and timeout: the profile's limits and the grader's share)."""

    path: Path
    size: int
    files: int
    memory_mb: int
    timeout_s: int

    def settings(self) -> str:
        return (
            f"Gradescope autograder settings: memory at least {self.memory_mb / 1024:.1f} GB, "
            f"timeout at least {math.ceil(self.timeout_s / 60)} minutes"
        )


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0]


def pinned_requirements() -> list[str]:
    """deepgrade's own dependencies and the Keras backend, at the versions installed here."""
    backend = keras_backend()
    names = [
        _requirement_name(r)
        for r in importlib.metadata.requires("deepgrade") or []
        if "extra ==" not in r
    ]
    for package in BACKEND_PACKAGES.get(backend, ()):
        try:
            importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
        names.append(package)
        break
    else:
        raise DeepgradeError(f"the Keras backend {backend!r} is not installed here to pin")
    return [f"{name}=={importlib.metadata.version(name)}" for name in names]


def _package_files() -> dict[str, Path]:
    """deepgrade's own source, as `lib/deepgrade/...` in the bundle."""
    package = Path(deepgrade.__file__).parent
    found = {}
    for path in sorted(package.rglob("*")):
        relative = path.relative_to(package)
        if path.is_file() and not set(relative.parts) & set(SKIPPED_PARTS):
            found[f"lib/deepgrade/{relative.as_posix()}"] = path
    return found


def build_bundle(project: Project, exercise: str, profile: str, out: Path) -> Bundle:
    """Write the autograder.zip for `exercise` on `profile` to `out`."""
    from deepgrade.batch import batch_settings
    from deepgrade.checks.runner import CHECK_TIMEOUT_S
    from deepgrade.rayjob import pack

    with tempfile.TemporaryDirectory() as scratch:
        settings = batch_settings(
            project, exercise, profile, Path(scratch), False, on_this_host=False
        )
    job, paths = pack(settings)
    spec = settings.spec
    limits = settings.profile.spec
    memory_mb = limits.memory_mb + GRADER_ALLOWANCE_MB
    timeout_s = limits.notebook_timeout_s + CHECK_TIMEOUT_S + START_ALLOWANCE_S
    manifest = {
        "exercise": spec.name,
        "notebook": spec.notebook,
        "profile": job.profile,
        "files": [f.__dict__ for f in job.files],
        "grader_version": job.grader_version,
        "visible_checks": sorted(spec.visible_checks),
        "deepgrade": deepgrade.__version__,
        "backend": keras_backend(),
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "gradescope": {"memory_mb": memory_mb, "timeout_s": timeout_s},
    }
    backend = manifest["backend"]
    run = RUN_AUTOGRADER.format(
        root_env=ROOT_ENV,
        python_env=PYTHON_ENV,
        backend="" if backend == "tensorflow" else f"\nexport KERAS_BACKEND={backend}",
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    count = 0
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as bundle:

        def add(name: str, data: bytes, mode: int = 0o644) -> None:
            nonlocal count
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            bundle.writestr(info, data)
            count += 1

        add("setup.sh", SETUP_SH.encode(), 0o755)
        add("run_autograder", run.encode(), 0o755)
        add("requirements.txt", ("\n".join(pinned_requirements()) + "\n").encode())
        add(MANIFEST, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
        for name, path in _package_files().items():
            add(name, path.read_bytes())
        for relative, data in job.exercise_files.items():
            add(f"course/autograder/{spec.name}/{relative}", data)
        add(f"course/release/{spec.name}/{spec.notebook}", job.release_notebook)
        for shipped in job.files:
            add(f"data/{shipped.name}", paths[shipped.sha256].read_bytes())
    partial.replace(out)
    return Bundle(out, out.stat().st_size, count, memory_mb, timeout_s)


# ---------------------------------------------------------------- inside Gradescope


@dataclass(frozen=True)
class Inside:
    """What a run inside the autograder found about its host: how it will grade."""

    sandboxed: bool
    run_as: str  # the unprivileged account where not sandboxed, else ""
    note: str  # for results.json: how the notebook ran, when that is not the usual


def _host_mode() -> Inside:
    from deepgrade import sandbox

    if os.environ.get(SANDBOX_ENV) != "off" and sandbox.find_bwrap() is not None:
        return Inside(True, "", "")
    name = os.environ.get(USER_ENV, STUDENT_USER)
    why = (
        "switched off for this run"
        if os.environ.get(SANDBOX_ENV) == "off"
        else sandbox.unavailable_reason()
    )
    note = (
        f"Graded without bubblewrap ({why}): your notebook ran as the unprivileged user "
        f"{name}, who cannot read the hidden checks, under the limits this container allows."
    )
    return Inside(False, name, note)


def _submitted_notebook(folder: Path, name: str) -> Path:
    notebooks = sorted(
        p
        for p in folder.rglob("*.ipynb")
        if ".ipynb_checkpoints" not in p.parts and p.is_file() and not p.is_symlink()
    )
    named = [p for p in notebooks if p.name == name]
    if len(named) == 1:
        return named[0]
    if len(notebooks) == 1:
        return notebooks[0]
    found = "no notebook" if not notebooks else f"{len(notebooks)} notebooks"
    raise InputError(folder, f"{found} in the submission: upload one notebook, named {name}")


def _metadata(root: Path) -> tuple[str, str]:
    """(student id, submission time) from Gradescope's submission_metadata.json."""
    from deepgrade.submissions import student_id

    path = root / "submission_metadata.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "submission", ""
    users = data.get("users") or [{}]
    first = users[0] if isinstance(users[0], dict) else {}
    who = str(first.get("email") or first.get("sid") or first.get("name") or "submission")
    created = data.get("created_at")
    return student_id(who), created if isinstance(created, str) else ""


def _write_results(root: Path, data: Mapping[str, Any]) -> None:
    results = root / "results" / "results.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def grade_inside(root: Path) -> int:
    """Grade `root`/submission with the bundle in `root`/source; write results/results.json.
    A student's problem is a score with its reason; only the grader's own failure exits 1."""
    from dataclasses import replace

    from deepgrade.execute import RunAs
    from deepgrade.exercise import load_exercise
    from deepgrade.export import gradescope_results
    from deepgrade.grade import GradeSettings, grade_submission
    from deepgrade.hostcheck import current
    from deepgrade.profiles import GradingProfile
    from deepgrade.results import Verdict
    from deepgrade.submissions import Submission

    source = root / "source"
    manifest = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
    spec = load_exercise(source / "course" / "autograder", manifest["exercise"])
    with tempfile.TemporaryDirectory() as scratch:
        written = Path(scratch) / "profile.json"
        written.write_text(json.dumps(manifest["profile"]), encoding="utf-8")
        profile = GradingProfile.read(written, source / "data")
    mode = _host_mode()
    unlimited = bool(current().refusal(sandboxed=mode.sandboxed, gpu=False))
    student, submitted_at = _metadata(root)
    try:
        notebook = _submitted_notebook(root / "submission", spec.notebook)
    except InputError as exc:
        _write_results(
            root,
            {"score": 0, "output": exc.problem, "output_format": "text", "visibility": "visible",
             "stdout_visibility": "hidden", "tests": []},
        )  # fmt: skip
        return 0
    run_as = None if mode.sandboxed else RunAs.lookup(mode.run_as)
    work = Path(tempfile.mkdtemp(prefix="deepgrade-"))
    work.chmod(0o755)  # the unprivileged account walks into its run's folder
    settings = GradeSettings(
        spec=spec,
        profile=profile,
        release_notebook=source / "course" / "release" / spec.name / spec.notebook,
        workdir=work,
        unsafe=not mode.sandboxed,
        grader_version=str(manifest["grader_version"]),
        unlimited=unlimited,
        run_as=run_as,
    )
    try:
        result = grade_submission(Submission(student, notebook), settings)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = replace(result, submitted_at=submitted_at)
    data = gradescope_results(result, visible_checks=spec.visible_checks)
    if mode.note:
        data["output"] = f"{mode.note}\n{data['output']}"
    data["stdout_visibility"] = "hidden"
    _write_results(root, data)
    print(f"deepgrade: {result.verdict}, {result.final_points:g}/{result.max_points:g}")
    return 1 if result.verdict is Verdict.GRADER_ERROR else 0


# ---------------------------------------------------------------- a local run, for CI


@dataclass(frozen=True)
class LocalRun:
    """One bundle run on one submission in a folder laid out like Gradescope's."""

    results: dict[str, Any]
    seconds: float
    returncode: int
    log: str


def _fake_metadata(submission: Path) -> dict[str, Any]:
    return {
        "id": 1,
        "created_at": datetime.now(UTC).isoformat(),
        "assignment": {"title": "local run"},
        "users": [{"email": f"{submission.stem}@local", "name": submission.stem, "sid": ""}],
    }


def run_local(bundle: Path, submission: Path, keep: Path | None = None) -> LocalRun:
    """Unpack `bundle` to <root>/source, copy `submission` (a notebook or a folder) to
    <root>/submission and run source/run_autograder as Gradescope would (this interpreter
    stands in for setup.sh's); the results.json it wrote. `keep`: use that folder as <root>."""
    if not zipfile.is_zipfile(bundle):
        raise InputError(bundle, "not a zip file (write one with `deepgrade gradescope bundle`)")
    root = keep or Path(tempfile.mkdtemp(prefix="gradescope-"))
    try:
        if root.exists():
            shutil.rmtree(root)
        (root / "results").mkdir(parents=True)
        with zipfile.ZipFile(bundle) as archive:
            archive.extractall(root / "source")
        (root / "source" / "run_autograder").chmod(0o755)
        root.chmod(0o755)
        for folder in (root / "source" / "course").rglob("*"):  # as setup.sh leaves them
            folder.chmod(0o700 if folder.is_dir() else 0o600)
        (root / "source" / "course").chmod(0o700)
        target = root / "submission"
        if submission.is_dir():
            shutil.copytree(submission, target)
        else:
            target.mkdir()
            shutil.copy(submission, target / submission.name)
        meta = json.dumps(_fake_metadata(submission), indent=1)
        (root / "submission_metadata.json").write_text(meta)
        env = {**os.environ, ROOT_ENV: str(root), PYTHON_ENV: sys.executable}
        started = time.perf_counter()
        done = subprocess.run(
            ["bash", str(root / "source" / "run_autograder")], env=env, cwd=root,
            capture_output=True, text=True, timeout=LOCAL_TIMEOUT_S, check=False,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        results_file = root / "results" / "results.json"
        if not results_file.is_file():
            raise DeepgradeError(
                f"the bundle wrote no results.json (exit {done.returncode}):\n"
                + (done.stdout + done.stderr)[-3000:]
            )
        results = json.loads(results_file.read_text(encoding="utf-8"))
        return LocalRun(results, seconds, done.returncode, done.stdout + done.stderr)
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
