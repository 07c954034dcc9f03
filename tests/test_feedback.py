"""Feedback pages: what a student reads, rendered from the gradebook without re-grading."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from deepgrade import redact
from deepgrade.cli import main
from deepgrade.feedback import render_page, safe_name, write_pages
from deepgrade.gradebook import Gradebook
from deepgrade.results import CheckResult, SubmissionResult, Verdict
from deepgrade.verdicts import EXPLAINED

ROOT = Path(__file__).resolve().parents[1]
WHEN = "2026-11-30T06:00:00+00:00"


def graded(
    student: str = "alice",
    verdict: Verdict = Verdict.GRADED,
    message: str = "the network has 5 Conv2D layers; the exercise asks for 6",
) -> SubmissionResult:
    return SubmissionResult(
        student=student,
        exercise="signs_cnn",
        profile="smoke",
        content_hash="0123456789abcdef" * 4,
        verdict=verdict,
        detail="" if verdict is Verdict.GRADED else "cell 14 raised ValueError: shapes differ",
        checks=(
            CheckResult(
                "test_architecture.py::test_layers", "The layers", 0.0, 8.0, False, message
            ),
            CheckResult("test_training.py::test_accuracy", "Test accuracy", 3.0, 3.0, True),
        ),
        stage1_seconds=17.25,
        stage2_seconds=6.5,
        limits=("memory 4096 MiB", "processes 256"),
        measurements={"test_accuracy": 0.8125},
    )


def text_of(page: str) -> str:
    """What a reader sees: the page without its style, tags and entities."""
    body = re.sub(r"<style>.*?</style>", " ", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def test_a_page_says_what_was_lost_and_what_to_do() -> None:
    html = render_page(graded(verdict=Verdict.CELL_ERROR), WHEN, "SIGNS CNN")
    text = text_of(html)
    assert "SIGNS CNN" in text and "alice" in text and "0123456789ab" in text
    assert "3 / 11 points" in text
    assert "cell 14 raised ValueError: shapes differ" in text
    happened, todo = EXPLAINED[Verdict.CELL_ERROR]
    assert happened in text and todo in text
    assert "0 / 8" in text and "the exercise asks for 6" in text
    assert "test_accuracy 0.8125" in text
    assert "17.2 s" in text or "17.3 s" in text
    assert "memory 4096 MiB" in text


def test_every_verdict_is_explained() -> None:
    assert set(EXPLAINED) == set(Verdict)
    for verdict in Verdict:
        assert EXPLAINED[verdict][0] in text_of(render_page(graded(verdict=verdict), WHEN, "T"))


def test_student_text_is_escaped_not_run() -> None:
    hostile = graded(
        student="<script>alert(1)</script>",
        message='<img src=x onerror="fetch(1)"> and </td></table><h1>fake</h1>',
    )
    html = render_page(hostile, WHEN, "T")
    assert "<script>alert" not in html and "<img" not in html and "<h1>fake" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_page_loads_nothing_from_anywhere() -> None:
    html = render_page(graded(), WHEN, "T")
    assert not re.search(r"(?:src|href)\s*=", html)
    assert "http://" not in html and "https://" not in html and "@import" not in html
    assert "default-src 'none'" in html  # and the browser is told so


def test_a_hidden_value_in_a_stored_message_is_withheld() -> None:
    secrets = redact.secrets_of({"build_model_n": [6, 12, 24, 48, 24, 4]}, [])
    leaky = graded(message="expected [6, 12, 24, 48, 24, 4] filters")
    text = text_of(render_page(leaky, WHEN, "T", secrets))
    assert "24, 48" not in text and redact.WITHHELD in text


@pytest.mark.parametrize(
    ("name", "safe"),
    [("../../etc/passwd", "etc_passwd"), (".hidden", "hidden"), ("ana.b-1", "ana.b-1")],
)
def test_page_names_stay_in_their_folder(name: str, safe: str) -> None:
    assert safe_name(name) == safe


def test_write_pages_one_file_per_submission(tmp_path: Path) -> None:
    results = [(graded("alice"), WHEN), (graded("../bob"), WHEN)]
    written = write_pages(results, tmp_path, titles={"signs_cnn": "SIGNS"})
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written.pages.values()) == [
        "signs_cnn/alice.html",
        "signs_cnn/bob.html",
    ]


def test_the_command_renders_what_the_gradebook_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    book = tmp_path / "gradebook.db"
    with Gradebook(book) as gradebook:
        gradebook.record(graded("alice"))
        gradebook.record(graded("carol", Verdict.TAMPERED))
    out = tmp_path / "pages"
    code = main(["--root", str(ROOT), "feedback", "--gradebook", str(book), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "wrote 2 feedback page(s)" in printed
    page = (out / "signs_cnn" / "carol.html").read_text(encoding="utf-8")
    assert EXPLAINED[Verdict.TAMPERED][0] in text_of(page)
    assert "Recognising hand signs" in page or "SIGNS" in page  # the spec's title


def test_the_command_names_a_missing_gradebook(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.db"
    code = main(["--root", str(ROOT), "feedback", "--gradebook", str(missing)])
    assert code == 2 and str(missing) in capsys.readouterr().err


def test_the_page_shows_peak_memory_where_known() -> None:
    import dataclasses

    page = text_of(render_page(dataclasses.replace(graded(), peak_memory_mb=812.4), WHEN, "T"))
    assert "peak memory of your notebook 812 MiB" in page
    assert "peak memory" not in text_of(render_page(graded(), WHEN, "T"))


def test_thresholds_show_beside_their_measurement_unless_the_spec_hides_them(
    tmp_path: Path,
) -> None:
    import shutil

    from deepgrade.feedback import shown_thresholds

    page = text_of(render_page(graded(), WHEN, "T", thresholds={"test_accuracy": 0.85}))
    assert "test_accuracy 0.8125 0.85" in page
    autograder = tmp_path / "autograder"
    shutil.copytree(ROOT / "autograder" / "signs_cnn", autograder / "signs_cnn")
    shown = shown_thresholds(autograder, ["signs_cnn"])
    assert shown[("signs_cnn", "smoke")]["test_accuracy"] > 0
    spec = autograder / "signs_cnn" / "spec.toml"
    spec.write_text("show_thresholds = false\n" + spec.read_text())
    assert shown_thresholds(autograder, ["signs_cnn"]) == {}
