"""The batch commands shared by `grade`, `check-solutions` and `demo`: set up, grade, show.

Setting up a batch resolves everything once (the spec, the profile's data files in the cache,
the grader's copy of the released notebook), checks the sandbox is usable, then hands the
submissions to the runner with a progress bar and prints the class table.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from deepgrade import datasets
from deepgrade.exercise import ExerciseSpec, load_exercise
from deepgrade.grade import GradeSettings
from deepgrade.gradebook import Gradebook
from deepgrade.project import Project, cache_dir
from deepgrade.report import print_results
from deepgrade.results import SubmissionResult, Verdict
from deepgrade.runner import BatchEvent, grade_batch
from deepgrade.submissions import Submission, discover, display_path

EXIT_OK, EXIT_GRADER_FAILED = 0, 1


def default_gradebook(project: Project) -> Path:
    return project.root / ".deepgrade" / "gradebook.db"


def data_files(spec: ExerciseSpec, profile: str) -> tuple[Path, ...]:
    """The profile's data and model files, mounted read-only at /data in both stages.

    Synthetic look-alikes (at the profile's sizes) are made on first use, real files must have
    been imported; the models an exercise reads are resolved the same way.
    """
    settings = spec.profile(profile)
    files: list[Path] = []
    for name in spec.datasets:
        sizes = settings.data_sizes.get(name)
        if sizes:
            directory = datasets.ensure(name, settings.data, cache_dir(), sizes=dict(sizes))
        else:
            directory = datasets.ensure(name, settings.data, cache_dir())
        files.extend(directory / filename for filename in datasets.FILES[name])
    if spec.models:
        from deepgrade import models

        for name in spec.models:
            files.append(models.ensure(name, profile, cache_dir()))
    return tuple(files)


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
) -> GradeSettings:
    """The batch's settings, after the host's limits are checked (before any data is made):
    `unlimited` is set when --allow-unlimited lets a host without them grade (results marked).
    """
    from deepgrade import limits

    host = limits.require(unsafe=unsafe, allow_unlimited=allow_unlimited, gpu=gpus)
    spec = load_exercise(project.autograder, exercise)
    spec.profile(profile)  # a clear error for an unknown profile, before any work
    return GradeSettings(
        spec=spec,
        profile=profile,
        release_notebook=project.release / spec.name / spec.notebook,
        data_files=data_files(spec, profile),
        workdir=workdir,
        unsafe=unsafe,
        cell_timeout_s=cell_timeout_s,
        unlimited=allow_unlimited and bool(host.refusal(sandboxed=False, gpu=gpus)),
    )


def run_with_progress(
    submissions: Sequence[Submission],
    settings: GradeSettings,
    gradebook: Gradebook,
    *,
    workers: int,
    gpus: Sequence[str] = (),
    force: bool = False,
    console: Console,
) -> list[SubmissionResult]:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[last]}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"grading {settings.spec.name}", total=len(submissions), last="")

        def on_event(event: BatchEvent) -> None:
            last = (
                f"{event.submission.student}: already graded"
                if event.result is None
                else f"{event.submission.student}: {event.result.points:g}/"
                f"{event.result.max_points:g} {event.result.verdict}"
            )
            progress.update(task, completed=event.done, last=last)

        return grade_batch(
            submissions,
            settings,
            gradebook,
            workers=workers,
            gpus=gpus,
            force=force,
            on_event=on_event,
        )


def grade_folder(
    project: Project,
    folder: Path,
    *,
    exercise: str,
    profile: str,
    workers: int,
    gpus: Sequence[str],
    gradebook_path: Path | None,
    unsafe: bool,
    force: bool,
    as_json: bool,
    cell_timeout_s: int | None = None,
    workdir: Path | None = None,
    allow_unlimited: bool = False,
) -> int:
    console = Console(stderr=as_json)
    runs = workdir or project.root / ".deepgrade" / "runs"
    settings = batch_settings(
        project, exercise, profile, runs, unsafe, cell_timeout_s,
        allow_unlimited=allow_unlimited, gpus=bool(gpus),
    )  # fmt: skip
    found = discover(folder, settings.spec.notebook)
    for problem in found.problems:  # paths are students' names: never read as markup
        console.print(f"[yellow]skipped: {escape(problem)}[/]")
    if not found.submissions:
        console.print(f"[yellow]no submissions found in {escape(display_path(folder))}[/]")
    with Gradebook(gradebook_path or default_gradebook(project)) as book:
        results = run_with_progress(
            found.submissions,
            settings,
            book,
            workers=workers,
            gpus=gpus,
            force=force,
            console=console,
        )
    if as_json:
        for result in results:
            sys.stdout.write(json.dumps(result.to_json(), sort_keys=True) + "\n")
    else:
        print_results(results, f"{exercise} ({profile})", console)
    failed = [r for r in results if r.verdict is Verdict.GRADER_ERROR]
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
) -> int:
    """Grade every reference solution through the same grader; all must score full marks."""
    console = Console()
    short = []
    for name in exercises or project.exercise_names():
        work = project.root / ".deepgrade" / "solutions" / name
        settings = batch_settings(
            project, name, profile, work / "runs", unsafe, allow_unlimited=allow_unlimited
        )
        solution = Submission(
            "reference-solution", project.solutions / name / settings.spec.notebook
        )
        with Gradebook(gradebook_path or work / "gradebook.db") as book:
            results = run_with_progress(
                [solution], settings, book, workers=workers, force=True, console=console
            )
        print_results(results, f"{name} reference solution ({profile})", console)
        result = results[0]
        if result.verdict is not Verdict.GRADED or result.points < result.max_points:
            short.append(f"{name}: {result.points:g}/{result.max_points:g} {result.verdict}")
    for line in short:
        console.print(f"[bold red]not full marks: {line}[/]")
    return EXIT_GRADER_FAILED if short else EXIT_OK
