"""Borderline results: run again with other seeds, decided by the median.

Training is not bit-reproducible across CPUs, loads and GPUs, so a measurement that lands within
the profile's `borderline` margin of its threshold could have landed on the other side. Such a
submission is graded K more times (`borderline_runs`) with other values of SEED, and the run
with the median measurement decides: its checks become the result, and every run is kept in
`reruns` (shown on the feedback page). With one measurement in the band the runs are ordered
by it; with several, by points.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

from deepgrade.exercise import ProfileSpec
from deepgrade.grade import GradeSettings
from deepgrade.results import Rerun, SubmissionResult, Verdict
from deepgrade.submissions import Submission

SEED_STEP = 1009  # other seeds: SEED + 1009, + 2018...: far from the seeds people try by hand


def within_margin(measurements: Mapping[str, float], spec: ProfileSpec) -> list[str]:
    """The measurements within the profile's borderline margin of their threshold."""
    found = []
    for name, margin in spec.borderline.items():
        value = measurements.get(name)
        threshold = spec.thresholds.get(name)
        if value is not None and threshold is not None and abs(value - threshold) <= margin + 1e-9:
            found.append(name)
    return found


def in_band(result: SubmissionResult, settings: GradeSettings) -> list[str]:
    """The measurements of `result` within their margin of their threshold."""
    if result.verdict is Verdict.GRADER_ERROR or result.reruns:
        return []
    return within_margin(result.measurements, settings.profile.spec)


def other_seeds(seed: int, runs: int) -> list[int]:
    return [seed + SEED_STEP * i for i in range(1, runs + 1)]


def decide(runs: list[tuple[int, SubmissionResult]], names: list[str]) -> SubmissionResult:
    """The median run's result, with every run recorded (an odd count has one median; an even
    count takes the lower of the two middle runs: a borderline result is not rounded up)."""

    def key(run: tuple[int, SubmissionResult]) -> float:
        result = run[1]
        if len(names) == 1:
            return result.measurements.get(names[0], float("-inf"))
        return result.points

    ordered = sorted(runs, key=key)
    median_seed, median = ordered[(len(ordered) - 1) // 2]
    recorded = tuple(
        Rerun(seed, result.points, dict(result.measurements), decided=seed == median_seed)
        for seed, result in runs
    )
    first = runs[0][1]
    return replace(median, reruns=recorded, content_hash=first.content_hash)


def rerun(
    submission: Submission,
    settings: GradeSettings,
    first: SubmissionResult,
    grade: Callable[[Submission, GradeSettings], SubmissionResult],
) -> SubmissionResult:
    """Grade `submission` again with the profile's other seeds and decide by the median."""
    names = in_band(first, settings)
    if not names:
        return first
    profile = settings.profile
    seed = int(profile.parameters.get("SEED", 0))  # the notebook's parameters cell has SEED
    runs = [(seed, first)]
    for other in other_seeds(seed, profile.spec.borderline_runs):
        seeded = replace(profile, parameters={**profile.parameters, "SEED": other})
        workdir = Path(settings.workdir) / f"seed-{other}"
        result = grade(submission, replace(settings, profile=seeded, workdir=workdir))
        if result.verdict is Verdict.GRADER_ERROR:
            return first  # no decision on a failed re-run: the first result stands, for a person
        runs.append((other, result))
    return decide(runs, names)
