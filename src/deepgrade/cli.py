"""The `deepgrade` command: a thin layer of argparse over the library's modules.

Exit codes scripts can trust: 0 when the command did its job (a student failing is still a
job done), 1 when the grader itself failed (a grader error on some submission, stale release
files, a reference solution short of full marks), 2 for bad input or usage, each with a one-line
message naming the file and the problem.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from deepgrade import __version__
from deepgrade.errors import DeepgradeError
from deepgrade.exercise import DEFAULT_PROFILE, PROFILES
from deepgrade.project import Project

if TYPE_CHECKING:
    from deepgrade.deadlines import Deadlines
    from deepgrade.export import Graded

EXIT_OK, EXIT_GRADER_FAILED, EXIT_BAD_INPUT = 0, 1, 2
UNLIMITED_HELP = "grade even where memory/process limits cannot be enforced (results marked)"
CELL_TIMEOUT_HELP = "seconds per cell (default: the spec's)"
EXPORT_DEFAULT_OUT = {
    "csv": "grades.csv",
    "gradescope": "gradescope",
    "canvas": "canvas.csv",
    "nbgrader": "gradebook.db",  # nbgrader's own, in its course folder
}
LOOK_ALIKE_HELP = (
    "run a real-data profile (full) on the synthetic look-alike at the real sizes: its time, "
    "not the course's accuracy"
)


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _project(args: argparse.Namespace) -> Project:
    return Project(Path(args.root).resolve()) if args.root else Project.find()


def cmd_datasets(args: argparse.Namespace) -> int:
    from deepgrade import datasets
    from deepgrade.project import cache_dir

    if args.datasets_command == "synth":
        sizes = {k: v for k, v in (("n_train", args.n_train), ("n_test", args.n_test)) if v}
        out = Path(args.out) if args.out else cache_dir() / args.name / "synth-custom"
        path = datasets.synth(args.name, out, seed=args.seed, **sizes)
        print(f"wrote synthetic {args.name} to {path}")
    else:
        path = datasets.import_dataset(args.name, Path(args.path), cache_dir())
        print(f"verified and imported {args.name} into {path}")
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from deepgrade import models
    from deepgrade.project import cache_dir

    if args.models_command == "import":
        path = models.import_model(args.name, Path(args.path), cache_dir())
        print(f"verified and imported {args.name} into {path}")
    else:
        path = models.train(
            args.name, args.profile, cache_dir(), epochs=args.epochs, seed=args.seed, verbose=2
        )
        print(f"trained {args.name} ({args.profile}) into {path}")
    return EXIT_OK


def cmd_release(args: argparse.Namespace) -> int:
    from deepgrade.release import check_release, release_exercise

    project = _project(args)
    if args.check:
        stale = check_release(project)
        for path in stale:
            print(f"out of date: {path}", file=sys.stderr)
        if stale:
            print("run `deepgrade release` and commit the result", file=sys.stderr)
            return EXIT_GRADER_FAILED
        print("release/ and solutions/ are up to date")
        return EXIT_OK
    names = args.exercises or project.exercise_names()
    for name in names:
        for written in release_exercise(project, name):
            print(f"wrote {written}")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from deepgrade.validate import validate_submission

    problems = validate_submission(_project(args), Path(args.notebook), args.exercise)
    for problem in problems:
        print(f"{args.notebook}: {problem}")
    if not problems:
        print(f"{args.notebook}: ready to submit (locked cells intact, every answer filled in)")
    return EXIT_GRADER_FAILED if problems else EXIT_OK


def cmd_grade(args: argparse.Namespace) -> int:
    from deepgrade.batch import grade_folder
    from deepgrade.gpubatch import GpuRequest

    if args.address and args.executor != "ray":
        raise DeepgradeError("--address names a Ray cluster: add --executor ray")
    project = _project(args)
    return grade_folder(
        project,
        Path(args.submissions),
        exercise=args.exercise,
        profile=args.profile,
        workers=args.workers,
        gpus=GpuRequest.parse(args.gpus, args.per_gpu),
        gradebook_path=Path(args.gradebook) if args.gradebook else None,
        unsafe=args.unsafe,
        force=args.force,
        as_json=args.json,
        cell_timeout_s=args.cell_timeout,
        workdir=Path(args.workdir) if args.workdir else None,
        allow_unlimited=args.allow_unlimited,
        cluster=(args.address or "auto") if args.executor == "ray" else None,
        deadlines=_deadlines(args, project),
        times_csv=Path(args.times) if args.times else None,
        assignment=args.assignment,
    )


def cmd_regrade(args: argparse.Namespace) -> int:
    from deepgrade.batch import regrade_borderline, regrade_outdated

    if args.outdated == args.borderline:
        raise DeepgradeError("say which results to re-grade: --outdated or --borderline")
    common = {
        "exercise": args.exercise,
        "profile": args.profile,
        "gradebook_path": Path(args.gradebook) if args.gradebook else None,
        "unsafe": args.unsafe,
        "workdir": Path(args.workdir) if args.workdir else None,
        "allow_unlimited": args.allow_unlimited,
    }
    if args.borderline:
        return regrade_borderline(_project(args), **common)
    return regrade_outdated(_project(args), workers=args.workers, **common)


def _deadlines(args: argparse.Namespace, project: Project) -> Deadlines | None:
    """--deadlines, else the course's deadlines.toml where it has one, parsed once."""
    from deepgrade.deadlines import FILE_NAME, read_deadlines

    path = Path(args.deadlines) if args.deadlines else project.root / FILE_NAME
    if not args.deadlines and not path.is_file():
        return None
    return read_deadlines(path, project.exercise_names(include_drafts=True))


def _stored_results(args: argparse.Namespace, project: Project) -> list[Graded]:
    """The gradebook's latest results (for --exercise/--profile when given), with their time,
    each with its lateness when the course has deadlines."""
    from deepgrade.gradebook import Gradebook, default_gradebook

    deadlines = _deadlines(args, project)
    path = Path(args.gradebook) if args.gradebook else default_gradebook(project)
    if not path.is_file():
        raise DeepgradeError(f"{path}: no gradebook here yet (grade something first)")
    with Gradebook(path) as book:
        results = book.latest(args.exercise, args.profile)
    return deadlines.apply(results) if deadlines is not None else results


def cmd_export(args: argparse.Namespace) -> int:
    from deepgrade.canvas import read_roster
    from deepgrade.export import EXPORTERS, Exporter, project_visible_checks
    from deepgrade.redact import project_secrets

    if args.format == "canvas" and not args.roster:
        raise DeepgradeError("--format canvas needs --roster: the gradebook CSV Canvas exported")
    project = _project(args)
    roster = read_roster(Path(args.roster)) if args.roster else None
    results = _stored_results(args, project)
    where = args.db or args.out or EXPORT_DEFAULT_OUT[args.format]
    exercises = {r.exercise for r, _ in results}
    exporter: Exporter
    if args.format == "nbgrader":  # imports nbgrader: only when asked
        from deepgrade.nbgrader_export import export_nbgrader as exporter
    else:
        exporter = EXPORTERS[args.format]
    exported = exporter(
        results,
        Path(where),
        secrets=project_secrets(project.autograder, exercises),
        visible_checks=project_visible_checks(project.autograder, exercises),
        roster=roster,
        assignment=args.assignment,
    )
    shown = len(results) - len(exported.left_out)
    print(f"exported {shown} results to {len(exported.files)} file(s) under {where}")
    print("\n".join(exported.notes))
    if exported.left_out:
        print(f"left out {len(exported.left_out)} result(s), which are not grades there:")
        print("\n".join(f"  {line}" for line in exported.left_out))
    return EXIT_OK


def cmd_gradescope(args: argparse.Namespace) -> int:
    from deepgrade import gradescope

    if args.gradescope_command == "bundle":
        out = Path(args.out or f"autograder-{args.exercise}-{args.profile}.zip")
        bundle = gradescope.build_bundle(_project(args), args.exercise, args.profile, out)
        print(f"wrote {bundle.path}: {bundle.files} files, {bundle.size / 1e6:.1f} MB")
        print(bundle.settings())
        print("in Gradescope: Configure Autograder > Zip file upload (README: Gradescope)")
        return EXIT_OK
    if args.gradescope_command == "inside":
        return gradescope.grade_inside(Path(args.root))
    if not args.local:
        raise DeepgradeError("only --local runs are supported: gradescope run --local ...")
    run = gradescope.run_local(
        Path(args.bundle), Path(args.submission), Path(args.keep) if args.keep else None
    )
    print(json.dumps(run.results, indent=2))
    print(f"ran in {run.seconds:.1f} s (exit {run.returncode})", file=sys.stderr)
    return EXIT_OK if run.returncode == 0 else EXIT_GRADER_FAILED


def cmd_similarity(args: argparse.Namespace) -> int:
    from deepgrade.exercise import load_exercise
    from deepgrade.similarity import class_similarity, write_report

    project = _project(args)
    spec = load_exercise(project.autograder, args.exercise)
    report = class_similarity(
        _stored_results(args, project),
        exercise=spec.name,
        release_notebook=project.release / spec.name / spec.notebook,
        runs=Path(args.workdir) if args.workdir else project.root / ".deepgrade" / "runs",
        threshold=args.threshold,
    )
    page = write_report(report, Path(args.out))[0]
    print(f"{report.compared} submissions, {report.pairs} pairs compared: {page}")
    for match in report.flagged:
        print(
            f"  {match.first} / {match.second}: {match.first_share:.0%} / "
            f"{match.second_share:.0%} of their answer code shared"
        )
    for group in report.same_weights:
        print(f"  the same {group.name}: {', '.join(group.students)}")
    for line in report.left_out:
        print(f"  not compared: {line}")
    return EXIT_OK


def cmd_feedback(args: argparse.Namespace) -> int:
    from deepgrade.feedback import write_feedback

    project = _project(args)
    written = write_feedback(project.autograder, _stored_results(args, project), Path(args.out))
    for (exercise, student), page in sorted(written.pages.items()):
        print(f"{exercise}/{student}: {page}")
    print(f"wrote {len(written.pages)} feedback page(s) under {args.out}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from deepgrade.classreport import summarise, write_report
    from deepgrade.exercise import load_exercise
    from deepgrade.profiles import keras_backend

    project = _project(args)
    spec = load_exercise(project.autograder, args.exercise)
    results = _stored_results(args, project)
    if not results:
        raise DeepgradeError(
            f"nothing graded for {args.exercise} ({args.profile}) in the gradebook"
        )
    summary = summarise(
        results,
        exercise=args.exercise,
        title=spec.title,
        profile=args.profile,
        thresholds=spec.profiles[args.profile].for_backend(keras_backend()).thresholds,
        borderline=spec.profiles[args.profile].borderline,
    )
    for written in write_report(summary, Path(args.out)):
        print(f"wrote {written}")
    print(
        f"{summary.submissions} submission(s), mean {summary.mean_score:.1f}/"
        f"{summary.max_points:g}; {len(summary.needs_a_person)} need a person"
    )
    return EXIT_OK


def cmd_check_solutions(args: argparse.Namespace) -> int:
    from deepgrade.batch import check_solutions
    from deepgrade.gpubatch import GpuRequest

    return check_solutions(
        _project(args),
        exercises=args.exercise,
        profile=args.profile,
        workers=args.workers,
        unsafe=args.unsafe,
        allow_unlimited=args.allow_unlimited,
        look_alike=args.look_alike,
        gpus=GpuRequest.parse(args.gpus),
        cell_timeout_s=args.cell_timeout,
    )


def cmd_mutate(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console

    from deepgrade.mutate import list_mutants, run_mutations
    from deepgrade.mutate_report import markdown, print_report, write_readme

    project = _project(args)
    console = Console(stderr=args.json)
    only = tuple(o for value in args.only or () for o in value.split(",") if o)
    if args.list:
        for mutant in list_mutants(project, args.exercise, args.profile, only, args.limit):
            print(f"{mutant.name}  {mutant.description}")
        return EXIT_OK
    report = run_mutations(
        project,
        args.exercise,
        profile=args.profile,
        workers=args.workers,
        only=only,
        limit=args.limit,
        unsafe=args.unsafe,
        allow_unlimited=args.allow_unlimited,
        workdir=Path(args.workdir) if args.workdir else None,
        cell_timeout_s=args.cell_timeout,
        console=console,
    )
    if args.json:
        print(json.dumps(report.to_json(), sort_keys=True))
    else:
        print_report(report, console)
    if args.write:
        command = f"deepgrade mutate {args.exercise} --profile {args.profile}"
        readme = project.autograder / args.exercise / "README.md"
        write_readme(readme, markdown(report, command))
        console.print(f"wrote the mutation table into {readme}")
    return report.exit_code


def cmd_demo(args: argparse.Namespace) -> int:
    from deepgrade.demo import run_demo

    return run_demo(
        _project(args),
        workdir=Path(args.workdir) if args.workdir else None,
        workers=args.workers,
        unsafe=args.unsafe,
        allow_unlimited=args.allow_unlimited,
    )


def cmd_new(args: argparse.Namespace) -> int:
    from deepgrade.scaffold import new_exercise

    made = new_exercise(
        _project(args), args.exercise, args.dataset, like=args.like, title=args.title
    )
    for path in (*made.written, *made.released):
        print(f"wrote {path}")
    print(
        f"{made.name} is a draft: write its reference solution in source/{made.name}/, then "
        "follow docs/authoring.md (release, check-solutions, calibrate)"
    )
    return EXIT_OK


def cmd_calibrate(args: argparse.Namespace) -> int:
    from deepgrade.calibrate import calibrate, render_table, seed_line, write_table

    project = _project(args)
    done = calibrate(
        project,
        args.exercise,
        seeds=args.seeds,
        profile=args.profile,
        margin=args.margin,
        sample=args.sample,
        workers=args.workers,
        unsafe=args.unsafe,
        allow_unlimited=args.allow_unlimited,
        look_alike=args.look_alike,
        on_seed=lambda run: print(seed_line(run), flush=True),
    )
    table = render_table(done)
    print(table)
    if args.write:
        readme = project.autograder / args.exercise / "README.md"
        write_table(readme, table, args.sample)
        print(f"wrote the table into {readme}")
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    import json

    from deepgrade import gpudoctor, hostcheck, nvidia

    host = hostcheck.current()
    driver = nvidia.read_host()
    probe = None if args.no_gpu_probe else gpudoctor.probe_in_sandbox
    gpus = gpudoctor.gpu_reports(driver, probe=probe)
    if args.json:
        print(json.dumps({**host.to_json(), "gpus": [g.to_json() for g in gpus]}, indent=2))
    else:
        lines = hostcheck.describe(host)
        lines[-1:-1] = gpudoctor.describe(driver, gpus)  # before the verdict, the last line
        print("\n".join(lines))
    return EXIT_GRADER_FAILED if host.refusal() else EXIT_OK


def _deadlines_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--deadlines",
        help="due dates, extensions and the late policy (default: the course's deadlines.toml)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepgrade",
        description="Release, run and grade the course's Keras exercises in a sandbox.",
    )
    parser.add_argument("--version", action="version", version=f"deepgrade {__version__}")
    parser.add_argument("--root", help="the course repository (default: found from the cwd)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("datasets", help="make synthetic look-alikes or import real data")
    data_sub = data.add_subparsers(dest="datasets_command", required=True)
    synth = data_sub.add_parser("synth", help="write a learnable synthetic look-alike")
    synth.add_argument("name", help="data set name, e.g. signs")
    synth.add_argument("--out", help="folder to write (default: the cache)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--n-train", type=int, help="training images (default: the real size)")
    synth.add_argument("--n-test", type=int, help="test images (default: the real size)")
    imp = data_sub.add_parser("import", help="verify real files and copy them into the cache")
    imp.add_argument("name")
    imp.add_argument("path", help="the folder (or one file) holding the real files")
    data.set_defaults(func=cmd_datasets)

    mdl = sub.add_parser("models", help="import or train the trained models exercises read")
    mdl_sub = mdl.add_subparsers(dest="models_command", required=True)
    mimp = mdl_sub.add_parser("import", help="convert the author's trained .h5 into the cache")
    mimp.add_argument("name", help="model name, e.g. resnet1")
    mimp.add_argument("path", help="the trained model file (Keras 2 .h5 or .keras)")
    mtrain = mdl_sub.add_parser("train", help="train with the course's recipe into the cache")
    mtrain.add_argument("name", help="model name, e.g. resnet1")
    mtrain.add_argument("--profile", required=True, choices=PROFILES)
    mtrain.add_argument("--epochs", type=int, help="default: the profile's recipe")
    mtrain.add_argument("--seed", type=int, help="default: the profile's recipe")
    mdl.set_defaults(func=cmd_models)

    rel = sub.add_parser("release", help="generate release/ and solutions/ from source/")
    rel.add_argument("exercises", nargs="*", help="exercises (default: all)")
    rel.add_argument("--check", action="store_true", help="only report stale generated files")
    rel.set_defaults(func=cmd_release)

    val = sub.add_parser("validate", help="student self-check before submitting a notebook")
    val.add_argument("notebook")
    val.add_argument("--exercise", help="default: read from the notebook's metadata")
    val.set_defaults(func=cmd_validate)

    grade = sub.add_parser("grade", help="grade a folder of submissions")
    grade.add_argument("submissions", help="folder: <student>.ipynb or <student>/<nb>.ipynb")
    grade.add_argument("--exercise", required=True)
    grade.add_argument("--profile", default=DEFAULT_PROFILE, choices=PROFILES)
    grade.add_argument("--workers", type=int, default=1, help="submissions graded at once")
    grade.add_argument(
        "--gpus", help="GPUs to grade on: indices as nvidia-smi lists them, or UUIDs (0,1)"
    )
    grade.add_argument(
        "--per-gpu",
        type=_positive,
        metavar="K",
        help="runs sharing one GPU, each capped to its share of the memory (default: the "
        "profile's gpu_memory_mb or gpus)",
    )
    grade.add_argument("--gradebook", help="SQLite file (default: .deepgrade/gradebook.db)")
    grade.add_argument("--force", action="store_true", help="re-grade already graded content")
    grade.add_argument("--unsafe", action="store_true", help="no sandbox: trusted code only")
    grade.add_argument(
        "--json", action="store_true", help='JSON lines, already graded ones "cached": true'
    )
    grade.add_argument("--cell-timeout", type=int, help=CELL_TIMEOUT_HELP)
    grade.add_argument("--workdir", help="runs and artifacts (default: .deepgrade/runs)")
    grade.add_argument("--allow-unlimited", action="store_true", help=UNLIMITED_HELP)
    grade.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local: this host's workers; ray: one task per submission on a Ray cluster "
        "(pip install 'deepgrade[ray]')",
    )
    grade.add_argument(
        "--address", help="the Ray cluster: HOST:PORT of its head, or auto (default: auto)"
    )
    grade.add_argument(
        "--times", help="CSV of submission times (student,submitted_at), for the deadlines"
    )
    grade.add_argument(
        "--assignment",
        help="nbgrader's assignment folder name in submitted/<student>/<assignment>/ "
        "(default: the only folder there, or the exercise's name)",
    )
    _deadlines_option(grade)
    grade.set_defaults(func=cmd_grade)

    regrade = sub.add_parser("regrade", help="re-grade stored results: --outdated, --borderline")
    regrade.add_argument(
        "--outdated", action="store_true", help="the results an older grader made (checks changed)"
    )
    regrade.add_argument(
        "--borderline",
        action="store_true",
        help="results within the profile's borderline margin: K more seeds, the median decides",
    )
    regrade.add_argument("--exercise", required=True)
    regrade.add_argument("--profile", default=DEFAULT_PROFILE, choices=PROFILES)
    regrade.add_argument("--workers", type=int, default=1, help="submissions graded at once")
    regrade.add_argument("--gradebook", help="SQLite file (default: .deepgrade/gradebook.db)")
    regrade.add_argument("--unsafe", action="store_true", help="no sandbox: trusted code only")
    regrade.add_argument("--workdir", help="runs and artifacts (default: .deepgrade/runs)")
    regrade.add_argument("--allow-unlimited", action="store_true", help=UNLIMITED_HELP)
    regrade.set_defaults(func=cmd_regrade)

    exp = sub.add_parser("export", help="export the gradebook")
    exp.add_argument("--format", required=True, choices=tuple(EXPORT_DEFAULT_OUT))
    exp.add_argument("--out", help="file (csv, canvas) or folder (gradescope)")
    exp.add_argument(
        "--db", help="nbgrader: its gradebook.db (the course's, after generate_assignment)"
    )
    exp.add_argument("--roster", help="canvas: the gradebook CSV Canvas exported (its students)")
    exp.add_argument(
        "--assignment",
        help="canvas: the assignment's column; nbgrader: the assignment (default: the exercise)",
    )
    exp.add_argument("--exercise")
    exp.add_argument("--profile")
    exp.add_argument("--gradebook")
    _deadlines_option(exp)
    exp.set_defaults(func=cmd_export)

    gs = sub.add_parser("gradescope", help="a Gradescope autograder bundle, and running one")
    gs_sub = gs.add_subparsers(dest="gradescope_command", required=True)
    gsb = gs_sub.add_parser("bundle", help="write the autograder.zip for one exercise")
    gsb.add_argument("exercise")
    gsb.add_argument("--profile", default=DEFAULT_PROFILE, choices=PROFILES)
    gsb.add_argument("--out", help="the zip (default: autograder-EXERCISE-PROFILE.zip)")
    gsr = gs_sub.add_parser("run", help="run a bundle on a submission, laid out like Gradescope")
    gsr.add_argument("--local", action="store_true", required=True, help="in a temporary folder")
    gsr.add_argument("bundle")
    gsr.add_argument("submission", help="a notebook, or a folder as a student uploads it")
    gsr.add_argument("--keep", help="run in this folder and keep it (default: a temporary one)")
    gsi = gs_sub.add_parser("inside", help=argparse.SUPPRESS)  # run_autograder's own command
    gsi.add_argument("--root", default="/autograder")
    gs.set_defaults(func=cmd_gradescope)

    fb = sub.add_parser(
        "feedback", help="write one HTML feedback page per graded submission (no re-grading)"
    )
    fb.add_argument("--out", default="feedback", help="folder (default: ./feedback)")
    fb.add_argument("--exercise")
    fb.add_argument("--profile")
    fb.add_argument("--gradebook")
    _deadlines_option(fb)
    fb.set_defaults(func=cmd_feedback)

    sim = sub.add_parser(
        "similarity", help="answer code and trained weights shared between students (a report)"
    )
    sim.add_argument("--exercise", required=True)
    sim.add_argument("--profile", choices=PROFILES, default=DEFAULT_PROFILE)
    sim.add_argument("--threshold", type=float, default=0.6, help="share of copied answer code")
    sim.add_argument("--out", default="reports", help="folder (default: ./reports)")
    sim.add_argument("--gradebook")
    sim.add_argument("--workdir", help="the runs graded (default: .deepgrade/runs)")
    sim.set_defaults(func=cmd_similarity, deadlines=None)

    rep = sub.add_parser("report", help="write the class report of one exercise (HTML, CSV, JSON)")
    rep.add_argument("--exercise", required=True)
    rep.add_argument("--profile", choices=PROFILES, default=DEFAULT_PROFILE)
    rep.add_argument("--out", default="reports", help="folder (default: ./reports)")
    rep.add_argument("--gradebook")
    _deadlines_option(rep)
    rep.set_defaults(func=cmd_report)

    chk = sub.add_parser("check-solutions", help="grade every reference solution: full marks?")
    chk.add_argument("--exercise", action="append", help="repeatable (default: all)")
    chk.add_argument("--profile", default=DEFAULT_PROFILE, choices=PROFILES)
    chk.add_argument("--workers", type=int, default=1)
    chk.add_argument("--unsafe", action="store_true", help="no sandbox (trusted machine only)")
    chk.add_argument("--allow-unlimited", action="store_true", help=UNLIMITED_HELP)
    chk.add_argument("--look-alike", action="store_true", help=LOOK_ALIKE_HELP)
    chk.add_argument("--gpus", help="GPUs to grade on, as for grade (e.g. 0)")
    chk.add_argument("--cell-timeout", type=int, help=CELL_TIMEOUT_HELP)
    chk.set_defaults(func=cmd_check_solutions)

    mut = sub.add_parser("mutate", help="grade small mutations of the reference solution")
    mut.add_argument("exercise")
    mut.add_argument("--profile", default=DEFAULT_PROFILE, choices=PROFILES)
    mut.add_argument("--workers", type=int, default=1, help="mutants graded at once")
    mut.add_argument(
        "--only", action="append", help="operators, cells or mutant names (comma-separated)"
    )
    mut.add_argument("--limit", type=int, help="grade at most this many mutants")
    mut.add_argument("--list", action="store_true", help="list the mutants, grade nothing")
    mut.add_argument("--json", action="store_true", help="print the report as one JSON object")
    mut.add_argument("--workdir", help="mutants and runs (default: .deepgrade/mutate/EXERCISE)")
    mut.add_argument("--write", action="store_true", help="record the table in the README")
    mut.add_argument("--unsafe", action="store_true", help="no sandbox (trusted machine only)")
    mut.add_argument("--allow-unlimited", action="store_true", help=UNLIMITED_HELP)
    mut.add_argument("--cell-timeout", type=int, help=CELL_TIMEOUT_HELP)
    mut.set_defaults(func=cmd_mutate)

    demo = sub.add_parser("demo", help="everything end to end on synthetic data")
    demo.add_argument("--workdir", help="where the demo writes (default: .deepgrade/demo)")
    demo.add_argument("--workers", type=int, default=2)
    demo.add_argument("--unsafe", action="store_true", help="no sandbox (hosts without bwrap)")
    demo.add_argument("--allow-unlimited", action="store_true", help=UNLIMITED_HELP)
    demo.set_defaults(func=cmd_demo)

    new = sub.add_parser("new", help="scaffold a new exercise (docs/authoring.md)")
    new.add_argument("exercise", help="the new exercise's name, e.g. shirts_dense")
    new.add_argument("--dataset", help="signs, cifar10 or fashion_mnist (default: --like's)")
    new.add_argument("--like", help="copy this exercise's profile values and data sizes")
    new.add_argument("--title", help="the notebook's title (default: from the name)")
    new.set_defaults(func=cmd_new)

    cal = sub.add_parser("calibrate", help="grade the reference solution over seeds: thresholds")
    cal.add_argument("exercise")
    cal.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default: 10)")
    cal.add_argument("--sample", help="a flawed sample of samples.toml instead: its margin")
    cal.add_argument("--margin", type=float, default=0.05, help="threshold = min - margin")
    cal.add_argument("--profile", default=DEFAULT_PROFILE, choices=PROFILES)
    cal.add_argument("--workers", type=int, default=2, help="seeds graded at once")
    cal.add_argument("--write", action="store_true", help="put the table into the README")
    cal.add_argument("--unsafe", action="store_true", help="no sandbox (trusted code only)")
    cal.add_argument("--allow-unlimited", action="store_true", help=UNLIMITED_HELP)
    cal.add_argument("--look-alike", action="store_true", help=LOOK_ALIKE_HELP)
    cal.set_defaults(func=cmd_calibrate)

    doc = sub.add_parser("doctor", help="what this host enforces, and how to fix what it lacks")
    doc.add_argument("--json", action="store_true", help="the report as JSON")
    doc.add_argument(
        "--no-gpu-probe", action="store_true", help="list the GPUs without trying each in a sandbox"
    )
    doc.set_defaults(func=cmd_doctor)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so a batch stops the same way."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While a command runs, SIGTERM (a scheduler, `kill`, a CI timeout) stops it like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers (main() called from a test's thread)
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        with _sigterm_interrupts():
            return int(args.func(args))
    except DeepgradeError as exc:
        print(f"deepgrade: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as exc:  # exit status 128 + the signal, as shells report it
        stopped = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"deepgrade: {stopped}; what was graded is in the gradebook", file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
