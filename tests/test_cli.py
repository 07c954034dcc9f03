"""The command line: exit codes scripts can trust, one-line errors naming the file, and the
student's self-check (`validate`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from deepgrade.cli import main

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "signs_cnn" / "signs_cnn.ipynb"
RELEASE = ROOT / "release" / "signs_cnn" / "signs_cnn.ipynb"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--root", str(ROOT), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in (
        "datasets",
        "release",
        "validate",
        "grade",
        "export",
        "check-solutions",
        "demo",
    ):
        assert command in out


def test_bad_input_exits_2_naming_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere"
    code, _, err = run(capsys, "grade", str(missing), "--exercise", "signs_cnn")
    assert code == 2
    assert f"{missing}: is not a folder of submissions" in err
    code, _, err = run(capsys, "grade", str(tmp_path), "--exercise", "nope")
    assert code == 2
    assert "no exercise 'nope'" in err and "signs_cnn" in err
    code, _, err = run(capsys, "export", "--format", "csv", "--gradebook", str(missing))
    assert code == 2 and "no gradebook here yet" in err


def test_datasets_import_refuses_wrong_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPGRADE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "train_signs.h5").write_bytes(b"not hdf5")
    code, _, err = run(capsys, "datasets", "import", "signs", str(tmp_path))
    assert code == 2
    assert "train_signs.h5" in err
    assert not (tmp_path / "cache" / "signs" / "real").exists()


def test_datasets_synth_then_import_round_trip(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPGRADE_CACHE", str(tmp_path / "cache"))
    out_dir = tmp_path / "made"
    code, out, _ = run(
        capsys,
        "datasets",
        "synth",
        "signs",
        "--out",
        str(out_dir),
        "--n-train",
        "130",
        "--n-test",
        "12",
    )
    assert code == 0 and str(out_dir) in out
    code, out, _ = run(capsys, "datasets", "import", "signs", str(out_dir))
    assert code == 0 and "verified and imported" in out
    assert (tmp_path / "cache" / "signs" / "real" / "train_signs.h5").is_file()


def test_release_check_passes_on_the_committed_tree(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "release", "--check")
    assert code == 0, out
    assert "up to date" in out


def test_validate_a_complete_notebook(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", str(SOLUTION))
    assert code == 0
    assert "ready to submit" in out


def test_validate_reports_missing_answers(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", str(RELEASE))
    assert code == 1
    assert "(build_model) still has no answer" in out
    assert "YOUR ANSWER HERE" in out


def test_validate_reports_a_tampered_locked_cell(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    nb = nbformat.read(SOLUTION, as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "save_predictions":
            cell.source += "\nprint('edited')"
    edited = tmp_path / "edited.ipynb"
    nbformat.write(nb, edited)
    code, out, _ = run(capsys, "validate", str(edited))
    assert code == 1
    assert "save_predictions" in out


def test_validate_needs_an_exercise(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bare = tmp_path / "bare.ipynb"
    shutil.copy(SOLUTION, bare)
    nb = nbformat.read(bare, as_version=4)
    nb.metadata.pop("deepgrade", None)
    nbformat.write(nb, bare)
    code, out, _ = run(capsys, "validate", str(bare))
    assert code == 1 and "--exercise" in out
    code, out, _ = run(capsys, "validate", str(bare), "--exercise", "signs_cnn")
    assert code == 0


def test_check_solutions_grades_on_the_gpus_asked_for(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--gpus reaches the same GPU set-up as `grade --gpus`: asked for, refused before work."""
    from deepgrade import batch
    from deepgrade.nvidia import GpuError

    asked = []

    def refuse(request: object, workers: int, profile: object) -> None:
        asked.append((request, workers))
        raise GpuError("--gpus names GPU 'GPU-x', which the NVIDIA driver does not list")

    monkeypatch.setattr(batch, "resolve_gpus", refuse)
    code, out, err = run(
        capsys, "check-solutions", "--exercise", "signs_cnn", "--gpus", "GPU-x", "--unsafe"
    )
    assert code == 2 and "which the NVIDIA driver does not list" in err
    assert asked == [(batch.GpuRequest(("GPU-x",)), 1)] and "grading" not in out


@pytest.mark.parametrize(
    "command", [("check-solutions", "--exercise", "signs_cnn"), ("mutate", "signs_cnn")]
)
def test_cell_timeout_reaches_the_batch_settings(
    command: tuple[str, ...], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """check-solutions and mutate take --cell-timeout as grade does (CI grades beside pytest)."""
    from deepgrade import batch
    from deepgrade.errors import DeepgradeError

    asked = []

    def stop(*args: object, **kwargs: object) -> None:
        asked.append(args[5] if len(args) > 5 else kwargs.get("cell_timeout_s"))
        raise DeepgradeError("stopped before grading")

    monkeypatch.setattr(batch, "batch_settings", stop)
    code, _, err = run(capsys, *command, "--unsafe", "--cell-timeout", "600")
    assert code != 0 and "stopped before grading" in err
    code, _, err = run(capsys, *command, "--unsafe")
    assert code != 0 and "stopped before grading" in err
    assert asked == [600, None]


def test_grade_takes_a_workdir_relative_to_where_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--workdir runs` names ./runs: the check server's sandbox binds files from it, and
    bubblewrap, started elsewhere, once could not find them (every submission a grader error)."""
    from deepgrade import tinycourse

    course = tinycourse.write_course(tmp_path / "course")
    tinycourse.write_submissions(tmp_path / "subs", ["ana", "bo"])
    monkeypatch.chdir(tmp_path)
    code = main(["--root", str(course), "grade", "subs", "--exercise", tinycourse.EXERCISE,
                 "--gradebook", "gb.db", "--workdir", "runs", "--json"])  # fmt: skip
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert [(r["student"], r["verdict"]) for r in results] == [("ana", "graded"), ("bo", "graded")]
    assert all(r["points"] == r["max_points"] > 0 for r in results)
    assert (tmp_path / "runs").is_dir()
