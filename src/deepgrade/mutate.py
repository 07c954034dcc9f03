"""Check strength, measured: grade small mutations of the reference solution.

Each mutant is the reference solution with ONE small change to one of its solution cells
(mutation_ops: a padding, a kernel size, an activation, the input scaling...), applied with the
same by-grade-id edit that samples.toml's flawed samples use. Every mutant, and the unmutated
solution as a baseline, is graded by the normal pipeline (tamper check, both sandboxed stages)
in one batch. A mutant that keeps full marks SURVIVED: some check is weaker than it claims,
unless the exercise lists it as accepted (a property the exercise does not fix) in
samples.toml:

    [[mutation_accepted]]
    cell = "train"
    change = 'keras.layers.Dropout(0.25), -> keras.layers.Dropout(0.5),'
    reason = "the course leaves the dropout rate to the student"

`cell` and `change` are as `deepgrade mutate` prints them (no line number, so an entry stays
valid when lines move above it).
"""

from __future__ import annotations

import ast
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from deepgrade import mutation_ops, notebooks
from deepgrade.errors import DeepgradeError, InputError
from deepgrade.project import Project
from deepgrade.results import SubmissionResult, Verdict
from deepgrade.samples import Edit, Sample, apply_edits

REFERENCE = "reference"


@dataclass(frozen=True)
class Mutant:
    """The reference solution with one small change in one solution cell."""

    number: int
    operator: str
    cell: str  # grade_id of the changed cell
    line: int  # 1-based line of the change inside the cell
    before: str  # the changed line(s), stripped
    after: str
    original: str  # the cell's source, before and after
    source: str

    @property
    def name(self) -> str:
        return f"mutant-{self.number:03d}"

    @property
    def change(self) -> str:
        return f"{self.before} -> {self.after or '(line removed)'}"

    @property
    def short(self) -> str:
        """The change without the context both sides share: `(5, 5) -> (3, 3)`."""
        return short_change(self.before, self.after)

    @property
    def description(self) -> str:
        return f"{self.cell} line {self.line} ({self.operator}): {self.change}"

    def edit(self) -> Edit:
        """The samples.toml edit that makes this mutant: the changed lines when they occur
        once in the cell (copy it into a sample as is), else the whole cell."""
        old_lines, new_lines = self.original.splitlines(True), self.source.splitlines(True)
        first, o_end, n_end = _differing_lines(old_lines, new_lines)
        find, replace = "".join(old_lines[first:o_end]), "".join(new_lines[first:n_end])
        if not find or self.original.count(find) != 1:
            find, replace = self.original, self.source
        return Edit(cell=self.cell, find=find, replace=replace)

    def sample(self) -> Sample:
        return Sample(self.name, self.description, (self.edit(),), "graded", ())


@dataclass(frozen=True)
class Skipped:
    cell: str
    reason: str


@dataclass(frozen=True)
class Mutants:
    mutants: tuple[Mutant, ...]
    skipped: tuple[Skipped, ...] = ()  # solution cells the operators could not read


def _differing_lines(old: Sequence[str], new: Sequence[str]) -> tuple[int, int, int]:
    """(first differing line, end in old, end in new) after common leading/trailing lines."""
    first = 0
    while first < min(len(old), len(new)) and old[first] == new[first]:
        first += 1
    o_end, n_end = len(old), len(new)
    while o_end > first and n_end > first and old[o_end - 1] == new[n_end - 1]:
        o_end, n_end = o_end - 1, n_end - 1
    return first, o_end, n_end


_OPENERS, _CLOSERS = " ,([{=:", " ,)]}=:"


def short_change(before: str, after: str) -> str:
    """`before -> after` without their common prefix and suffix (cut where a word or bracket
    ends, so what is left reads as code): a table cell, not a place to find the line."""
    limit = min(len(before), len(after))
    prefix = 0
    while prefix < limit and before[prefix] == after[prefix]:
        prefix += 1
    while (
        prefix > 0
        and before[prefix - 1] not in _OPENERS
        and before[prefix : prefix + 1] not in tuple(_CLOSERS)
    ):
        prefix -= 1
    suffix = 0
    while suffix < limit - prefix and before[-1 - suffix] == after[-1 - suffix]:
        suffix += 1
    while (
        suffix > 0
        and before[len(before) - suffix] not in _CLOSERS
        and before[len(before) - suffix - 1] not in _OPENERS
    ):
        suffix -= 1
    old = before[prefix : len(before) - suffix].strip() or "(nothing)"
    new = after[prefix : len(after) - suffix].strip() or "(nothing)"
    return f"{old} -> {new}"


def _shown(lines: Sequence[str]) -> str:
    return " ".join(" ".join(line.split()) for line in lines if line.strip())


def notebook_parameters(nb: Any) -> dict[str, Any]:
    """The parameters cell's literal assignments (NAME = value), as released."""
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            try:
                tree = ast.parse(cell.source)
            except SyntaxError:
                return {}
            found = {}
            for node in tree.body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1:
                    target = node.targets[0]
                    if isinstance(target, ast.Name):
                        try:
                            found[target.id] = ast.literal_eval(node.value)
                        except (ValueError, TypeError, SyntaxError):
                            continue
            return found
    return {}


def make_mutants(
    solution: Path,
    profile_parameters: Mapping[str, Any],
    operators: Sequence[str] | None = None,
) -> Mutants:
    """Every distinct mutant of the solution's solution cells (locked cells never change)."""
    nb = notebooks.read_notebook(solution)
    released = notebook_parameters(nb)
    graded = {**released, **profile_parameters}
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    ctx = mutation_ops.Context(
        parameters=graded,
        released=released,
        calls=mutation_ops.call_values([c.source for c in code], graded),
    )
    chosen = {
        name: op
        for name, op in mutation_ops.OPERATORS.items()
        if operators is None or name in operators
    }
    mutants: list[Mutant] = []
    skipped: list[Skipped] = []
    seen: set[tuple[str, str]] = set()
    for cell in code:
        gid = notebooks.grade_id(cell)
        if not notebooks.is_solution(cell) or notebooks.is_locked(cell) or gid is None:
            continue
        try:
            edits = mutation_ops.edits(cell.source, ctx, chosen)
        except SyntaxError as exc:
            skipped.append(Skipped(gid, f"not plain Python (line {exc.lineno}): not mutated"))
            continue
        for edit in edits:
            source = mutation_ops.apply(cell.source, edit)
            if source == cell.source or (gid, source) in seen or not _parses(source):
                continue
            seen.add((gid, source))
            old, new = cell.source.splitlines(True), source.splitlines(True)
            first, o_end, n_end = _differing_lines(old, new)
            mutants.append(
                Mutant(
                    number=len(mutants) + 1,
                    operator=edit.operator,
                    cell=gid,
                    line=first + 1,
                    before=_shown(old[first:o_end]),
                    after=_shown(new[first:n_end]),
                    original=cell.source,
                    source=source,
                )
            )
    return Mutants(tuple(mutants), tuple(skipped))


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except SyntaxError:
        return False
    return True


def select(mutants: Sequence[Mutant], only: Sequence[str], limit: int | None) -> list[Mutant]:
    """Mutants whose operator, cell or name is in `only` (all when empty), at most `limit`;
    an `only` that names nothing known is an error, not an empty (and green) run."""
    known = {m.operator for m in mutants} | {m.cell for m in mutants} | {m.name for m in mutants}
    unknown = sorted(set(only) - known)
    if unknown:
        raise DeepgradeError(
            f"--only {', '.join(unknown)}: no mutant has that operator, cell or name "
            f"(operators: {', '.join(sorted({m.operator for m in mutants}))}; cells: "
            f"{', '.join(sorted({m.cell for m in mutants}))}; `--list` shows every mutant)"
        )
    picked = [m for m in mutants if not only or {m.operator, m.cell, m.name} & set(only)]
    return picked[:limit] if limit is not None else picked


def list_mutants(
    project: Project,
    exercise: str,
    profile: str,
    only: Sequence[str] = (),
    limit: int | None = None,
) -> list[Mutant]:
    """The mutants a run would grade, without grading them."""
    from deepgrade.exercise import load_exercise
    from deepgrade.profiles import resolve_profile

    spec = load_exercise(project.autograder, exercise)
    resolved = resolve_profile(spec, profile, data_files=(), model_files=())  # nothing graded
    solution = project.solutions / spec.name / spec.notebook
    return select(make_mutants(solution, resolved.spec.parameters).mutants, only, limit)


# -- accepted survivors --------------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    cell: str
    change: str
    reason: str


def load_accepted(exercise_dir: Path) -> list[Accepted]:
    """The exercise's accepted survivors: samples.toml's [[mutation_accepted]] entries."""
    from deepgrade.samples import read_samples_file

    path, raw = read_samples_file(exercise_dir)
    accepted = []
    for number, entry in enumerate(raw.get("mutation_accepted", []), 1):
        values = [entry.get(key) if isinstance(entry, dict) else None for key in _ACCEPTED_KEYS]
        texts = [v for v in values if isinstance(v, str) and v.strip()]
        if len(texts) != len(_ACCEPTED_KEYS):
            raise InputError(
                path,
                f"[[mutation_accepted]] entry {number} needs cell, change and reason (text): "
                "copy cell and change from `deepgrade mutate`'s output and say why it may survive",
            )
        accepted.append(Accepted(*texts))
    return accepted


_ACCEPTED_KEYS = ("cell", "change", "reason")


# -- outcomes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    mutant: Mutant
    result: SubmissionResult
    accepted: str | None = None  # the reason, when an accepted survivor

    @property
    def survived(self) -> bool:
        """Full points, whatever the verdict: a cell error that costs nothing is no kill."""
        result = self.result
        return (
            result.verdict is not Verdict.GRADER_ERROR
            and result.max_points > 0
            and result.points >= result.max_points
        )

    @property
    def lost(self) -> list[str]:
        return [c.check_id for c in self.result.checks if not c.passed]

    @property
    def status(self) -> str:
        if self.result.verdict is Verdict.GRADER_ERROR:
            return "grader_error"
        if self.survived:
            return "accepted" if self.accepted else "SURVIVED"
        return "killed"

    def to_json(self) -> dict[str, Any]:
        return {
            "mutant": self.mutant.name,
            "operator": self.mutant.operator,
            "cell": self.mutant.cell,
            "line": self.mutant.line,
            "change": self.mutant.change,
            "points": self.result.points,
            "max_points": self.result.max_points,
            "verdict": str(self.result.verdict),
            "status": self.status,
            "lost": self.lost,
            "accepted": self.accepted,
        }


def full_marks(result: SubmissionResult) -> bool:
    return (
        result.verdict is Verdict.GRADED
        and result.max_points > 0
        and result.points >= result.max_points
    )


@dataclass(frozen=True)
class MutationReport:
    exercise: str
    profile: str
    reference: SubmissionResult | None  # None when the subset run left it out
    outcomes: tuple[Outcome, ...]
    subset: bool = False  # --only / --limit: not every mutant was graded
    stale: tuple[Accepted, ...] = ()  # accepted entries no graded mutant matches
    skipped: tuple[Skipped, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def survivors(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "SURVIVED"]

    @property
    def problems(self) -> list[str]:
        """Why the run is a failure (exit 1); empty when every check held."""
        found = []
        if self.reference is not None and not full_marks(self.reference):
            found.append(
                f"the reference solution itself got {self.reference.points:g}/"
                f"{self.reference.max_points:g} ({self.reference.verdict}): mutants mean nothing"
            )
        found += [f"SURVIVED: {o.mutant.description}" for o in self.survivors]
        found += [
            f"grader error on {o.mutant.name}: {o.result.detail}"
            for o in self.outcomes
            if o.status == "grader_error"
        ]
        return found

    @property
    def exit_code(self) -> int:
        return 1 if self.problems else 0

    def to_json(self) -> dict[str, Any]:
        ref = self.reference
        return {
            "exercise": self.exercise,
            "profile": self.profile,
            "subset": self.subset,
            "reference": None
            if ref is None
            else {"points": ref.points, "max_points": ref.max_points, "verdict": str(ref.verdict)},
            "mutants": [o.to_json() for o in self.outcomes],
            "survivors": len(self.survivors),
            "accepted": sum(o.status == "accepted" for o in self.outcomes),
            "killed": sum(o.status == "killed" for o in self.outcomes),
            "stale_accepted": [{"cell": a.cell, "change": a.change} for a in self.stale],
            "skipped": [{"cell": s.cell, "reason": s.reason} for s in self.skipped],
            "problems": self.problems,
        }


def build_report(
    exercise: str,
    profile: str,
    mutants: Sequence[Mutant],
    results: Mapping[str, SubmissionResult],
    accepted: Sequence[Accepted],
    *,
    subset: bool,
    skipped: Sequence[Skipped] = (),
) -> MutationReport:
    """Pair each mutant with its result (by submission name) and the accepted list."""
    reasons = {(a.cell, a.change): a.reason for a in accepted}
    outcomes = tuple(Outcome(m, results[m.name], reasons.get((m.cell, m.change))) for m in mutants)
    matched = {(o.mutant.cell, o.mutant.change) for o in outcomes}
    stale = () if subset else tuple(a for a in accepted if (a.cell, a.change) not in matched)
    return MutationReport(
        exercise=exercise,
        profile=profile,
        reference=results.get(REFERENCE),
        outcomes=outcomes,
        subset=subset,
        stale=stale,
        skipped=tuple(skipped),
    )


# -- grading -------------------------------------------------------------------------------


def write_mutants(solution: Path, mutants: Sequence[Mutant], folder: Path) -> dict[str, Path]:
    """One notebook per mutant (and the unmutated reference) in `folder`, by submission name."""
    paths = {REFERENCE: folder / f"{REFERENCE}.ipynb"}
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(solution, paths[REFERENCE])
    for mutant in mutants:
        paths[mutant.name] = apply_edits(solution, mutant.sample(), folder / f"{mutant.name}.ipynb")
    return paths


def run_mutations(
    project: Project,
    exercise: str,
    *,
    profile: str,
    workers: int,
    only: Sequence[str] = (),
    limit: int | None = None,
    unsafe: bool = False,
    allow_unlimited: bool = False,
    workdir: Path | None = None,
    cell_timeout_s: int | None = None,
    console: Console,
) -> MutationReport:
    """Make the exercise's mutants, grade them and the reference in one batch, report.

    Grading goes through batch.py exactly as `grade` does, into a gradebook of its own under
    `workdir` (default .deepgrade/mutate/<exercise>/; an earlier run's mutants, runs and
    gradebook there are removed first): the class gradebook never sees a mutant.
    `cell_timeout_s` overrides the profile's cell limit (a host known to be busy)."""
    from deepgrade.batch import batch_settings, run_with_progress
    from deepgrade.gradebook import Gradebook
    from deepgrade.submissions import Submission

    work = workdir or project.root / ".deepgrade" / "mutate" / exercise
    for old in (work / "notebooks", work / "runs"):  # only what an earlier run made
        if old.is_dir():
            shutil.rmtree(old)
    (work / "gradebook.db").unlink(missing_ok=True)
    settings = batch_settings(
        project,
        exercise,
        profile,
        work / "runs",
        unsafe,
        cell_timeout_s,
        allow_unlimited=allow_unlimited,
    )
    spec = settings.spec
    solution = project.solutions / spec.name / spec.notebook
    made = make_mutants(solution, settings.profile.spec.parameters)
    chosen = select(made.mutants, only, limit)
    subset = len(chosen) < len(made.mutants)
    accepted = load_accepted(spec.directory)
    paths = write_mutants(solution, chosen, work / "notebooks")
    submissions = [Submission(name, path) for name, path in paths.items()]
    with Gradebook(work / "gradebook.db") as book:
        graded = run_with_progress(
            submissions, settings, book, workers=workers, force=True, console=console
        ).graded
    results = {result.student: result for result in graded}
    return build_report(
        exercise, profile, chosen, results, accepted, subset=subset, skipped=made.skipped
    )
