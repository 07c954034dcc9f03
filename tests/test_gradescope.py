"""The Gradescope autograder bundle: what it holds, and a run laid out like Gradescope's.

Where bubblewrap cannot start, the bundle runs the notebook as an unprivileged user: that path
needs an interpreter the user can run, which scripts/ci-nonroot builds, so it is tested there
(the reference at full marks, a cell reading the hidden checks denied).
"""

from __future__ import annotations

import hashlib
import json
import stat
import zipfile
from pathlib import Path

import pytest

from deepgrade import gradescope
from deepgrade.errors import DeepgradeError, InputError
from deepgrade.execute import RunAs
from deepgrade.project import Project

ROOT = Path(__file__).resolve().parents[1]
EXERCISE = "signs_cnn"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> gradescope.Bundle:
    out = tmp_path_factory.mktemp("gradescope") / "autograder.zip"
    return gradescope.build_bundle(Project(ROOT), EXERCISE, "smoke", out)


def test_the_bundle_holds_what_gradescope_runs(bundle: gradescope.Bundle) -> None:
    with zipfile.ZipFile(bundle.path) as archive:
        names = set(archive.namelist())
        modes = {i.filename: stat.S_IMODE(i.external_attr >> 16) for i in archive.infolist()}
        manifest = json.loads(archive.read("bundle.json"))
        requirements = archive.read("requirements.txt").decode().split()
        data = {n: archive.read(n) for n in names if n.startswith("data/")}
    assert bundle.files == len(names) and bundle.size == bundle.path.stat().st_size
    assert {"setup.sh", "run_autograder", "requirements.txt", "bundle.json"} <= names
    assert modes["setup.sh"] == modes["run_autograder"] == 0o755
    hidden = f"course/autograder/{EXERCISE}"
    assert {f"{hidden}/test_training.py", f"{hidden}/spec.toml", "lib/deepgrade/gradescope.py",
            f"course/release/{EXERCISE}/signs_cnn.ipynb"} <= names  # fmt: skip
    assert not any("__pycache__" in n for n in names)
    assert all("==" in line for line in requirements)
    assert any(line.startswith("keras==") for line in requirements)
    assert manifest["exercise"] == EXERCISE and manifest["profile"]["profile"]["name"] == "smoke"
    shipped = {f["name"]: f["sha256"] for f in manifest["files"]}
    assert {f"data/{name}" for name in shipped} == set(data)
    for name, digest in shipped.items():
        assert hashlib.sha256(data[f"data/{name}"]).hexdigest() == digest


@pytest.mark.slow
def test_a_local_run_grades_the_reference_like_gradescope(
    bundle: gradescope.Bundle, tmp_path: Path
) -> None:
    solution = ROOT / "solutions" / EXERCISE / "signs_cnn.ipynb"
    run = gradescope.run_local(bundle.path, solution, keep=tmp_path / "autograder")
    results = run.results
    assert run.returncode == 0, run.log[-2000:]
    assert results["score"] == sum(t["max_score"] for t in results["tests"]) == 25
    assert results["stdout_visibility"] == "hidden"
    assert {t["visibility"] for t in results["tests"]} == {"after_published"}
    assert results["output"].startswith("graded:")  # in bubblewrap: nothing to explain
    course = tmp_path / "autograder" / "source" / "course"
    assert stat.S_IMODE(course.stat().st_mode) == 0o700  # as setup.sh leaves it


def test_a_submission_without_its_notebook_gets_a_reason_not_an_error(
    bundle: gradescope.Bundle, tmp_path: Path
) -> None:
    upload = tmp_path / "upload"
    upload.mkdir()
    (upload / "notes.txt").write_text("I forgot the notebook")
    run = gradescope.run_local(bundle.path, upload)
    assert run.returncode == 0
    assert run.results["score"] == 0 and run.results["tests"] == []
    assert (
        "no notebook in the submission: upload one notebook, named signs_cnn.ipynb"
        in (run.results["output"])
    )


def test_not_a_bundle_is_named(tmp_path: Path) -> None:
    fake = tmp_path / "autograder.zip"
    fake.write_text("not a zip")
    with pytest.raises(InputError, match="not a zip file"):
        gradescope.run_local(fake, tmp_path)


def test_without_bubblewrap_the_notebook_runs_as_the_unprivileged_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(gradescope.SANDBOX_ENV, "off")
    mode = gradescope._host_mode()
    assert (mode.sandboxed, mode.run_as) == (False, gradescope.STUDENT_USER)
    assert "ran as the unprivileged user dgstudent, who cannot read the hidden checks" in mode.note
    nobody = RunAs.lookup("nobody")
    argv = nobody.wrap(["python", "runner.py"])
    assert argv[1:5] == [f"--reuid={nobody.uid}", f"--regid={nobody.gid}", "--clear-groups",
                         "--inh-caps=-all"]  # fmt: skip
    assert argv[-3:] == ["--", "python", "runner.py"]
    with pytest.raises(DeepgradeError, match="is root"):
        RunAs.lookup("root")
    with pytest.raises(DeepgradeError, match="no user 'no-such-user-here'"):
        RunAs.lookup("no-such-user-here")
