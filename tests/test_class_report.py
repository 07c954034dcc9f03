"""The class report: what the class struggles with, from the gradebook, as a page and data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from deepgrade.classreport import ClassSummary, summarise, write_report
from deepgrade.cli import main
from deepgrade.gradebook import Gradebook
from deepgrade.results import CheckResult, SubmissionResult, Verdict

ROOT = Path(__file__).resolve().parents[1]
WHEN = "2026-11-30T06:00:00+00:00"


def graded(
    student: str, accuracy: float | None, layers_ok: bool, verdict: Verdict = Verdict.GRADED
) -> SubmissionResult:
    checks = (
        CheckResult("a::test_layers", "The layers", 8.0 if layers_ok else 0.0, 8.0, layers_ok),
        CheckResult(
            "a::test_accuracy",
            "Test accuracy",
            3.0 if (accuracy or 0) >= 0.75 else 0.0,
            3.0,
            (accuracy or 0) >= 0.75,
        ),
    )
    return SubmissionResult(
        student=student,
        exercise="signs_cnn",
        profile="smoke",
        content_hash=student * 4,
        verdict=verdict,
        detail="" if verdict is Verdict.GRADED else "cell 9: stopped after 600 s",
        checks=checks if verdict is not Verdict.GRADER_ERROR else (),
        stage1_seconds=20.0,
        stage2_seconds=5.0,
        measurements={} if accuracy is None else {"test_accuracy": accuracy},
    )


CLASS = [
    (graded("ana", 0.90, True), WHEN),
    (graded("bo", 0.76, False), WHEN),  # 0.01 above the threshold: borderline
    (graded("cy", 0.40, False), WHEN),
    (graded("di", None, False, Verdict.TIMEOUT), WHEN),
    (graded("ed", None, False, Verdict.GRADER_ERROR), WHEN),
]


def class_summary() -> ClassSummary:
    """CLASS's summary: threshold 0.75 on test_accuracy, borderline band 0.02."""
    return summarise(
        CLASS,
        exercise="signs_cnn",
        title="T",
        profile="smoke",
        thresholds={"test_accuracy": 0.75},
        borderline={"test_accuracy": 0.02},
    )


def test_the_summary_counts_what_the_class_did() -> None:
    s = class_summary()
    assert s.submissions == 5 and s.verdicts == {"graded": 3, "timeout": 1, "grader_error": 1}
    assert [p for _, p in s.scores] == [11.0, 3.0, 0.0, 0.0]  # the grader error is no score
    rates = {c.check_id: (c.passed, c.graded) for c in s.checks}
    assert rates == {"a::test_layers": (1, 4), "a::test_accuracy": (2, 4)}
    assert s.checks[0].check_id == "a::test_layers"  # hardest first
    (accuracy,) = s.measured
    assert accuracy.threshold == 0.75 and accuracy.borderline() == ["bo"]
    assert [who for who, _ in s.needs_a_person] == ["bo", "di", "ed"]


def test_the_report_writes_a_page_and_the_data_behind_it(tmp_path: Path) -> None:
    s = class_summary()
    page, data, rates = write_report(s, tmp_path)
    html = page.read_text(encoding="utf-8")
    assert html.count('src="data:image/png;base64,') == 3  # scores, accuracy, run time
    assert "http://" not in html and "https://" not in html
    assert json.loads(data.read_text())["verdicts"]["timeout"] == 1
    with rates.open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["check_id"] == "a::test_layers" and rows[0]["pass_rate"] == "0.250"


def test_student_names_are_text_on_the_report(tmp_path: Path) -> None:
    hostile = [(graded("<script>x()</script>", None, False, Verdict.TIMEOUT), WHEN)]
    s = summarise(
        hostile, exercise="signs_cnn", title="T", profile="smoke", thresholds={}, borderline={}
    )
    html = write_report(s, tmp_path)[0].read_text(encoding="utf-8")
    assert "<script>x()" not in html and "&lt;script&gt;" in html


def test_the_command_reads_thresholds_from_the_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    book = tmp_path / "gradebook.db"
    with Gradebook(book) as gradebook:
        for result, _ in CLASS:
            gradebook.record(result)
    args = ["--root", str(ROOT), "report", "--exercise", "signs_cnn", "--gradebook", str(book)]
    assert main([*args, "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "5 submission(s)" in out
    summary = json.loads((tmp_path / "r" / "signs_cnn.json").read_text())
    assert summary["measured"][0]["threshold"] is not None  # signs_cnn's smoke threshold


def test_a_batch_ends_with_how_many_lost_each_check() -> None:
    from rich.console import Console

    from deepgrade.report import check_summary_table

    table = check_summary_table([r for r, _ in CLASS])
    assert table is not None
    console = Console(width=200, record=True)
    console.print(table)
    lines = [" ".join(line.split()) for line in console.export_text().splitlines()]
    assert any("The layers" in line and "3 of 4" in line for line in lines)
    assert any("Test accuracy" in line and "2 of 4" in line for line in lines)
    assert check_summary_table([CLASS[0][0]]) is None  # nothing lost: no table


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"borderline": {"lenet_accuracy": 0.02}}, "not in its thresholds"),
        ({"borderline": {"test_accuracy": 0}}, "positive margins"),
        ({"borderline": {"test_accuracy": "0.02"}}, "positive margins"),
        ({"borderline_runs": 0}, "borderline_runs"),
        ({"borderline_auto": "yes"}, "borderline_auto"),
    ],
)
def test_bad_borderline_settings_name_the_spec(extra: dict, problem: str) -> None:
    from deepgrade.errors import InputError
    from deepgrade.exercise import parse_profile

    table = {
        "data": "synth",
        "cell_timeout_s": 60,
        "notebook_timeout_s": 600,
        "memory_mb": 1024,
        "artifact_cap_mb": 8,
        "parameters": {"SEED": 0},
        "thresholds": {"test_accuracy": 0.8},
        **extra,
    }
    with pytest.raises(InputError) as error:
        parse_profile("smoke", table, Path("autograder/x/spec.toml"))
    assert "autograder/x/spec.toml" in str(error.value) and problem in str(error.value)
    for key in extra:
        del table[key]
    table["borderline"] = {"test_accuracy": 0.02}
    assert parse_profile("smoke", table, Path("s.toml")).borderline == {"test_accuracy": 0.02}
