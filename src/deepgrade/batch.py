"""The batch commands shared by `grade`, `check-solutions` and `demo`: set up, grade, show.

Setting up a batch resolves everything once (the spec, the grading profile with its data and
model files in the cache, the grader's copy of the released notebook), checks the sandbox is
usable, then hands the submissions to the runner with a progress bar and prints the class
table.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from deepgrade.deadlines import Deadlines
from deepgrade.exercise import load_exercise
from deepgrade.feedback import write_feedback
from deepgrade.gpubatch import GpuRequest, GpuSetup, resolve_gpus
from deepgrade.gpumonitor import GpuUsage
from deepgrade.gpuslots import cpu_plan
from deepgrade.grade import GradeSettings
from deepgrade.gradebook import BatchRecord, Gradebook, default_gradebook
from deepgrade.graderversion import grader_version
from deepgrade.profiles import resolve_profile
from deepgrade.project import Project
from deepgrade.report import print_lateness, print_results
from deepgrade.results import SubmissionResult, Verdict
from deepgrade.runner import BatchEvent, grade_batch
from deepgrade.submission_times import read_times
from deepgrade.submissions import Submission, discover, display_path

if TYPE_CHECKING:
    from deepgrade.raydriver import ClusterBatch

EXIT_OK, EXIT_GRADER_FAILED = 0, 1


def batch_settings(
    project: Project,
    exercise: str,
    profile: str,
    workdir: Path,
    unsafe: bool,
    cell_timeout_s: int | None = None,
    *,
    allow_unlimited: bool = False,
    gpus: bool = False,
    overrides: Mapping[str, Any] | None = None,
    look_alike: bool = False,
    on_this_host: bool = True,
) -> GradeSettings:
    """The batch's settings, after the host's limits are checked (before any data is made):
    `unlimited` is set when --allow-unlimited lets a host without them grade (results marked).
    A batch graded elsewhere (`on_this_host` False: a cluster's nodes check themselves) skips
    the check.
    The profile is resolved here, once (an unknown one refused before any work); `overrides`
    go over its notebook parameters (e.g. {"SEED": 3}); `look_alike` puts a real-data profile
    on the synthetic look-alike (see resolve_profile).
    """
    from deepgrade import limits

    unlimited = False
    if on_this_host:
        host = limits.require(unsafe=unsafe, allow_unlimited=allow_unlimited, gpu=gpus)
        unlimited = allow_unlimited and bool(host.refusal(sandboxed=False, gpu=gpus))
    spec = load_exercise(project.autograder, exercise)
    release_notebook = project.release / spec.name / spec.notebook
    return GradeSettings(
        spec=spec,
        profile=resolve_profile(spec, profile, overrides, look_alike=look_alike),
        release_notebook=release_notebook,
        grader_version=grader_version(spec.directory, release_notebook),
        workdir=workdir.resolve(),  # bound into sandboxes, whose working folder is not ours
        unsafe=unsafe,
        cell_timeout_s=cell_timeout_s,
        unlimited=unlimited,
    )


@dataclass(frozen=True)
class BatchOutcome:
    """What a batch did: results graded now, results found already graded (skipped), and a
    note on how the workers were placed (see gpuslots), "" when there is nothing to say."""

    graded: list[SubmissionResult]
    cached: list[SubmissionResult]
    note: str = ""
    gpu_usage: tuple[GpuUsage, ...] = ()  # each GPU's busy % and memory over the batch
    cluster: ClusterBatch | None = None  # graded on a Ray cluster: its nodes, refusals, retries

    def json_lines(self) -> list[str]:
        """One JSON line per submission, by student, each saying whether it was cached."""
        rows = [(r, False) for r in self.graded] + [(r, True) for r in self.cached]
        rows.sort(key=lambda row: (row[0].student, row[1]))
        return [json.dumps({**r.to_json(), "cached": c}, sort_keys=True) for r, c in rows]


def run_with_progress(
    submissions: Sequence[Submission],
    settings: GradeSettings,
    gradebook: Gradebook,
    *,
    workers: int,
    gpu: GpuSetup | None = None,
    force: bool = False,
    console: Console,
    cluster: str | None = None,
    allow_unlimited: bool = False,
) -> BatchOutcome:
    """Grade with a progress bar; the batch (and its GPUs' figures) goes into the gradebook.
    `cluster`: the address of a Ray cluster to grade on ("auto": this host's) instead of the
    local workers."""
    profile = settings.profile
    plan = gpu.plan if gpu is not None else cpu_plan(workers, profile.gpus, profile.name)
    monitor = gpu.monitor() if gpu is not None else None
    started = datetime.now(UTC)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[last]}"),
        TextColumn("{task.fields[cluster]}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(
            f"grading {settings.spec.name}", total=len(submissions), last="", cluster=""
        )
        cached: list[SubmissionResult] = []

        def on_event(event: BatchEvent) -> None:
            last = (
                f"{event.submission.student}: already graded"
                if event.cached
                else f"{event.submission.student}: {event.result.points:g}/"
                f"{event.result.max_points:g} {event.result.verdict}"
            )
            if event.cached:
                cached.append(event.result)
            progress.update(task, completed=event.done, last=last)

        on_cluster: ClusterBatch | None = None
        if monitor is not None:
            monitor.start()
        try:
            if cluster is not None:
                from deepgrade.raydriver import grade_on_ray

                on_cluster = grade_on_ray(
                    submissions,
                    settings,
                    gradebook,
                    address=cluster,
                    force=force,
                    on_event=on_event,
                    on_progress=lambda p: progress.update(task, cluster=p.describe()),
                    allow_unlimited=allow_unlimited,
                )
                graded = on_cluster.results
            else:
                graded = grade_batch(
                    submissions,
                    settings,
                    gradebook,
                    slots=plan,
                    monitor=monitor,
                    force=force,
                    on_event=on_event,
                )
        finally:
            usage = monitor.stop() if monitor is not None else ()
    gradebook.record_batch(
        BatchRecord(
            exercise=settings.spec.name,
            profile=profile.name,
            started_at=started,
            finished_at=datetime.now(UTC),
            workers=len(on_cluster.nodes) if on_cluster is not None else len(plan.slots),
            graded=len(graded),
            cached=len(cached),
            gpu_usage=tuple(u.to_json() for u in usage),
        )
    )
    note = "" if on_cluster is not None else plan.note
    cached.sort(key=lambda r: r.student)
    return BatchOutcome(graded, cached, note, usage, on_cluster)


def grade_folder(
    project: Project,
    folder: Path,
    *,
    exercise: str,
    profile: str,
    workers: int,
    gpus: GpuRequest,
    gradebook_path: Path | None,
    unsafe: bool,
    force: bool,
    as_json: bool,
    cell_timeout_s: int | None = None,
    workdir: Path | None = None,
    allow_unlimited: bool = False,
    cluster: str | None = None,
    deadlines: Deadlines | None = None,
    times_csv: Path | None = None,
    assignment: str | None = None,
) -> int:
    """`cluster`: a Ray cluster's address to grade on (`--executor ray --address`);
    `deadlines`: the course's, for the late penalties shown; `times_csv`: submission times
    (else nbgrader's timestamp.txt or Gradescope's metadata beside each notebook);
    `assignment`: nbgrader's folder name for the exercise (default: the exercise's)."""
    console = Console(stderr=as_json)
    runs = workdir or project.root / ".deepgrade" / "runs"
    settings = batch_settings(
        project, exercise, profile, runs, unsafe, cell_timeout_s,
        allow_unlimited=allow_unlimited, gpus=bool(gpus.ids), on_this_host=cluster is None,
    )  # fmt: skip
    gpu = None if cluster is not None else resolve_gpus(gpus, workers, settings.profile.spec)
    found = discover(folder, settings.spec.notebook, assignment or exercise)
    zone = deadlines.zone if deadlines is not None else UTC
    times = read_times(found.submissions, exercise, zone, times_csv)
    # Paths are students' names: never read as markup, never wrapped (a path split over two
    # lines cannot be found or copied).
    for problem in found.problems:
        console.print(f"[yellow]skipped: {escape(problem)}[/]", soft_wrap=True)
    for problem in times.problems:
        console.print(f"[yellow]{escape(problem)}[/]", soft_wrap=True)
    if not found.submissions:
        console.print(
            f"[yellow]no submissions found in {escape(display_path(folder))}[/]", soft_wrap=True
        )
    gradebook_path = gradebook_path or default_gradebook(project)
    with Gradebook(gradebook_path) as book:
        book.record_times(times.found)  # facts about the files: kept even if grading stops
        outcome = run_with_progress(
            found.submissions,
            settings,
            book,
            workers=workers,
            gpu=gpu,
            force=force,
            console=console,
            cluster=cluster,
            allow_unlimited=allow_unlimited,
        )
        batch = {r.student for r in outcome.graded + outcome.cached}
        stored = [(r, at) for r, at in book.latest(exercise, profile) if r.student in batch]
    if deadlines is not None:
        stored = deadlines.apply(stored)
    feedback = gradebook_path.parent / "feedback"  # beside the gradebook the pages come from
    pages = write_feedback(project.autograder, stored, feedback).pages
    if as_json:
        for line in outcome.json_lines():
            sys.stdout.write(line + "\n")
    else:
        print_results(outcome.graded, f"{exercise} ({profile})", console)
    if outcome.note:
        console.print(f"[yellow]{escape(outcome.note)}[/]")
    for usage in outcome.gpu_usage:
        console.print(escape(usage.describe()), soft_wrap=True)
    if outcome.cluster is not None:
        print_cluster(outcome.cluster, console)
    if deadlines is not None:
        print_lateness([r for r, _ in stored], deadlines, console)
    if pages:
        console.print(f"feedback pages: {len(pages)} under {feedback}", soft_wrap=True)
    old = [r for r in outcome.cached if r.grader_version != settings.grader_version]
    if old:
        console.print(
            f"[yellow]{len(old)} already graded result(s) were made by an older grader of "
            f"{exercise} (its checks, spec or notebook changed since): "
            f"deepgrade regrade --outdated --exercise {exercise} --profile {profile}[/]"
        )
    failed = [r for r in outcome.graded if r.verdict is Verdict.GRADER_ERROR]
    return EXIT_GRADER_FAILED if failed else EXIT_OK


def print_cluster(batch: ClusterBatch, console: Console) -> None:
    """Which node graded what and how long each waited; the nodes that refused, and why."""
    from rich.table import Table

    table = Table(title=f"cluster: {len(batch.nodes)} node(s), {batch.retries} retried task(s)")
    for column in ("node", "graded", "median wait s", "median run s"):
        table.add_column(column, justify="left" if column == "node" else "right")
    for node in batch.nodes:
        table.add_row(
            escape(node.host), str(node.graded), f"{node.median_wait_s:g}", f"{node.median_run_s:g}"
        )
    console.print(table)
    for host, reason in sorted(batch.refused.items()):
        console.print(f"[yellow]refused by {escape(host)}: {escape(reason)}[/]", soft_wrap=True)


@dataclass(frozen=True)
class Outdated:
    """Results an older grader made: those whose submission is still there, unchanged, and
    those that cannot be re-graded (file gone or changed), each with why."""

    again: list[Submission]
    stuck: list[str]


def _still_there(result: SubmissionResult) -> tuple[Submission | None, str]:
    """The stored result's submission if its file is still there unchanged, else why not."""
    path = Path(result.source_path)
    submission = Submission(result.student, path)
    if not path.is_file():
        return None, f"{result.student}: {path} is gone; its old result stays"
    if submission.content_hash != result.content_hash:
        return None, f"{result.student}: {path} changed since; grade the folder again"
    return submission, ""


def regrade_borderline(
    project: Project,
    *,
    exercise: str,
    profile: str,
    gradebook_path: Path | None,
    unsafe: bool,
    workdir: Path | None = None,
    allow_unlimited: bool = False,
) -> int:
    """Run every latest result of `exercise` in its profile's borderline band again with the
    profile's other seeds; the median run decides and every run is stored with it."""
    from deepgrade.borderline import in_band, rerun
    from deepgrade.grade import grade_submission
    from deepgrade.runner import require_sandbox

    console = Console()
    runs = workdir or project.root / ".deepgrade" / "runs"
    settings = batch_settings(
        project, exercise, profile, runs, unsafe, allow_unlimited=allow_unlimited
    )
    require_sandbox(unsafe)  # (batch_settings checked the host's limits)
    decided: list[SubmissionResult] = []
    stuck: list[str] = []
    with Gradebook(gradebook_path or default_gradebook(project)) as book:
        band = [r for r, _ in book.latest(exercise, profile) if in_band(r, settings)]
        console.print(f"{len(band)} result(s) of {exercise} ({profile}) in the borderline band")
        for result in band:
            submission, why = _still_there(result)
            if submission is None:
                stuck.append(why)
                continue
            console.print(f"{result.student}: {settings.profile.spec.borderline_runs} more run(s)")
            final = rerun(submission, settings, result, grade_submission)
            book.record(final)
            decided.append(final)
    for result in decided:
        runs_said = ", ".join(
            f"seed {r.seed}: {r.points:g}{' (decides)' if r.decided else ''}" for r in result.reruns
        )
        console.print(f"{result.student}: {result.points:g}/{result.max_points:g} [{runs_said}]")
    for line in stuck:
        console.print(f"[yellow]not re-graded: {escape(line)}[/]", soft_wrap=True)
    return EXIT_OK


def find_outdated(book: Gradebook, exercise: str, profile: str, current_version: str) -> Outdated:
    again, stuck = [], []
    for result, _ in book.latest(exercise, profile):
        if result.grader_version == current_version:
            continue
        submission, why = _still_there(result)
        if submission is None:
            stuck.append(why)
        else:
            again.append(submission)
    return Outdated(again, stuck)


def regrade_outdated(
    project: Project,
    *,
    exercise: str,
    profile: str,
    workers: int,
    gradebook_path: Path | None,
    unsafe: bool,
    workdir: Path | None = None,
    allow_unlimited: bool = False,
) -> int:
    """Re-grade every latest result of `exercise` that an older grader made, and only those."""
    console = Console()
    runs = workdir or project.root / ".deepgrade" / "runs"
    settings = batch_settings(
        project, exercise, profile, runs, unsafe, allow_unlimited=allow_unlimited
    )
    with Gradebook(gradebook_path or default_gradebook(project)) as book:
        outdated = find_outdated(book, exercise, profile, settings.grader_version)
        console.print(
            f"{len(outdated.again)} result(s) of {exercise} ({profile}) made by an older grader"
        )
        outcome = run_with_progress(
            outdated.again, settings, book, workers=workers, force=True, console=console
        )
    if outcome.graded:
        print_results(outcome.graded, f"{exercise} ({profile}), re-graded", console)
    for line in outdated.stuck:
        console.print(f"[yellow]not re-graded: {escape(line)}[/]", soft_wrap=True)
    failed = [r for r in outcome.graded if r.verdict is Verdict.GRADER_ERROR]
    return EXIT_GRADER_FAILED if failed else EXIT_OK


def check_solutions(
    project: Project,
    *,
    exercises: Sequence[str] | None,
    profile: str,
    workers: int,
    unsafe: bool,
    gradebook_path: Path | None = None,
    allow_unlimited: bool = False,
    look_alike: bool = False,
    gpus: GpuRequest | None = None,
    cell_timeout_s: int | None = None,
) -> int:
    """Grade every reference solution through the same grader; all must score full marks,
    on `gpus` when given (as `grade --gpus`: a full profile's solutions on a GPU runner).
    `cell_timeout_s` overrides the profile's cell limit (a host known to be busy).
    `look_alike`: a real-data profile runs on the synthetic look-alike at real sizes, kept
    apart (its own folder and gradebook) and named so in the title."""
    console = Console()
    short = []
    for name in exercises or project.exercise_names():
        work = project.root / ".deepgrade" / "solutions" / name
        if look_alike:
            work = work / "look-alike"
        settings = batch_settings(
            project,
            name,
            profile,
            work / "runs",
            unsafe,
            cell_timeout_s,
            allow_unlimited=allow_unlimited,
            gpus=bool(gpus and gpus.ids),
            look_alike=look_alike,
        )
        gpu = resolve_gpus(gpus, workers, settings.profile.spec) if gpus and gpus.ids else None
        solution = Submission(
            "reference-solution", project.solutions / name / settings.spec.notebook
        )
        with Gradebook(gradebook_path or work / "gradebook.db") as book:
            outcome = run_with_progress(
                [solution], settings, book, workers=workers, gpu=gpu, force=True, console=console
            )
        swapped = look_alike and settings.spec.profile(profile).data == "real"
        data = ", on the synthetic look-alike at real sizes" if swapped else ""
        print_results(outcome.graded, f"{name} reference solution ({profile}{data})", console)
        if outcome.note:
            console.print(f"[yellow]{escape(outcome.note)}[/]")
        for usage in outcome.gpu_usage:
            console.print(escape(usage.describe()), soft_wrap=True)
        result = outcome.graded[0]
        if result.verdict is not Verdict.GRADED or result.points < result.max_points:
            short.append(f"{name}: {result.points:g}/{result.max_points:g} {result.verdict}")
    for line in short:
        console.print(f"[bold red]not full marks: {line}[/]")
    return EXIT_GRADER_FAILED if short else EXIT_OK
