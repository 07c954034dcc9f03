"""Threat model, issue 12 item 3: no point depends on a number the student's process reports.

The student's kernel runs the grade-time cells, so anything it counts or times can be forged:
a counting wrapper's attributes set, `time` and `json` monkeypatched, a hook that burns CPU
while the grader measures its baseline. Now the stage-1 runner (grader code outside the
kernel) measures the CPU time of the sandbox's processes while a measured cell runs, stage 2
measures the baseline in its own process, and tta_predict's views are judged from its output.

Runner-level tests use tiny plain-Python notebooks; two tests grade real tta_resnet1 notebooks
(slow: about a minute each) and show the forgeries earn nothing.
"""

from __future__ import annotations

import inspect
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nbformat
import pytest

from deepgrade.execute import execute_notebook
from deepgrade.grade import GRADETIME_TAG
from deepgrade.results import ExecutionResult

REPO = Path(__file__).resolve().parents[1]
BURN = (
    "import time\n"
    "def burn(seconds):\n"
    "    started = time.process_time()\n"
    "    while time.process_time() - started < seconds:\n"
    "        pass\n"
)
SAVE = (
    "import json, os\n"
    "def save(name, value):\n"
    "    os.makedirs(ARTIFACT_DIR, exist_ok=True)\n"
    "    with open(os.path.join(ARTIFACT_DIR, name), 'w') as f:\n"
    "        json.dump(value, f)\n"
)


def _graded_notebook(
    make_notebook: Callable[..., Path], student: Sequence[str], gradetime: Sequence[str]
) -> Path:
    """A notebook whose last cells are the grader's (tagged as grade.py tags them; the runner
    also takes only the last `gradetime_cells` cells as the grader's)."""
    path = make_notebook([*student, *gradetime])
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells[len(nb.cells) - len(gradetime) :]:
        cell.metadata["tags"] = [GRADETIME_TAG]
    nbformat.write(nb, path)
    return path


def _execute(
    notebook: Path, tmp_path: Path, gradetime_cells: int, unsafe: bool = False
) -> ExecutionResult:
    return execute_notebook(
        notebook,
        parameters={},
        data_files=[],
        workdir=tmp_path / "work",
        cell_timeout_s=60,
        notebook_timeout_s=120,
        memory_mb=1024,
        artifact_cap_mb=4,
        unsafe=unsafe,
        gradetime_cells=gradetime_cells,
    )


def test_runner_counts_children_and_threads_not_the_kernels_word(
    bwrap: str, make_notebook: Callable[..., Path], tmp_path: Path
) -> None:
    """A child process's and a background thread's CPU count; a student cell is not measured;
    each measured cell gets its own nonce; a name measured twice, or a cell during which a
    process ignored SIGCHLD, is not used."""
    student = [
        SAVE,
        BURN,
        # A thread started by the student before the measured cell, working while it runs.
        "import subprocess, sys, threading\n"
        "go, done = threading.Event(), threading.Event()\n"
        "def worker():\n"
        "    go.wait()\n"
        "    started = time.thread_time()\n"
        "    while time.thread_time() - started < 0.6:\n"
        "        pass\n"
        "    done.set()\n"
        "threading.Thread(target=worker, daemon=True).start()",
        # The kernel's own attempt to look cheap: its cell claims a measurement, untagged.
        "# deepgrade-measure: student\nburn(0.2)",
    ]
    gradetime = [
        "# deepgrade-measure: child\n"
        "subprocess.run([sys.executable, '-c', "
        "'import time\\nt = time.process_time()\\nwhile time.process_time() - t < 0.6: pass'],"
        " check=True)",
        "# deepgrade-measure: thread\ngo.set()\ndone.wait()",
        "# deepgrade-measure: idle\ntime.sleep(0.3)",
        "# deepgrade-measure: nonce\nsave('nonce.json', [__DG_NONCE__, __DG_NONCE__])",
        "# deepgrade-measure: twice\nburn(0.05)",
        "# deepgrade-measure: twice\nburn(0.05)",
        # Children reaped without a trace (SIGCHLD ignored): the measurement is void.
        "# deepgrade-measure: reaped\nimport signal\n"
        "signal.signal(signal.SIGCHLD, signal.SIG_IGN)\n"
        "subprocess.Popen([sys.executable, '-c', 'pass'])\ntime.sleep(0.2)\n"
        "signal.signal(signal.SIGCHLD, signal.SIG_DFL)",
    ]
    notebook = _graded_notebook(make_notebook, student, gradetime)
    result = _execute(notebook, tmp_path, len(gradetime))
    assert result.verdict == "graded", result
    usage = result.cell_usage
    assert sorted(usage) == ["child", "idle", "nonce", "thread"], usage
    assert usage["child"]["cpu_s"] >= 0.5  # the child's 0.6 s, in another process
    assert usage["thread"]["cpu_s"] >= 0.5  # the student's thread, not the cell's own code
    assert usage["idle"]["cpu_s"] < 0.3 <= usage["idle"]["wall_s"]
    saved = json.loads((result.artifacts_dir / "nonce.json").read_text())
    assert saved == [usage["nonce"]["nonce"]] * 2  # the same number, put in by the runner
    nonces = {entry["nonce"] for entry in usage.values()}
    assert len(nonces) == len(usage)  # each measured cell its own
    assert "more than one cell measured as 'twice'" in result.log_tail
    assert "a process ignored SIGCHLD while 'reaped' was measured" in result.log_tail


def test_unsafe_runner_counts_its_descendants(
    make_notebook: Callable[..., Path], tmp_path: Path
) -> None:
    """Without the sandbox (trusted notebooks), the runner's descendants are counted."""
    gradetime = [
        "# deepgrade-measure: child\nimport subprocess, sys\n"
        "subprocess.run([sys.executable, '-c', "
        "'import time\\nt = time.process_time()\\nwhile time.process_time() - t < 0.6: pass'],"
        " check=True)"
    ]
    notebook = _graded_notebook(make_notebook, [], gradetime)
    result = _execute(notebook, tmp_path, len(gradetime), unsafe=True)
    assert result.cell_usage["child"]["cpu_s"] >= 0.5, result


def test_usage_reaches_stage2_read_only(tmp_path: Path) -> None:
    """The host writes stage 1's measurements for stage 2 (the plugin's stage1_usage); the
    notebook's artifacts never provide them."""
    from deepgrade.execute import cell_usage

    status = {
        "cell_usage": {
            "tta_1": {"cpu_s": 1.5, "wall_s": 2.0, "nonce": 7},
            "forged": {"cpu_s": "0", "wall_s": 1.0, "nonce": 1},
            "nan": {"cpu_s": float("nan"), "wall_s": 1.0, "nonce": 1},
        }
    }
    assert cell_usage(status) == {"tta_1": {"cpu_s": 1.5, "wall_s": 2.0, "nonce": 7.0}}
    assert cell_usage({"cell_usage": ["not", "a", "dict"]}) == {}


# ---------------------------------------------------------------- real tta_resnet1 notebooks

# Appended to the solution's tta_predict cell (a cell students write): every old forgery.
FORGERIES = '''
import json as _json
import time as _time

import numpy as _np


def _burn(seconds):
    started = _real_process_time()
    while _real_process_time() - started < seconds:
        pass


# (a) The old in-kernel timing: every clock reads one second later at each call, so every
# measured interval is 1 s, and the timing JSON is rewritten to show TTA as cheap as predict.
_real_process_time, _ticks = _time.process_time, [0.0]


def _fake_clock():
    _ticks[0] += 1.0
    return _ticks[0]


_time.process_time = _time.perf_counter = _fake_clock
_real_dump = _json.dump


def _forged_dump(obj, fp, *args, **kwargs):
    if isinstance(obj, dict) and "tta_cpu_s" in obj:
        obj = dict(obj, tta_s=obj["plain_s"], tta_cpu_s=obj["plain_cpu_s"])
    return _real_dump(obj, fp, *args, **kwargs)


_json.dump = _forged_dump
_inside_tta = [False]


# (b) A pre_run_cell hook: the grader's own model burns CPU whenever it predicts outside
# tta_predict (a baseline measured in this kernel would look 3 s slower).
def _slow_baseline(info):
    model = globals().get("_dg_model")
    if model is None or getattr(model, "_hooked", False):
        return
    real_predict = model.predict

    def predict(*args, **kwargs):
        if not _inside_tta[0]:
            _burn(3.0)
        return real_predict(*args, **kwargs)

    model.predict, model._hooked = predict, True


get_ipython().events.register("pre_run_cell", _slow_baseline)  # noqa: F821
_honest_tta_predict = tta_predict


def tta_predict(model, images):  # noqa: F811
    """The reference TTA, slow on the grader's hidden images only, and the counter forged."""
    _inside_tta[0] = True
    try:
        if len(images) == 128:
            _burn(3.0)  # as slow as a per-image loop: ~30 plain predicts of CPU time
        if hasattr(model, "images") and hasattr(model, "calls"):
            model.calls, model.images = 1, 11 * len(images)
        return _honest_tta_predict(model, images)
    finally:
        _inside_tta[0] = False
'''

# tta_predict returns one plain prediction and forges the old counting wrapper's attributes.
PLAIN_FORGED = '''

def tta_predict(model, images):  # noqa: F811
    """One view only, with the count of 11 views written into the counting wrapper."""
    if hasattr(model, "images") and hasattr(model, "calls"):
        model.images += 10 * len(images)
    return model.predict(images, batch_size=256, verbose=0)
'''


def _grade_hostile(tmp_path: Path, name: str, appended: str) -> Any:
    from deepgrade.batch import batch_settings
    from deepgrade.grade import grade_submission
    from deepgrade.project import Project
    from deepgrade.submissions import Submission

    if shutil.which("bwrap") is None:
        pytest.skip(reason="needs bubblewrap (CI installs it)")
    project = Project(REPO)
    settings = batch_settings(project, "tta_resnet1", "smoke", tmp_path / "runs", unsafe=False)
    solution = project.solutions / "tta_resnet1" / "tta_resnet1.ipynb"
    nb = nbformat.read(solution, as_version=4)
    cell = next(
        c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "tta_predict"
    )
    cell.source += appended
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(nb, path)
    return grade_submission(Submission(name, path), settings)


def _lost(result: Any) -> list[str]:
    return sorted(c.check_id for c in result.checks if not c.passed)


@pytest.mark.slow
def test_forged_clocks_json_counter_and_baseline_burn_earn_nothing(tmp_path: Path) -> None:
    """(a) time/json monkeypatched and the counter set, (b) a hook burning CPU during any
    in-kernel baseline: a tta_predict as slow as a per-image loop still loses the cost."""
    result = _grade_hostile(tmp_path, "forger", FORGERIES)
    assert result.verdict == "graded", result.detail
    assert _lost(result) == ["test_tta::test_tta_cost"], result.checks
    assert result.measurements["tta_cost_ratio"] > 12  # measured by the runner and stage 2
    assert result.points == result.max_points - 2


@pytest.mark.slow
def test_plain_prediction_with_a_forged_count_loses_the_views(tmp_path: Path) -> None:
    """(c) the plain prediction instead of the 11-view mean, the old counter's attributes
    set to 11 views: the views and agreement checks, judged from the output, fail."""
    result = _grade_hostile(tmp_path, "plain", PLAIN_FORGED)
    assert _lost(result) == [
        "test_tta::test_tta_agrees_with_plain",
        "test_tta::test_tta_views",
    ], result.checks
    views = next(c for c in result.checks if c.check_id == "test_tta::test_tta_views")
    assert views.message.startswith("tta_predict returns one prediction per image")


def test_stage2_never_reads_a_count_or_time_from_the_artifacts() -> None:
    """Audit, tta_resnet1: the checks read no count or timing file the notebook could write."""
    sources = "".join(
        p.read_text(encoding="utf-8") for p in (REPO / "autograder" / "tta_resnet1").glob("*.py")
    )
    for name in ("tta_calls.json", "tta_timing.json", "_DgCountingModel"):
        assert name not in sources
    from deepgrade.checks import runner

    assert "stage1_usage" in inspect.signature(runner.run_checks).parameters
