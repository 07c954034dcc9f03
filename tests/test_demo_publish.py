"""The demo's last step, on stored results: exports, feedback pages and class reports."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console
from test_class_report import CLASS

from deepgrade.demo import publish
from deepgrade.project import Project

ROOT = Path(__file__).resolve().parents[1]


def test_publish_writes_and_names_every_page(tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(file=out, width=300)
    publish(Project(ROOT), ["bn_discovery", "signs_cnn"], CLASS, tmp_path, console)
    printed = out.getvalue()
    assert (tmp_path / "grades.csv").is_file()
    pages = sorted(p.name for p in (tmp_path / "feedback" / "signs_cnn").glob("*.html"))
    assert pages == ["ana.html", "bo.html", "cy.html", "di.html", "ed.html"]
    for exercise in ("bn_discovery", "signs_cnn"):
        report = tmp_path / "reports" / f"{exercise}.html"
        assert report.is_file() and f"class report: {report}" in printed
    assert "5 HTML pages" in printed
