"""`deepgrade demo`: the whole product on the embedded default, in a few minutes on a CPU.

What this host enforces (as `deepgrade doctor` says), synthetic data, release, the reference
solution and the recorded flawed samples (hostile ones among them) graded in the sandbox with a
local pool, the class table, the authoring kit (`new` in a scratch course, the mutants `mutate`
would grade), the gradebook and the exports: CSV, Gradescope results and an autograder bundle,
Canvas (student-visible text checked against the exercises' hidden values on the way out), and
a small batch graded on a local Ray cluster of two nodes (where deepgrade[ray] is installed).
Each flawed sample's expected lost checks are compared with what the grader gave, so the demo
is also a live self-test: it exits 1 when the grader disagrees with the expectations.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path

from rich.console import Console

from deepgrade import gpudoctor, nvidia
from deepgrade.batch import batch_settings, run_with_progress
from deepgrade.borderline import within_margin
from deepgrade.canvas import read_roster
from deepgrade.classreport import summarise, write_report
from deepgrade.exercise import DEFAULT_PROFILE, ProfileSpec, load_exercise
from deepgrade.export import (
    export_canvas,
    export_csv,
    export_gradescope,
    project_visible_checks,
)
from deepgrade.feedback import write_feedback
from deepgrade.gradebook import Gradebook
from deepgrade.gradescope import build_bundle
from deepgrade.hostcheck import current, describe
from deepgrade.profiles import keras_backend, resolve_profile
from deepgrade.project import Project
from deepgrade.redact import project_secrets
from deepgrade.release import release_exercise
from deepgrade.report import print_results
from deepgrade.results import SubmissionResult
from deepgrade.samples import Sample, apply_edits, load_samples
from deepgrade.submissions import Submission

DEMO_PROFILE = DEFAULT_PROFILE  # synthetic data at small sizes: minutes on a CPU


def expectation_problems(
    result: SubmissionResult, sample: Sample | None, spec: ProfileSpec | None = None
) -> list[str]:
    """How a graded sample differs from what samples.toml says it must get.

    A borderline sample whose one run landed outside the band on this host (another CPU family
    than the one it was calibrated on) is expected to run once; its `borderline_checks` then
    follow that value, either way, and every other check must still fail or pass as listed."""
    failed = sorted(c.check_id for c in result.checks if not c.passed)
    expected_failed = sorted(sample.expect_failed) if sample else []
    expected_verdict = sample.expect_verdict if sample else "graded"
    expected_runs = sample.expect_runs if sample else 1
    landed_outside = (
        sample is not None
        and spec is not None
        and expected_runs > 1
        and not result.reruns
        and not within_margin(result.measurements, spec)
    )
    if sample is not None and landed_outside:
        expected_runs = 1
        riding = set(sample.borderline_checks)
        failed = [c for c in failed if c not in riding]
        expected_failed = [c for c in expected_failed if c not in riding]
    problems = []
    if str(result.verdict) != expected_verdict:
        problems.append(f"verdict {result.verdict}, expected {expected_verdict}")
    if failed != expected_failed:
        problems.append(f"failed {failed}, expected {expected_failed}")
    runs = len(result.reruns) or 1
    if runs != expected_runs:
        problems.append(f"{runs} run(s), expected {expected_runs}")
    return problems


def show_cluster(scratch: Path, console: Console, unsafe: bool, allow_unlimited: bool) -> list[str]:
    """Six submissions of the tiny course (one wrong) graded through `--executor ray` on a
    Ray cluster started here (a head for the driver, two nodes of one CPU): the same sandbox on
    every node, the per-node summary. Returns what went other than expected."""
    try:
        from ray.cluster_utils import Cluster
    except ImportError:
        console.print("skipped: Ray is not installed (pip install 'deepgrade[ray]')")
        return []
    from deepgrade import tinycourse
    from deepgrade.batch import print_cluster

    course = tinycourse.write_course(scratch / "course")
    students = [f"student{index}" for index in range(6)]
    paths = tinycourse.write_submissions(scratch / "submissions", students, wrong=["student0"])
    settings = batch_settings(
        Project(course), tinycourse.EXERCISE, "smoke", scratch / "runs", unsafe,
        allow_unlimited=allow_unlimited, on_this_host=False,
    )  # fmt: skip
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        with Gradebook(scratch / "gradebook.db") as book:
            outcome = run_with_progress(
                [Submission(p.stem, p) for p in paths], settings, book, workers=1,
                force=True, console=console, cluster=cluster.address,
                allow_unlimited=allow_unlimited,
            )  # fmt: skip
    finally:
        cluster.shutdown()  # type: ignore[no-untyped-call]
    print_results(outcome.graded, f"{tinycourse.EXERCISE}: graded on the cluster", console)
    if outcome.cluster is not None:
        print_cluster(outcome.cluster, console)
    points = {r.student: r.points for r in outcome.graded}
    expected = {student: 0.0 if student == "student0" else 1.0 for student in students}
    return [] if points == expected else [f"cluster: {points} where {expected} was expected"]


def show_authoring_kit(project: Project, scratch: Path, console: Console) -> None:
    """`deepgrade new` in a scratch course (the repository is not touched) and the mutants
    `deepgrade mutate` would grade for one exercise: seconds, no grading."""
    from deepgrade.mutate import list_mutants
    from deepgrade.scaffold import new_exercise

    made = new_exercise(Project(scratch), "shirts_dense", "fashion_mnist")
    for path in (*made.written, *made.released):
        console.print(f"deepgrade new wrote {path.relative_to(scratch)}", highlight=False)
    mutants = list_mutants(project, "catdog_split", DEMO_PROFILE)
    kinds = Counter(mutant.operator for mutant in mutants)
    console.print(
        f"deepgrade mutate catdog_split would grade {len(mutants)} one-change mutants of the "
        f"reference solution ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))}); "
        "each exercise's README records which checks kill them",
        highlight=False,
    )


def demo_roster(graded: list[tuple[SubmissionResult, str]], path: Path) -> Path:
    """A stand-in for the gradebook CSV Canvas exports: the demo's students, by login."""
    students = sorted({result.student for result, _ in graded})
    lines = ["Student,ID,SIS User ID,SIS Login ID,Section", "    Points Possible,,,,"]
    lines += [
        f'"Demo, {name}",{100 + i},2026{i:04d},{name},deepgrade demo'
        for i, name in enumerate(students)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def show_similarity(
    project: Project,
    exercise: str,
    graded: list[tuple[SubmissionResult, str]],
    workdir: Path,
    console: Console,
) -> None:
    """`deepgrade similarity` on one exercise: the demo's samples are edits of the reference
    solution, so the report is expected to pair them with it."""
    from deepgrade.errors import DeepgradeError
    from deepgrade.similarity import class_similarity, write_report

    spec = load_exercise(project.autograder, exercise)
    try:
        report = class_similarity(
            graded,
            exercise=exercise,
            release_notebook=project.release / exercise / spec.notebook,
            runs=workdir / "runs",
        )
    except DeepgradeError as exc:
        console.print(f"similarity report: skipped ({exc})", soft_wrap=True)
        return
    page = write_report(report, workdir / "reports")[0]
    console.print(
        f"similarity report: {page} ({len(report.flagged)} of {report.pairs} pairs share most "
        f"of their answer code, {len(report.same_weights)} group(s) saved identical weights: "
        "the demo's samples are edits of the reference solution)",
        soft_wrap=True,
    )


def publish(
    project: Project,
    exercises: list[str],
    graded: list[tuple[SubmissionResult, str]],
    workdir: Path,
    console: Console,
) -> None:
    """What the instructor hands out after grading: the exports, a feedback page per
    submission and a class report per exercise, each path printed."""
    secrets = project_secrets(project.autograder, exercises)
    export_csv(graded, workdir / "grades.csv", secrets=secrets)
    visible = project_visible_checks(project.autograder, exercises)
    export_gradescope(graded, workdir / "gradescope", secrets=secrets, visible_checks=visible)
    console.print(f"gradebook: {workdir / 'gradebook.db'}", soft_wrap=True)
    console.print(f"CSV:       {workdir / 'grades.csv'}", soft_wrap=True)
    console.print(f"Gradescope results.json files under {workdir / 'gradescope'}", highlight=False)
    first = next(e for e in exercises if any(r.exercise == e for r, _ in graded))
    canvas = export_canvas(
        [(result, when) for result, when in graded if result.exercise == first],
        workdir / "canvas.csv",
        secrets=secrets,
        roster=read_roster(demo_roster(graded, workdir / "canvas_export.csv")),
        assignment=load_exercise(project.autograder, first).title,
    )
    console.print(
        f"Canvas:    {workdir / 'canvas.csv'} ({first}: {canvas.notes[0]}; the roster is a "
        "stand-in for the gradebook Canvas exports)",
        soft_wrap=True,
    )
    bundle = build_bundle(project, first, DEMO_PROFILE, workdir / f"autograder-{first}.zip")
    console.print(
        f"Gradescope autograder: {bundle.path} ({bundle.files} files, "
        f"{bundle.size / 1e6:.1f} MB; `deepgrade gradescope run --local` runs it as Gradescope "
        f"would; {bundle.settings()})",
        soft_wrap=True,
    )
    pages = write_feedback(project.autograder, graded, workdir / "feedback").pages
    console.print(
        f"feedback:  {len(pages)} HTML pages under {workdir / 'feedback'}, e.g.", soft_wrap=True
    )
    for exercise in exercises[:2]:
        if (exercise, "reference") in pages:
            console.print(f"           {pages[(exercise, 'reference')]}", soft_wrap=True)
    for exercise in exercises:
        spec = load_exercise(project.autograder, exercise)
        summary = summarise(
            graded,
            exercise=exercise,
            title=spec.title,
            profile=DEMO_PROFILE,
            thresholds=spec.profiles[DEMO_PROFILE].for_backend(keras_backend()).thresholds,
            borderline=spec.profiles[DEMO_PROFILE].borderline,
        )
        page = write_report(summary, workdir / "reports")[0]
        console.print(f"class report: {page}", soft_wrap=True)
    show_similarity(project, first, graded, workdir, console)
    versions = sorted({(r.exercise, r.grader_version) for r, _ in graded})
    console.print(
        "graders: "
        + ", ".join(f"{exercise} {version[:8]}" for exercise, version in versions)
        + " (a result keeps its grader's version: after a check changes, "
        "`deepgrade regrade --outdated` re-grades exactly the results an older one made)",
        highlight=False,
    )


def run_demo(
    project: Project,
    *,
    workdir: Path | None,
    workers: int,
    unsafe: bool,
    allow_unlimited: bool = False,
) -> int:
    console = Console()
    started = time.perf_counter()
    workdir = workdir or project.root / ".deepgrade" / "demo"
    if workdir.exists():
        shutil.rmtree(workdir)
    exercises = project.exercise_names()
    console.rule("0. what this host enforces (deepgrade doctor)")
    lines = describe(current())
    driver = nvidia.read_host()  # each GPU probed in a sandbox, as `doctor` does
    lines[-1:-1] = gpudoctor.describe(driver, gpudoctor.gpu_reports(driver))
    backend = keras_backend()
    lines.insert(-1, f"keras:       {backend} backend (KERAS_BACKEND), in every kernel and check")
    for line in lines:
        console.print(line, markup=False, highlight=False)
    console.rule("1. synthetic data and models (real file formats, smoke sizes)")
    for exercise in exercises:
        files = resolve_profile(load_exercise(project.autograder, exercise), DEMO_PROFILE).files
        console.print(f"{exercise}: {', '.join(sorted({str(f.parent) for f in files}))}")
    console.rule("2. release student notebooks and reference solutions")
    for exercise in exercises:
        for path in release_exercise(project, exercise):
            console.print(f"wrote {path.relative_to(project.root)}")
    console.rule(
        f"3. grade the reference solution and flawed samples (sandboxed, {DEMO_PROFILE} profile)"
    )
    surprises: list[str] = []
    with Gradebook(workdir / "gradebook.db") as book:
        for exercise in exercises:
            settings = batch_settings(
                project, exercise, DEMO_PROFILE, workdir / "runs", unsafe,
                allow_unlimited=allow_unlimited,
            )  # fmt: skip
            folder = workdir / "submissions" / exercise
            solution = project.solutions / exercise / settings.spec.notebook
            samples = {s.name: s for s in load_samples(settings.spec.directory) if s.demo}
            submissions = [Submission("reference", solution)]
            for sample in samples.values():
                path = apply_edits(solution, sample, folder / f"{sample.name}.ipynb")
                submissions.append(Submission(sample.name, path))
            results = run_with_progress(
                submissions, settings, book, workers=workers, force=True, console=console
            ).graded
            print_results(results, f"{exercise}: {settings.spec.title}", console)
            for result in results:
                for problem in expectation_problems(
                    result, samples.get(result.student), settings.profile.spec
                ):
                    surprises.append(f"{exercise}/{result.student}: {problem}")
        graded = book.latest(profile=DEMO_PROFILE)
    console.rule("4. the authoring kit: a new exercise and the strength of the checks")
    show_authoring_kit(project, workdir / "authoring", console)
    console.rule("5. gradebook, exports, feedback pages and class reports")
    publish(project, exercises, graded, workdir, console)
    console.rule("6. a cluster: one Ray task per submission, on two local nodes")
    surprises += show_cluster(workdir / "cluster", console, unsafe, allow_unlimited)
    for line in surprises:
        console.print(f"[bold red]unexpected: {line}[/]")
    verdict = "[green]all as expected[/]"
    if surprises:
        verdict = "[red]the grader disagreed with expectations[/]"
    console.print(f"demo finished in {time.perf_counter() - started:.0f} s: {verdict}")
    return 1 if surprises else 0
