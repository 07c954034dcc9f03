"""`deepgrade calibrate`: an exercise's thresholds from its reference solution over many seeds.

Each seed grades the reference solution through both stages exactly as `grade` does (sandbox,
grade-time cells, the profile's parameters with SEED replaced) and collects what the hidden
checks measured (`measure(...)`, e.g. test_accuracy). Per measurement the table gives min,
median and max and a suggested threshold, `min - margin` rounded down to two decimals. With a
flawed sample of samples.toml instead, the same table shows how far the sample sits from the
thresholds (a sample within the noise would flip its checks). `--write` puts the table into the
exercise's README between markers, replacing the previous one.
"""

from __future__ import annotations

import datetime
import math
import statistics
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from deepgrade.errors import DeepgradeError, InputError
from deepgrade.project import Project

CALIBRATION_BEGIN = "<!-- deepgrade calibrate: begin (written by `deepgrade calibrate --write`) -->"
CALIBRATION_END = "<!-- deepgrade calibrate: end -->"


def markers(sample: str | None = None) -> tuple[str, str]:
    """The README markers around the reference solution's table, or a sample's."""
    if sample is None:
        return CALIBRATION_BEGIN, CALIBRATION_END
    return (
        f"<!-- deepgrade calibrate --sample {sample}: begin -->",
        f"<!-- deepgrade calibrate --sample {sample}: end -->",
    )


@dataclass(frozen=True)
class SeedRun:
    """One seed's grading."""

    seed: int
    points: float
    max_points: float
    stage1_seconds: float
    measurements: dict[str, float]
    verdict: str = "graded"
    detail: str = ""


@dataclass(frozen=True)
class Summary:
    """One measurement over the seeds, and the threshold it suggests."""

    name: str
    low: float
    median: float
    high: float
    suggested: float


@dataclass(frozen=True)
class Calibration:
    """A calibration run: what was graded, how, and each seed's result."""

    exercise: str
    profile: str
    margin: float
    runs: tuple[SeedRun, ...]
    sample: str | None = None
    look_alike: bool = False  # a real-data profile run on the synthetic look-alike
    date: str = field(default_factory=lambda: datetime.date.today().isoformat())

    def summaries(self) -> list[Summary]:
        by_name: dict[str, list[float]] = {}
        for run in self.runs:
            for name, value in run.measurements.items():
                by_name.setdefault(name, []).append(value)
        return [
            Summary(
                name,
                min(values),
                statistics.median(values),
                max(values),
                suggest_threshold(min(values), self.margin),
            )
            for name, values in sorted(by_name.items())
        ]


def suggest_threshold(lowest: float, margin: float) -> float:
    """`lowest - margin` rounded down to two decimals (a threshold never above the data)."""
    return math.floor(round((lowest - margin) * 100, 6)) / 100


def seed_line(run: SeedRun) -> str:
    """One seed as the command prints it while the calibration runs."""
    shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(run.measurements.items()))
    status = f"{run.points:g}/{run.max_points:g} points"
    if run.verdict != "graded":
        status += f" ({run.verdict}: {run.detail})"
    return f"seed {run.seed}: {status}, stage 1 {run.stage1_seconds:.1f} s, {shown}".rstrip(", ")


def render_table(calibration: Calibration) -> str:
    """The Markdown the README gets: the command, each seed, and the summary per measurement."""
    c = calibration
    names = sorted({name for run in c.runs for name in run.measurements})
    command = f"deepgrade calibrate {c.exercise} --seeds {len(c.runs)} --margin {c.margin:g}"
    if c.profile != "smoke":
        command += f" --profile {c.profile}"
    if c.sample:
        command += f" --sample {c.sample}"
    if c.look_alike:
        command += " --look-alike"
    what = f"the flawed sample `{c.sample}`" if c.sample else "the reference solution"
    lines = [
        f"{what[0].upper()}{what[1:]} over {len(c.runs)} seeds, {c.profile} profile"
        + (" on the synthetic look-alike at real sizes" if c.look_alike else "")
        + f", {c.date} (`{command}`):",
        "",
        "| " + " | ".join(["seed", "points", "stage 1 (s)", *names]) + " |",
        "|" + " --- |" * (3 + len(names)),
    ]
    for run in c.runs:
        points = f"{run.points:g}/{run.max_points:g}"
        if run.verdict != "graded":
            points += f" ({run.verdict})"
        values = [f"{run.measurements[n]:.4f}" if n in run.measurements else "-" for n in names]
        lines.append(
            f"| {run.seed} | {points} | {run.stage1_seconds:.1f} | " + " | ".join(values) + " |"
        )
    lines += [
        "",
        f"| measurement | min | median | max | suggested threshold (min - {c.margin:g}) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for s in c.summaries():
        lines.append(
            f"| {s.name} | {s.low:.4f} | {s.median:.4f} | {s.high:.4f} | {s.suggested:.2f} |"
        )
    if not names:
        lines.append("| (nothing measured: a check calls `measure(name, value)`) | | | | |")
    return "\n".join(lines)


def write_table(readme: Path, table: str, sample: str | None = None) -> None:
    """Put `table` between the README's markers, replacing what was there; a README without
    them gets a Calibration section with them at its end."""
    begin, end = markers(sample)
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    block = f"{begin}\n{table}\n{end}"
    start = text.find(begin)
    if start < 0:
        if end in text:
            raise InputError(readme, f"{end!r} without {begin!r} before it: put both back")
        heading = "## Calibration" + (f" of the sample {sample}" if sample else "")
        text = text.rstrip("\n") + ("\n\n" if text.strip() else "") + f"{heading}\n\n{block}\n"
    else:
        stop = text.find(end, start)
        if stop < 0:
            raise InputError(readme, f"{begin!r} without {end!r} after it: put both back")
        text = text[:start] + block + text[stop + len(end) :]
    readme.write_text(text, encoding="utf-8")


def calibrate(
    project: Project,
    exercise: str,
    *,
    seeds: int,
    profile: str = "smoke",
    margin: float = 0.05,
    sample: str | None = None,
    workers: int = 2,
    unsafe: bool = False,
    allow_unlimited: bool = False,
    look_alike: bool = False,
    on_seed: Callable[[SeedRun], None] | None = None,
) -> Calibration:
    """Grade the reference solution (or a sample) once per seed 0..seeds-1, exactly as grading
    does; only SEED differs, and each seed gets its own folder. `look_alike`: a real-data
    profile on the synthetic look-alike (its times; its accuracies are not the course's)."""
    from deepgrade.batch import batch_settings
    from deepgrade.grade import grade_submission
    from deepgrade.profiles import resolve_profile
    from deepgrade.samples import apply_edits, load_samples
    from deepgrade.submissions import Submission

    if seeds < 1:
        raise DeepgradeError(f"--seeds must be at least 1, got {seeds}")
    if workers < 1:
        raise DeepgradeError(f"--workers must be at least 1, got {workers}")
    with tempfile.TemporaryDirectory(prefix="deepgrade-calibrate-") as tmp:
        base = batch_settings(
            project,
            exercise,
            profile,
            Path(tmp),
            unsafe,
            allow_unlimited=allow_unlimited,
            look_alike=look_alike,
        )
        solution = project.solutions / base.spec.name / base.spec.notebook
        if not solution.is_file():
            raise InputError(solution, f"no reference solution: run `deepgrade release {exercise}`")
        if sample:
            chosen = [s for s in load_samples(base.spec.directory) if s.name == sample]
            if not chosen:
                known = ", ".join(s.name for s in load_samples(base.spec.directory))
                raise InputError(
                    base.spec.directory / "samples.toml",
                    f"no sample {sample!r} (known: {known or 'none'})",
                )
            solution = apply_edits(solution, chosen[0], Path(tmp) / f"{sample}.ipynb")

        def one_seed(seed: int) -> SeedRun:
            seeded = resolve_profile(
                base.spec,
                base.profile.name,
                {"SEED": seed},
                data_files=base.profile.data_files,
                model_files=base.profile.model_files,
                look_alike=look_alike,
            )
            settings = replace(base, profile=seeded, workdir=Path(tmp) / f"seed{seed}")
            result = grade_submission(Submission(f"seed{seed}", solution), settings)
            run = SeedRun(
                seed=seed,
                points=result.points,
                max_points=result.max_points,
                stage1_seconds=result.stage1_seconds,
                measurements=dict(result.measurements),
                verdict=str(result.verdict.value),
                detail=result.detail,
            )
            if on_seed is not None:
                on_seed(run)
            return run

        with ThreadPoolExecutor(workers) as pool:
            runs = tuple(pool.map(one_seed, range(seeds)))
    look_alike = look_alike and base.profile.spec != base.spec.profile(profile)
    return Calibration(exercise, profile, margin, runs, sample=sample, look_alike=look_alike)
