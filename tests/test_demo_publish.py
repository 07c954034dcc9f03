"""The demo's last step, on stored results: exports, feedback pages and class reports."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from rich.console import Console
from test_class_report import CLASS

from deepgrade.demo import publish
from deepgrade.project import Project

ROOT = Path(__file__).resolve().parents[1]


def test_publish_writes_and_names_every_page(tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(file=out, width=40)  # a narrow terminal: paths still whole
    publish(Project(ROOT), ["bn_discovery", "signs_cnn"], CLASS, tmp_path, console)
    printed = out.getvalue()
    assert (tmp_path / "grades.csv").is_file()
    pages = sorted(p.name for p in (tmp_path / "feedback" / "signs_cnn").glob("*.html"))
    assert pages == ["ana.html", "bo.html", "cy.html", "di.html", "ed.html"]
    for exercise in ("bn_discovery", "signs_cnn"):
        report = tmp_path / "reports" / f"{exercise}.html"
        assert report.is_file() and f"class report: {report}" in printed
    assert "5 HTML pages" in printed
    with (tmp_path / "canvas.csv").open(newline="", encoding="utf-8") as handle:
        canvas = list(csv.reader(handle))
    assert canvas[0][-1] == "SIGNS hand-sign CNN"  # the exercise's title
    scores = {row[3]: row[-1] for row in canvas[2:]}  # by SIS Login ID
    assert scores["ana"] != "" and scores["di"] != ""  # a timeout is a grade
    assert scores["ed"] == ""  # a grader error is not
    assert f"Canvas:    {tmp_path / 'canvas.csv'} (signs_cnn: column" in printed
    bundle = tmp_path / "autograder-signs_cnn.zip"
    assert bundle.is_file() and f"Gradescope autograder: {bundle} (" in printed


def test_the_demo_flags_a_sample_graded_otherwise_than_recorded() -> None:
    import dataclasses

    from test_borderline import decide, result

    from deepgrade.demo import expectation_problems
    from deepgrade.samples import Sample

    sample = Sample("bo", "borderline", (), "graded", ("a::test_all",), expect_runs=3)
    runs = [(0, result(0.86, 17)), (1009, result(0.82, 17)), (2018, result(0.88, 17))]
    assert expectation_problems(decide(runs, ["test_accuracy"]), sample) == []
    once = result(0.86, 17)
    assert expectation_problems(once, sample) == ["1 run(s), expected 3"]
    assert expectation_problems(once, dataclasses.replace(sample, expect_runs=1)) == []


def test_a_borderline_sample_outside_its_band_on_this_cpu_runs_once() -> None:
    """Calibrated in the band on one CPU family, a sample may land outside it on another: then
    one run is right and only its `borderline_checks` follow the value; the rest still count."""
    import dataclasses

    from test_borderline import result

    from deepgrade.demo import expectation_problems
    from deepgrade.exercise import ProfileSpec
    from deepgrade.samples import Sample

    spec = ProfileSpec(
        name="smoke", parameters={}, data="synth", cell_timeout_s=60, notebook_timeout_s=60,
        memory_mb=1024, artifact_cap_mb=8, thresholds={"test_accuracy": 0.85},
        borderline={"test_accuracy": 0.02},
    )  # fmt: skip
    sample = Sample(
        "bo", "borderline", (), "graded", ("a::test_all",), expect_runs=3,
        borderline_checks=("a::test_all",),
    )  # fmt: skip
    assert expectation_problems(result(0.90, 20), sample, spec) == []  # outside: once, passed
    assert expectation_problems(result(0.70, 17), sample, spec) == []  # outside: once, failed
    assert expectation_problems(result(0.86, 17), sample, spec) == ["1 run(s), expected 3"]
    other = dataclasses.replace(sample, borderline_checks=())
    assert expectation_problems(result(0.90, 20), other, spec) == [
        "failed [], expected ['a::test_all']"
    ]
