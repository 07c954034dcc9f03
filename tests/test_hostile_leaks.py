"""Threat: a student's kernel carries the grader's hidden inputs back out (issue 12, item 10).

The grade-time cells run in the student's kernel with the hidden values, so student code left
running there (IPython input transformers, pre_run_cell hooks, sys.settrace, the student's own
functions) sees them and can put them in an exception's message or type name, or in files the
checks echo. None of that may reach a SubmissionResult's detail, a check message, the CSV or a
Gradescope results.json. Stage-1 tests run real notebooks in the sandbox; the slow test grades
hostile signs_cnn submissions with `deepgrade grade` and exports them.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import nbformat
import pytest

from deepgrade import _stage1_runner, redact
from deepgrade.exercise import load_exercise
from deepgrade.export import export_csv, export_gradescope, gradescope_results
from deepgrade.grade import GRADETIME_TAG, HIDDEN_LOADER, GradeSettings, prepare_notebook
from deepgrade.notebooks import append_cells
from deepgrade.profiles import resolve_profile
from deepgrade.project import Project
from deepgrade.results import CheckResult, ExecutionResult, SubmissionResult, Verdict
from deepgrade.samples import Edit, Sample, apply_edits

ROOT = Path(__file__).resolve().parents[1]
PROJECT = Project(ROOT)
EXERCISES = PROJECT.exercise_names()

# ---------------------------------------------------------------- stage 1 in the sandbox

HIDDEN = {"seed": 987654, "word": "zebraquartz", "ns": [7, 13, 29, 31]}
SECRET_TEXTS = ("987654", "zebraquartz", "7, 13, 29, 31", "7_13_29_31")
SAVE = (
    "import json, os\n"
    "def save(name, value):\n"
    "    with open(os.path.join(ARTIFACT_DIR, name), 'w') as f:\n"
    "        json.dump(value, f)\n"
    "def student_fn(seed):\n"
    "    return seed % 1000\n"
    "save('answers.json', {'shape': [1, 2]})\n"
)
GRADETIME = [
    ("save('hidden_out.json', student_fn(HIDDEN['seed']))", ["student_fn"]),
    ("save('hidden_words.json', len(HIDDEN['word']))", []),
]


def _leaked(text: str) -> list[str]:
    return [secret for secret in SECRET_TEXTS if secret in text]


def _stage1(
    make_notebook: Callable[..., Path], tmp_path: Path, student: Sequence[str]
) -> ExecutionResult:
    """The student's cells, then the grader's loader and GRADETIME, run as grade.py does."""
    from deepgrade.execute import execute_notebook

    path = make_notebook([SAVE, *student])
    cells = [(HIDDEN_LOADER, []), *GRADETIME]
    metadata = [{"deepgrade": {"calls": calls}} for _, calls in cells]
    nb = append_cells(
        nbformat.read(path, as_version=4), [s for s, _ in cells], GRADETIME_TAG, metadata
    )
    nbformat.write(nb, path)
    return execute_notebook(
        path,
        parameters={},
        data_files=[],
        workdir=tmp_path / "work",
        cell_timeout_s=30,
        notebook_timeout_s=90,
        memory_mb=1024,
        artifact_cap_mb=4,
        hidden=HIDDEN,
        gradetime_cells=len(cells),
        student_artifacts=["answers.json", "history.json"],
    )


def _everything(result: ExecutionResult) -> str:
    """All a result says about the run that could reach a student (detail and status)."""
    status = (result.artifacts_dir.parent / "status.json").read_text()
    return result.detail + "\n" + status


def test_honest_run_gets_the_hidden_values_only_in_the_grader_cells(
    bwrap: str, make_notebook: Callable[..., Path], tmp_path: Path
) -> None:
    probe = (
        "import glob\n"
        "found = []\n"
        "paths = glob.glob('/proc/*/cmdline') + glob.glob('/proc/*/environ')\n"
        "paths += glob.glob('/proc/*/fd/*') + glob.glob('/opt/deepgrade/*')\n"
        "paths += glob.glob(os.path.expanduser('~/.*')) + glob.glob('/tmp/*')\n"
        "for path in paths:\n"
        "    try:\n"
        "        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)\n"
        "        data = os.read(fd, 1 << 20)\n"
        "        os.close(fd)\n"
        "    except OSError:\n"
        "        continue\n"
        "    needles = (str(987000 + 654).encode(), b'zebra' + b'quartz')\n"
        "    if any(needle in data for needle in needles):  # this source holds neither\n"
        "        found.append(path)\n"
        "save('found.json', {'found': found, 'looked': len(paths), 'HIDDEN': 'HIDDEN' in dir()})\n"
    )
    result = _stage1(make_notebook, tmp_path, [probe])
    assert result.verdict is Verdict.GRADED, result
    report = json.loads((result.artifacts_dir / "found.json").read_text())
    assert report["looked"] > 10
    assert report == {"found": [], "looked": report["looked"], "HIDDEN": False}
    assert json.loads((result.artifacts_dir / "hidden_out.json").read_text()) == 654
    assert json.loads((result.artifacts_dir / "hidden_words.json").read_text()) == 11
    assert json.loads((result.artifacts_dir / "answers.json").read_text()) == {"shape": [1, 2]}
    assert result.executed_notebook is not None
    assert _leaked(result.executed_notebook.read_text()) == []


TRANSFORMER = """
def _leak(lines):
    return ["raise RuntimeError('LEAK>>' + repr(globals().get('HIDDEN')) + %r)\\n"
            % "".join(lines)]
get_ipython().input_transformers_cleanup.append(_leak)
"""
PRE_RUN_CELL = """
import builtins
def _hook(info):
    ns = get_ipython().user_ns
    if 'HIDDEN' in ns:
        def student_fn(seed):
            raise ValueError('LEAK>>' + repr(ns['HIDDEN']) + info.raw_cell)
        ns['student_fn'] = student_fn
get_ipython().events.register('pre_run_cell', _hook)
"""
PRE_EXECUTE_RAISES = """
def _hook():
    ns = get_ipython().user_ns
    if 'HIDDEN' in ns:
        raise RuntimeError('LEAK>>' + repr(ns['HIDDEN']))
get_ipython().events.register('pre_execute', _hook)
get_ipython().events.register('post_run_cell', lambda result: _hook())
def student_fn(seed):
    raise KeyError(repr(HIDDEN))
"""
SETTRACE = """
import sys
def _tracer(frame, event, arg):
    if event == 'call' and 'HIDDEN' in frame.f_globals:
        raise RuntimeError('LEAK>>' + repr(frame.f_globals['HIDDEN']))
    return None
sys.settrace(_tracer)
"""
NAMED_AFTER = """
def student_fn(seed):
    name = 'Leak_' + '_'.join(map(str, HIDDEN['ns'])) + '_' + str(seed) + HIDDEN['word']
    raise type(name, (Exception,), {})(repr(HIDDEN))
"""


@pytest.mark.parametrize(
    ("attack", "function", "exception"),
    [
        (TRANSFORMER, None, "RuntimeError"),  # the reported attack, with the values themselves
        (PRE_RUN_CELL, "student_fn", "ValueError"),
        (PRE_EXECUTE_RAISES, "student_fn", "KeyError"),
        # IPython runs each statement as its own frame: the loader's last one already trips it.
        (SETTRACE, None, "RuntimeError"),
        (NAMED_AFTER, "student_fn", "an exception"),
    ],
    ids=["input_transformer", "pre_run_cell", "pre_execute", "settrace", "class_named_after"],
)
def test_a_failing_grader_cell_is_described_by_the_grader(
    bwrap: str,
    make_notebook: Callable[..., Path],
    tmp_path: Path,
    attack: str,
    function: str | None,
    exception: str,
) -> None:
    result = _stage1(make_notebook, tmp_path, [attack])
    assert result.verdict is Verdict.CELL_ERROR, result
    assert _leaked(_everything(result)) == [], result.detail
    assert "LEAK" not in result.detail and "HIDDEN" not in result.detail
    assert "(the grader's)" in result.detail
    assert f"raised {exception}" in result.detail
    if function is not None:
        assert f"{function} raised" in result.detail
    else:  # the cell that failed first calls none of the student's functions
        assert "calls none of your functions" in result.detail
    assert len(result.detail) <= _stage1_runner.MAX_DETAIL_CHARS + 200


STUFFER = """
def _stuff(info):
    ns = get_ipython().user_ns
    if 'HIDDEN' in ns:
        save('answers.json', {'shape': repr(ns['HIDDEN'])})
        save('history.json', {'loss': [0.0] * (ns['HIDDEN']['seed'] % 97)})
get_ipython().events.register('pre_run_cell', _stuff)
"""


def test_saved_files_are_frozen_when_the_grader_cells_start(
    bwrap: str, make_notebook: Callable[..., Path], tmp_path: Path
) -> None:
    result = _stage1(make_notebook, tmp_path, [STUFFER])
    assert result.verdict is Verdict.TAMPERED, result
    assert "answers.json, history.json" in result.detail
    names = sorted(p.name for p in result.artifacts_dir.iterdir())
    assert names == ["hidden_out.json", "hidden_words.json"]  # the grader's cells still count
    assert "answers.json: changed while the grader's cells ran" in result.log_tail
    assert "history.json: written while the grader's cells ran" in result.log_tail
    assert _leaked(_everything(result)) == []


def test_a_student_cell_error_is_reported_sanitised(
    bwrap: str, make_notebook: Callable[..., Path], tmp_path: Path
) -> None:
    cells = ["raise ValueError('bad\\x1b[31m value\\u202e\\n' + 'x' * 5000)", "save('b.json', 1)"]
    result = _stage1(make_notebook, tmp_path, cells)
    assert result.verdict is Verdict.CELL_ERROR
    assert result.detail.startswith("cell 3 raised ValueError: bad value xxx")  # 1: parameters
    assert len(result.detail) <= _stage1_runner.MAX_DETAIL_CHARS + 30
    assert not any(ord(c) < 32 or c == "\u202e" for c in result.detail)
    assert (result.artifacts_dir / "hidden_out.json").is_file()


def test_an_honest_failure_of_a_student_function_names_it(
    bwrap: str, make_notebook: Callable[..., Path], tmp_path: Path
) -> None:
    student = "def student_fn(seed):\n    raise ValueError(f'cannot use {seed}')\n"
    result = _stage1(make_notebook, tmp_path, [student])
    assert result.verdict is Verdict.CELL_ERROR
    assert result.detail.startswith("cell 5 (the grader's): student_fn raised ValueError when")
    assert "987654" not in result.detail and "cannot use" not in result.detail


# ---------------------------------------------------------------- the grader's notebook


def test_the_grader_notebook_holds_no_hidden_value(tmp_path: Path) -> None:
    for exercise in EXERCISES:
        spec = load_exercise(PROJECT.autograder, exercise)
        settings = GradeSettings(
            spec=spec,
            profile=resolve_profile(spec, "smoke", data_files=(), model_files=()),
            release_notebook=PROJECT.release / exercise / spec.notebook,
            workdir=tmp_path,
        )
        out = tmp_path / f"{exercise}.ipynb"
        problems = prepare_notebook(PROJECT.solutions / exercise / spec.notebook, settings, out)
        assert problems == []
        text = out.read_text()
        secrets = redact.secrets_of(spec.hidden, [])
        assert secrets.numbers or secrets.sequences, exercise
        assert not secrets.reveals(redact.GRADER_NAMES.sub("", text)), exercise
        assert _stage1_runner.HIDDEN_FILE_PLACEHOLDER.strip('"') in text


def test_a_student_cell_cannot_pose_as_a_grader_cell(tmp_path: Path) -> None:
    spec = load_exercise(PROJECT.autograder, "signs_cnn")
    submission = tmp_path / "tagged.ipynb"
    nb = nbformat.read(PROJECT.solutions / "signs_cnn" / spec.notebook, as_version=4)
    nb.cells[-1].metadata["tags"] = [GRADETIME_TAG]
    nbformat.write(nb, submission)
    profile = resolve_profile(spec, "smoke", data_files=())
    settings = GradeSettings(spec, profile, PROJECT.release / "signs_cnn" / spec.notebook, tmp_path)
    out = tmp_path / "graded.ipynb"
    assert prepare_notebook(submission, settings, out) == []
    graded = nbformat.read(out, as_version=4)
    tagged = [i for i, c in enumerate(graded.cells) if GRADETIME_TAG in c.metadata.get("tags", [])]
    assert tagged == list(range(len(nb.cells), len(graded.cells)))


def test_every_exercise_declares_the_functions_its_grader_cells_call() -> None:
    from deepgrade.grade import gradetime_cells

    for exercise in EXERCISES:
        spec = load_exercise(PROJECT.autograder, exercise)
        cells = gradetime_cells(spec)
        declared = [calls for _, metadata in cells for calls in metadata["deepgrade"]["calls"]]
        assert declared, exercise
        for source, metadata in cells:
            for name in metadata["deepgrade"]["calls"]:
                assert re.search(rf"\b{name}\(", source), (exercise, name)


# ---------------------------------------------------------------- the host's backstop

SIGNS_SECRETS = redact.secrets_of({"build_model_n": [6, 12, 24, 48, 24, 6]}, [])


@pytest.mark.parametrize(
    "text",
    [
        "cell 18 raised RuntimeError: LEAK>>HIDDEN = {'split_seed': 1}",
        "shape 6 12 24 48 24 6",
        "Leak_6_12_24_48_24_6",
        "[6,\u200b12, 24, 48, 24, 6]",
        "uses _dg_hidden_model somewhere",
    ],
)
def test_the_backstop_withholds_hidden_text(text: str) -> None:
    assert redact.visible(text, SIGNS_SECRETS, 500) == redact.WITHHELD


@pytest.mark.parametrize(
    "text", ["your network has 6 Conv2D layers", "expected [1, 62, 62, 8]", "accuracy 0.05"]
)
def test_the_backstop_keeps_ordinary_feedback(text: str) -> None:
    assert redact.visible(text, SIGNS_SECRETS, 500) == text


def test_the_backstop_matches_distinctive_values_and_grade_time_lines() -> None:
    secrets = redact.secrets_of(
        {"seed": 4021, "eps": 0.05, "n": 37, "name": "zebra", "spec": {"noise": 6.5}},
        ["x = compute(HIDDEN)\n_long_grader_line = build(width)  # the grader's\n"],
    )
    assert secrets.reveals("seed4021x") and secrets.reveals("ZEBRA crossing")
    assert secrets.reveals("_long_grader_line   =   build(width)  # the grader's")
    assert not secrets.reveals("0.05 37 6.5 zeb x = 1")


def test_an_import_line_of_the_hidden_module_is_not_a_secret() -> None:
    """Every notebook imports numpy: a traceback quoting that line is the student's own code."""
    module = "import numpy as np\nfrom deepgrade.checks import expect_layers, fail\n"
    secrets = redact.secrets_of({}, [module + "_images = np.stack(make_hidden_images(seed))\n"])
    assert not secrets.reveals("cell 4: import numpy as np failed")
    assert not secrets.reveals("from deepgrade.checks import expect_layers, fail")
    assert secrets.reveals("_images = np.stack(make_hidden_images(seed))")


def test_no_check_message_of_the_course_trips_the_backstop() -> None:
    import ast

    for exercise in EXERCISES:
        spec = load_exercise(PROJECT.autograder, exercise)
        secrets = redact.exercise_secrets(spec)
        for path in spec.directory.glob("test_*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    assert not secrets.reveals(node.value), (path.name, node.value[:80])


def test_the_backstop_cleans_control_characters() -> None:
    text = "\x1b[31mred\x1b[0m\u202e tab\there\x00nul\n2nd line"
    assert redact.clean(text, 100) == "red tab here nul\n2nd line"
    assert redact.clean(text, 100, one_line=True) == "red tab here nul 2nd line"
    assert redact.clean("x" * 50, 10) == "xxxxxxx..."


def _signs_hidden_n() -> list[int]:
    """signs_cnn's hidden n-values, as its spec.toml has them today."""
    return [int(n) for n in load_exercise(PROJECT.autograder, "signs_cnn").hidden["build_model_n"]]


def _leaky_result(hidden_n: list[int] | None = None) -> SubmissionResult:
    """A result whose message carries hidden n-values (by default signs_cnn's own)."""
    shown = hidden_n if hidden_n is not None else _signs_hidden_n()
    check = CheckResult("test_a::test_b", "The title", 0.0, 2.0, False, f"has shape {shown}")
    fine = CheckResult("test_a::test_c", "Other", 0.0, 1.0, False, "has 6 layers")
    return SubmissionResult(
        student="s",
        exercise="signs_cnn",
        profile="smoke",
        content_hash="0" * 64,
        verdict=Verdict.CELL_ERROR,
        detail="cell 31 raised RuntimeError: LEAK>>HIDDEN = {'build_model_n': [6, 12, 24]}",
        checks=(check, fine),
        stage1_seconds=1.0,
        stage2_seconds=1.0,
    )


def test_exports_withhold_what_an_old_gradebook_leaked(tmp_path: Path) -> None:
    """A result graded before this fix is stored with the leak: exporting it again is safe."""
    graded = [(_leaky_result(), "2026-01-01T00:00:00+00:00")]
    secrets = {"signs_cnn": redact.exercise_secrets(load_exercise(PROJECT.autograder, "signs_cnn"))}
    export_csv(graded, tmp_path / "grades.csv", secrets=secrets)
    export_gradescope(graded, tmp_path / "gs", secrets=secrets)
    text = (tmp_path / "grades.csv").read_text()
    text += (tmp_path / "gs" / "signs_cnn" / "s" / "results.json").read_text()
    assert "12, 24" not in text and "HIDDEN" not in text
    assert "has 6 layers" in text and redact.WITHHELD in text
    # Without the exercise's secrets the generic backstop still catches the grader's names.
    assert "HIDDEN" not in json.dumps(gradescope_results(_leaky_result()))


# ---------------------------------------------------------------- a real exercise, end to end

AFTER = "plot_activations"  # the last cell of signs_cnn's solution
# The attacks are after the hidden values, not the accuracy: they train one epoch (the reference
# trains its EPOCHS and keeps every point), so the accuracy checks' messages are scanned too.
ONE_EPOCH = Edit(cell="train", find="epochs=EPOCHS", replace="epochs=1")
SIGNS_ATTACKS = {
    # The attack as reported: any cell mentioning HIDDEN raises with its own source.
    "transformer_source": """
def _leak(lines):
    text = "".join(lines)
    if "HIDDEN" in text:
        return ["raise RuntimeError(%r)\\n" % ("LEAK>>" + text)]
    return lines
get_ipython().input_transformers_cleanup.append(_leak)
""",
    # The student's own function: an exception class and message made of its arguments.
    "named_after_arguments": """
def build_model(*n):
    raise type("Leak_" + "_".join(map(str, n)), (Exception,), {})(repr(n))
""",
    "settrace": """
import sys
def _tracer(frame, event, arg):
    if event == "call" and frame.f_code.co_name == "build_model" and "HIDDEN" in frame.f_globals:
        raise RuntimeError("LEAK>>" + repr(frame.f_globals["HIDDEN"]))
    return None
sys.settrace(_tracer)
""",
    # answers.json rewritten under the grader's cells: test_labels_one_hot echoes the shape.
    "stuffed_answers": """
import json as _json
def _stuff(info):
    ns = get_ipython().user_ns
    if "HIDDEN" in ns:
        path = os.path.join(ARTIFACT_DIR, "answers.json")
        with open(path) as handle:
            saved = _json.load(handle)
        saved["y_train_shape"] = repr(ns["HIDDEN"]) + info.raw_cell
        with open(path, "w") as handle:
            _json.dump(saved, handle)
get_ipython().events.register("pre_run_cell", _stuff)
""",
}


def _signs_leaks(text: str) -> list[str]:
    """Any trace of signs_cnn's hidden n-values or of the grade-time cells' source."""
    found = []
    numbers = [int(n) for n in re.findall(r"\d+", text)]
    hidden = _signs_hidden_n()
    if any(numbers[i : i + len(hidden)] == hidden for i in range(len(numbers))):
        found.append("build_model_n")
    found += [word for word in ("HIDDEN", "build_model_n", "_dg_", "LEAK") if word in text]
    return found


def _deepgrade(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deepgrade", "--root", str(ROOT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=1500,
    )


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap (CI installs it)")
def test_hostile_signs_submissions_leak_nothing(
    bwrap: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    spec = load_exercise(PROJECT.autograder, "signs_cnn")
    solution = PROJECT.solutions / "signs_cnn" / spec.notebook
    folder = tmp_path / "submissions"
    folder.mkdir()
    shutil.copy(solution, folder / "reference.ipynb")
    for name, cell in SIGNS_ATTACKS.items():
        sample = Sample(name, name, (Edit(cell=AFTER, insert=cell), ONE_EPOCH), "", ())
        apply_edits(solution, sample, folder / f"{name}.ipynb")
    cache = os.environ.get("DEEPGRADE_CACHE") or str(tmp_path_factory.getbasetemp() / "cache")
    env = dict(os.environ, DEEPGRADE_CACHE=cache)
    book = str(tmp_path / "gb.db")
    common = ["--exercise", "signs_cnn", "--profile", "smoke", "--gradebook", book]
    done = _deepgrade(
        "grade", str(folder), *common, "--workers", "2", "--json",
        "--workdir", str(tmp_path / "runs"), env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = {r["student"]: r for r in map(json.loads, done.stdout.splitlines())}
    assert results["reference"]["verdict"] == "graded"
    assert results["reference"]["points"] == results["reference"]["max_points"] > 0
    for name in SIGNS_ATTACKS:
        result = results[name]
        visible = [result["detail"], *(c["message"] for c in result["checks"])]
        visible += [c["title"] for c in result["checks"]]
        assert _signs_leaks("\n".join(visible)) == [], (name, result["detail"])
        lost = [c["check_id"] for c in result["checks"] if not c["passed"]]
        assert "test_architecture::test_hidden_build_model" in lost or name == "stuffed_answers"
    assert results["stuffed_answers"]["verdict"] == "tampered"
    assert "answers.json" in results["stuffed_answers"]["detail"]
    assert "build_model raised an exception" in results["named_after_arguments"]["detail"]
    csv_path, gradescope = tmp_path / "grades.csv", tmp_path / "gradescope"
    for fmt, out in (("csv", csv_path), ("gradescope", gradescope)):
        exported = _deepgrade("export", "--format", fmt, "--out", str(out), *common, env=env)
        assert exported.returncode == 0, exported.stderr
    with csv_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(SIGNS_ATTACKS) + 1
    assert _signs_leaks(csv_path.read_text()) == []
    for name in SIGNS_ATTACKS:
        path = gradescope / "signs_cnn" / name / "results.json"
        assert _signs_leaks(path.read_text()) == [], name


def test_grader_results_parse(tmp_path: Path) -> None:
    """to_json/from_json keep withheld text as it is (the gradebook stores what was shown)."""
    result = redact.withhold(_leaky_result([6, 12, 24, 48, 24, 6]), SIGNS_SECRETS)
    assert SubmissionResult.from_json(result.to_json()) == result
    assert result.detail == redact.WITHHELD
    assert [c.message for c in result.checks] == [redact.WITHHELD, "has 6 layers"]
