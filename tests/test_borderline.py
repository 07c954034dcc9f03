"""Borderline results: K more seeds, the median decides, every run kept and shown."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import MappingProxyType

from deepgrade.borderline import SEED_STEP, decide, in_band, other_seeds, rerun
from deepgrade.exercise import load_exercise
from deepgrade.feedback import render_page
from deepgrade.grade import GradeSettings
from deepgrade.profiles import resolve_profile
from deepgrade.results import CheckResult, SubmissionResult, Verdict
from deepgrade.submissions import Submission

ROOT = Path(__file__).resolve().parents[1]


def settings(tmp_path: Path, margin: float = 0.02, runs: int = 2) -> GradeSettings:
    spec = load_exercise(ROOT / "autograder", "signs_cnn")
    profile = resolve_profile(
        spec, "smoke", cache=tmp_path / "cache-unused", data_files=(), model_files=()
    )
    banded = dataclasses.replace(
        profile.spec,
        thresholds=MappingProxyType({"test_accuracy": 0.85}),
        borderline=MappingProxyType({"test_accuracy": margin}),
        borderline_runs=runs,
    )
    return GradeSettings(
        spec=spec,
        profile=dataclasses.replace(profile, spec=banded),
        release_notebook=ROOT / "release" / "signs_cnn" / "signs_cnn.ipynb",
        workdir=tmp_path / "runs",
    )


def result(accuracy: float, points: float = 20.0) -> SubmissionResult:
    return SubmissionResult(
        student="bo",
        exercise="signs_cnn",
        profile="smoke",
        content_hash="c" * 64,
        verdict=Verdict.GRADED,
        detail="",
        checks=(CheckResult("a::test_all", "All", points, 20.0, points == 20.0),),
        stage1_seconds=1.0,
        stage2_seconds=1.0,
        measurements={"test_accuracy": accuracy},
    )


def test_only_a_measurement_within_its_margin_is_borderline(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert in_band(result(0.86), s) == ["test_accuracy"]
    assert in_band(result(0.87), s) == ["test_accuracy"]  # on the edge: in
    assert in_band(result(0.84), s) == ["test_accuracy"]
    assert in_band(result(0.90), s) == [] and in_band(result(0.80), s) == []
    already = dataclasses.replace(result(0.86), reruns=decide([(0, result(0.86))], []).reruns)
    assert in_band(already, s) == []  # decided once: not again


def test_the_median_run_decides_and_every_run_is_kept() -> None:
    runs = [(0, result(0.86, 20)), (1009, result(0.82, 17)), (2018, result(0.88, 20))]
    final = decide(runs, ["test_accuracy"])
    assert final.measurements == {"test_accuracy": 0.86} and final.points == 20
    assert [(r.seed, r.decided) for r in final.reruns] == [(0, True), (1009, False), (2018, False)]
    low = decide([(0, result(0.86, 20)), (1009, result(0.82, 17))], ["test_accuracy"])
    assert low.measurements["test_accuracy"] == 0.82  # even count: the lower middle


def test_rerun_grades_other_seeds_only_for_a_borderline_result(tmp_path: Path) -> None:
    s = settings(tmp_path, runs=2)
    graded_seeds: list[int] = []
    outcomes = {SEED_STEP: 0.83, 2 * SEED_STEP: 0.84}

    def grade(submission: Submission, seeded: GradeSettings) -> SubmissionResult:
        seed = int(seeded.profile.parameters["SEED"])
        graded_seeds.append(seed)
        assert seeded.workdir.name == f"seed-{seed}"  # runs never share a folder
        return result(outcomes[seed], 17)

    submission = Submission("bo", tmp_path / "bo.ipynb")
    assert rerun(submission, s, result(0.95), grade).reruns == ()
    assert graded_seeds == []
    final = rerun(submission, s, result(0.86), grade)
    assert graded_seeds == other_seeds(0, 2) == [SEED_STEP, 2 * SEED_STEP]
    assert final.measurements["test_accuracy"] == 0.84 and final.points == 17
    assert len(final.reruns) == 3


def test_a_failed_rerun_leaves_the_first_result(tmp_path: Path) -> None:
    def broken(submission: Submission, seeded: GradeSettings) -> SubmissionResult:
        return dataclasses.replace(result(0.0), verdict=Verdict.GRADER_ERROR)

    first = result(0.86)
    assert rerun(Submission("bo", tmp_path / "x"), settings(tmp_path), first, broken) == first


def test_the_page_shows_every_run() -> None:
    runs = [(0, result(0.86, 20)), (1009, result(0.82, 17)), (2018, result(0.88, 20))]
    page = render_page(decide(runs, ["test_accuracy"]), "2026-11-30", "T")
    assert 'id="reruns"' in page and page.count("<tr><td>") >= 3 and "decided" in page
