"""Stage 2: run an exercise's hidden checks in a fresh, sandboxed pytest process.

The checks only read artifacts, but those artifacts were written by student code: a model file
is parsed by Keras and h5py, arrays by numpy. So the checks run in the same kind of sandbox as
the notebook (no network, read-only everything) with only what they need bound in:

    /opt/deepgrade/lib/deepgrade   deepgrade's own package (PYTHONPATH=/opt/deepgrade/lib)
    /opt/deepgrade/checks/<name>   the exercise's autograder folder (checks, spec.toml)
    /opt/deepgrade/pytest.ini      an empty pytest config: the course repo's is never read
    /artifacts                     the submission's artifacts, read-only
    /data/<file>                   the grader's data files, read-only
    /results                       the only writable bind: the plugin's results JSON

The course repository, other submissions and the gradebook are not there. pytest's output goes
to `<workdir>/checks/pytest.log` for the instructor; students see only the plugin's messages.
"""

from __future__ import annotations

import ast
import os
import shutil
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import deepgrade
from deepgrade.checks import read_measurements, read_results
from deepgrade.errors import InputError, SandboxUnavailable
from deepgrade.execute import reproducible_env
from deepgrade.exercise import ExerciseSpec
from deepgrade.limits import ProcessOutcome, run_limited
from deepgrade.results import CheckReport, CheckResult

CHECK_TIMEOUT_S = 300  # loading three small models and predicting takes seconds
FILE_SIZE_MB = 64
MAX_PIDS = 1024  # TensorFlow's thread pools count as pids
NOT_RUN = "this check did not run: the grader's checks stopped early"
LIB = "/opt/deepgrade/lib"
INI = "[pytest]\n# deepgrade's own config: the course repository's settings never apply.\n"


def _command(
    exercise: str, artifacts: str, data: str, results: str, ini: str, profile: str
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "deepgrade.checks.plugin",
        "-p",
        "no:cacheprovider",
        "-q",
        "--tb=short",
        "-c",
        ini,
        f"--rootdir={exercise}",
        f"--confcutdir={exercise}",
        f"--dg-exercise-dir={exercise}",
        f"--dg-artifacts={artifacts}",
        f"--dg-data={data}",
        f"--dg-profile={profile}",
        f"--dg-results={results}",
        exercise,
    ]


def _env(pythonpath: str, home: str | None = None) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": pythonpath,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        **reproducible_env(),  # the same predictions on any host, loaded or not
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",  # only deepgrade's plugin, whatever is installed
        "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "CUDA_VISIBLE_DEVICES": "",  # the checks predict on a few hundred images: CPU is plenty
        "MPLBACKEND": "Agg",
        "LANG": "C.UTF-8",
    }
    if home is not None:
        env["HOME"] = home
    return env


def static_checks(directory: Path) -> list[CheckResult]:
    """The checks of `directory` read from source (no import), all failed: the fallback list
    when pytest died before its plugin could write even the collected checks."""
    found = []
    for path in sorted(directory.glob("test_*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test"):
                continue
            for deco in node.decorator_list:
                if (
                    isinstance(deco, ast.Call)
                    and ast.unparse(deco.func).endswith("mark.points")
                    and len(deco.args) == 1
                    and isinstance(deco.args[0], ast.Constant)
                    and isinstance(deco.args[0].value, int | float)
                ):
                    doc = (ast.get_docstring(node) or node.name).strip().splitlines()[0]
                    found.append(
                        CheckResult(
                            check_id=f"{path.stem}::{node.name}",
                            title=doc,
                            points=0.0,
                            max_points=float(deco.args[0].value),
                            passed=False,
                            message=NOT_RUN,
                        )
                    )
    return found


def _data_dir(data_files: Sequence[Path], out: Path) -> Path:
    """Unsafe mode: one folder of links to the data files, as /data looks in the sandbox."""
    folder = out / "data"
    folder.mkdir()
    for file in data_files:
        (folder / file.name).symlink_to(file.resolve())
    return folder


def _sandboxed_argv(
    spec: ExerciseSpec,
    profile: str,
    artifacts_dir: Path,
    data_files: Sequence[Path],
    ini: Path,
    results_dir: Path,
) -> list[str]:
    from deepgrade.sandbox import (
        SANDBOX_HOME,
        Mount,
        SandboxSpec,
        bwrap_argv,
        find_bwrap,
        python_mounts,
    )

    bwrap = find_bwrap()
    if bwrap is None:
        raise SandboxUnavailable(
            "bubblewrap cannot create a sandbox here; the hidden checks read student-made "
            "files, so they run sandboxed unless --unsafe is given"
        )
    exercise = f"/opt/deepgrade/checks/{spec.name}"
    mounts = [
        *python_mounts(),
        Mount(Path(deepgrade.__file__).parent, f"{LIB}/deepgrade"),
        Mount(spec.directory.resolve(), exercise),
        Mount(ini, "/opt/deepgrade/pytest.ini"),
        Mount(artifacts_dir.resolve(), "/artifacts"),
        *(Mount(file.resolve(), f"/data/{file.name}") for file in data_files),
        Mount(results_dir, "/results", writable=True),
    ]
    if not data_files:
        mounts.append(Mount(results_dir.parent / "empty", "/data"))  # empty, read-only
    sandbox = SandboxSpec(mounts=tuple(mounts), env=_env(LIB, SANDBOX_HOME))
    command = _command(
        exercise,
        "/artifacts",
        "/data",
        "/results/results.json",
        "/opt/deepgrade/pytest.ini",
        profile,
    )
    return bwrap_argv(sandbox, command, bwrap)


def _problem(outcome: ProcessOutcome, timeout_s: float, memory_mb: int) -> str | None:
    """What stopped pytest, from run_limited's outcome, in one line."""
    if outcome.timed_out:
        return f"the checks ran past their time limit ({timeout_s:.0f} s)"
    if outcome.oom_killed:
        return f"the checks ran out of memory ({memory_mb} MiB)"
    if outcome.returncode is None or outcome.returncode < 0:
        return f"the checks' process was killed (status {outcome.returncode})"
    return None


def run_checks(
    spec: ExerciseSpec,
    profile_name: str,
    artifacts_dir: Path,
    data_files: Sequence[Path],
    *,
    workdir: Path,
    unsafe: bool = False,
    timeout_s: float = CHECK_TIMEOUT_S,
    cancel: threading.Event | None = None,
) -> CheckReport:
    """Run spec's hidden checks on `artifacts_dir` in a fresh pytest; never raises for a bad
    submission: a run that could not finish comes back with `error` set and checks failed.

    Raises SandboxUnavailable when bwrap cannot run here and `unsafe` is False, and InputError
    for an unknown profile or a missing data file (the grader's own mistakes).
    """
    profile = spec.profile(profile_name)
    for file in data_files:
        if not file.is_file():
            raise InputError(file, "data file not found")
    out = workdir / "checks"
    if out.exists():
        shutil.rmtree(out)
    results_dir = out / "results"
    results_dir.mkdir(parents=True)
    ini = out / "pytest.ini"
    ini.write_text(INI, encoding="utf-8")
    results = results_dir / "results.json"
    empty = out / "empty"
    empty.mkdir()
    if not artifacts_dir.is_dir():  # stage 1 saved nothing: every check fails closed
        artifacts_dir = empty
    if unsafe:
        argv = _command(
            str(spec.directory.resolve()),
            str(artifacts_dir.resolve()),
            str(_data_dir(data_files, out)),
            str(results),
            str(ini),
            profile.name,
        )
        env: Mapping[str, str] | None = {
            **_env(str(Path(deepgrade.__file__).parent.parent)),
            "HOME": os.environ.get("HOME", str(out)),
        }
    else:
        argv = _sandboxed_argv(spec, profile.name, artifacts_dir, data_files, ini, results_dir)
        env = None
    started = time.perf_counter()
    with (out / "pytest.log").open("wb") as log:
        outcome = run_limited(
            argv,
            timeout_s=timeout_s,
            memory_mb=profile.memory_mb,
            max_pids=MAX_PIDS,
            file_size_mb=FILE_SIZE_MB,
            stdout=log,
            stderr=log,
            env=env,
            cwd=out,
            cancel=cancel,  # an interrupted batch: killed at once, Cancelled raised
        )
    seconds = time.perf_counter() - started
    problem = _problem(outcome, timeout_s, profile.memory_mb)
    try:
        checks, error, complete = read_results(results)
    except InputError:
        error = problem or f"pytest wrote no results (exit status {outcome.returncode})"
        return CheckReport(tuple(static_checks(spec.directory)), seconds, error)
    if not complete or problem:
        error = problem or error or "the checks did not finish"
    return CheckReport(checks, seconds, error, read_measurements(results))
