"""The feedback page opened in a real browser (headless Chromium): it renders, tables and all,
with nothing fetched from the network. The screenshot is kept beside the test's files."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from test_feedback import WHEN, graded

from deepgrade.feedback import render_page
from deepgrade.results import Verdict

pytestmark = pytest.mark.browser


def headless(chromium: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "chromium-profile"
    command = [
        chromium,
        "--headless",
        "--no-sandbox",  # root in CI; the page is our own file
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def test_the_feedback_page_renders_in_chromium(chromium: str, tmp_path: Path) -> None:
    page = tmp_path / "alice.html"
    history = {"loss": [1.2, 0.8, 0.5, 0.4], "val_loss": [1.3, 1.0, 0.9, 0.9]}
    result = replace(graded(verdict=Verdict.CELL_ERROR), histories={"history.json": history})
    page.write_text(render_page(result, WHEN, "SIGNS"), "utf-8")
    dom = headless(chromium, tmp_path, "--dump-dom", page.as_uri()).stdout
    assert 'id="checks"' in dom and dom.count("<tr class=") == 2
    assert "3 / 11 points" in dom

    shot = tmp_path / "feedback.png"
    headless(chromium, tmp_path, f"--screenshot={shot}", "--window-size=1000,1400", page.as_uri())
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (1400, 1000)
    ink = np.mean(pixels.mean(axis=2) < 0.5)  # dark pixels: text was drawn
    red = np.mean((pixels[..., 0] > 0.6) & (pixels[..., 1] < 0.3))  # the lost check's points
    assert 0.01 < ink < 0.5 and red > 0.0001
    # both curves of the SVG chart were drawn, in matplotlib's first two colours: training
    # (#1f77b4) and validation (#ff7f0e, dashed), a few hundred pixels each with their dots
    for colour in ([0x1F, 0x77, 0xB4], [0xFF, 0x7F, 0x0E]):
        drawn = np.all(np.abs(pixels - np.array(colour) / 255) < 0.06, axis=2)
        assert drawn.mean() > 0.0001, colour


def test_the_class_report_draws_its_charts_in_chromium(chromium: str, tmp_path: Path) -> None:
    from test_class_report import class_summary

    from deepgrade.classreport import write_report

    page = write_report(class_summary(), tmp_path / "report")[0]
    dom = headless(chromium, tmp_path, "--dump-dom", page.as_uri()).stdout
    assert 'id="checks"' in dom and 'id="needs"' in dom
    shot = tmp_path / "class.png"
    headless(chromium, tmp_path, f"--screenshot={shot}", "--window-size=1000,700", page.as_uri())
    pixels = imread(shot)[..., :3]
    # matplotlib's first colour (#1f77b4) fills the score histogram's bars: the data-URI
    # image was decoded and drawn, under the page's no-network content policy.
    bars = np.all(np.abs(pixels - np.array([0x1F, 0x77, 0xB4]) / 255) < 0.03, axis=2)
    assert bars.mean() > 0.002
