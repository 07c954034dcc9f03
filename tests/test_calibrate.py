"""`deepgrade calibrate`: the table it prints and writes into a README, from fake measurements
(the grading it runs is the one every other test covers; tests/test_authoring_guide.py runs it
for real on a scaffolded exercise)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepgrade.calibrate import (
    CALIBRATION_BEGIN,
    CALIBRATION_END,
    Calibration,
    SeedRun,
    markers,
    render_table,
    seed_line,
    suggest_threshold,
    write_table,
)
from deepgrade.errors import DeepgradeError, InputError

RUNS = (
    SeedRun(0, 6, 6, 12.34, {"test_accuracy": 0.9, "lenet": 0.8}),
    SeedRun(1, 6, 6, 11.0, {"test_accuracy": 0.8123, "lenet": 0.85}),
    SeedRun(2, 3, 6, 600.0, {"test_accuracy": 0.95}, verdict="timeout", detail="cell 9"),
)


def test_summaries_and_suggested_thresholds() -> None:
    calibration = Calibration("ex", "smoke", 0.05, RUNS, date="2026-01-02")
    (lenet, accuracy) = calibration.summaries()
    assert (lenet.name, lenet.low, lenet.high, lenet.suggested) == ("lenet", 0.8, 0.85, 0.75)
    assert accuracy.low == 0.8123 and accuracy.median == 0.9 and accuracy.high == 0.95
    assert accuracy.suggested == 0.76  # 0.7623 rounded down, never up
    assert suggest_threshold(0.85, 0.05) == 0.8  # no float error takes 0.80 down to 0.79
    assert suggest_threshold(0.9, 0.0) == 0.9


def test_render_table() -> None:
    table = render_table(Calibration("ex", "smoke", 0.05, RUNS, date="2026-01-02"))
    lines = table.splitlines()
    assert lines[0] == (
        "The reference solution over 3 seeds, smoke profile, 2026-01-02 "
        "(`deepgrade calibrate ex --seeds 3 --margin 0.05`):"
    )
    assert "| seed | points | stage 1 (s) | lenet | test_accuracy |" in lines
    assert "| 0 | 6/6 | 12.3 | 0.8000 | 0.9000 |" in lines
    assert "| 2 | 3/6 (timeout) | 600.0 | - | 0.9500 |" in lines
    assert "| test_accuracy | 0.8123 | 0.9000 | 0.9500 | 0.76 |" in lines
    sample = render_table(Calibration("ex", "full", 0, RUNS[:1], sample="flip", date="d"))
    assert sample.startswith("The flawed sample `flip` over 1 seeds, full profile")
    assert "--profile full --sample flip" in sample
    alike = render_table(Calibration("ex", "full", 0, RUNS[:1], look_alike=True, date="d"))
    assert alike.startswith(
        "The reference solution over 1 seeds, full profile on the synthetic look-alike at real "
        "sizes, d (`deepgrade calibrate ex --seeds 1 --margin 0 --profile full --look-alike`)"
    )
    empty = render_table(Calibration("ex", "smoke", 0, (SeedRun(0, 1, 1, 1.0, {}),), date="d"))
    assert "nothing measured" in empty


def test_seed_line() -> None:
    assert (
        seed_line(RUNS[0])
        == "seed 0: 6/6 points, stage 1 12.3 s, lenet 0.8000, test_accuracy 0.9000"
    )
    assert "(timeout: cell 9)" in seed_line(RUNS[2])


def test_write_table_replaces_between_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# ex\n\nintro\n\n{CALIBRATION_BEGIN}\nold table\n{CALIBRATION_END}\n\n## After\n"
    )
    write_table(readme, "new table")
    text = readme.read_text()
    assert (
        text == f"# ex\n\nintro\n\n{CALIBRATION_BEGIN}\nnew table\n{CALIBRATION_END}\n\n## After\n"
    )
    write_table(readme, "newer table")
    assert "new table" not in readme.read_text() and "newer table" in readme.read_text()
    # A sample's table has its own markers: the reference table stays.
    write_table(readme, "sample table", sample="flip")
    begin, end = markers("flip")
    text = readme.read_text()
    assert "newer table" in text and f"{begin}\nsample table\n{end}" in text
    assert text.count("## Calibration of the sample flip") == 1


def test_write_table_appends_a_section_without_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# ex\n\nprose\n")
    write_table(readme, "table")
    assert readme.read_text() == (
        f"# ex\n\nprose\n\n## Calibration\n\n{CALIBRATION_BEGIN}\ntable\n{CALIBRATION_END}\n"
    )


@pytest.mark.parametrize(
    "text", [f"{CALIBRATION_BEGIN}\nno end\n", f"no begin\n{CALIBRATION_END}\n"]
)
def test_write_table_refuses_a_broken_marker_pair(tmp_path: Path, text: str) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(text)
    with pytest.raises(InputError, match="put both back"):
        write_table(readme, "table")
    assert readme.read_text() == text


def test_calibrate_refuses_bad_counts(tmp_path: Path) -> None:
    from deepgrade.calibrate import calibrate
    from deepgrade.project import Project

    with pytest.raises(DeepgradeError, match="--seeds must be at least 1"):
        calibrate(Project(tmp_path), "ex", seeds=0)
    with pytest.raises(DeepgradeError, match="--workers must be at least 1"):
        calibrate(Project(tmp_path), "ex", seeds=1, workers=0)


def test_bench_script_translates_to_the_command() -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "bench" / "calibrate.py"
    spec = importlib.util.spec_from_file_location("bench_calibrate", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = module.translate(["--exercise", "fashion_vgg", "--seeds", "3", "--sample", "x"])
    assert argv[2:] == ["calibrate", "fashion_vgg", "--seeds", "3", "--sample", "x"]
    assert module.translate([])[2:] == ["calibrate", "signs_cnn"]
