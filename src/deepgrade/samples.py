"""Flawed sample submissions, made from the reference solution by small recorded edits.

`autograder/<exercise>/samples.toml` lists, for each sample, the edits (find/replace inside a
cell named by its grade_id, or a new cell inserted after one) and what grading it must give:
the verdict and exactly which checks fail. The demo grades them to show the grader at work, and
the tests grade them to prove each flaw loses exactly its points. Edits that no longer apply
(the solution changed) fail loudly instead of producing a sample that is secretly correct.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepgrade import notebooks
from deepgrade.errors import InputError


@dataclass(frozen=True)
class Edit:
    cell: str  # grade_id of the cell to edit, or to insert after
    find: str = ""
    replace: str = ""
    insert: str = ""  # when set: a new code cell with this source goes after `cell`


@dataclass(frozen=True)
class Sample:
    name: str
    description: str
    edits: tuple[Edit, ...]
    expect_verdict: str
    expect_failed: tuple[str, ...]  # check ids (as in results), exactly the ones that fail
    demo: bool = True  # graded by `deepgrade demo` (slow samples such as timeouts opt out)
    expect_runs: int = 1  # a borderline sample is run 1 + borderline_runs times (median decides)
    # The checks that ride on the borderline measurement. Its seed-0 value is calibrated on one
    # CPU family; on another (oneDNN picks kernels by instruction set) it may land outside the
    # band, and then the sample runs once and these checks follow that one value.
    borderline_checks: tuple[str, ...] = ()


def read_samples_file(exercise_dir: Path) -> tuple[Path, dict[str, Any]]:
    """samples.toml's path and its tables ({} when the exercise has none): the one reader of
    the file, for the samples and for mutate's accepted survivors."""
    path = exercise_dir / "samples.toml"
    if not path.is_file():
        return path, {}
    try:
        return path, tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(path, f"not valid TOML: {exc}") from None


def load_samples(exercise_dir: Path) -> list[Sample]:
    path, raw = read_samples_file(exercise_dir)
    samples = []
    for entry in raw.get("sample", []):
        try:
            samples.append(
                Sample(
                    name=entry["name"],
                    description=entry["description"],
                    edits=tuple(Edit(**e) for e in entry["edits"]),
                    expect_verdict=entry.get("expect_verdict", "graded"),
                    expect_failed=tuple(entry.get("expect_failed", ())),
                    demo=entry.get("demo", True),
                    expect_runs=entry.get("expect_runs", 1),
                    borderline_checks=tuple(entry.get("borderline_checks", ())),
                )
            )
        except (KeyError, TypeError) as exc:
            raise InputError(path, f"sample {entry.get('name', '?')!r}: {exc}") from None
    return samples


def apply_edits(solution: Path, sample: Sample, out: Path) -> Path:
    """Write the solution with the sample's edits applied to `out`."""
    import nbformat

    nb = notebooks.read_notebook(solution)
    for edit in sample.edits:
        index = _index_of(nb, edit.cell, solution, sample)
        if edit.insert:
            cell = nbformat.v4.new_code_cell(edit.insert)  # type: ignore[no-untyped-call]
            nb.cells.insert(index + 1, cell)
            continue
        source = nb.cells[index].source
        if edit.find not in source:
            raise InputError(
                solution,
                f"sample {sample.name!r}: cell {edit.cell!r} no longer contains {edit.find!r}",
            )
        nb.cells[index].source = source.replace(edit.find, edit.replace)
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)  # type: ignore[no-untyped-call]
    return out


def _index_of(nb: object, grade_id: str, solution: Path, sample: Sample) -> int:
    for index, cell in enumerate(nb.cells):  # type: ignore[attr-defined]
        if notebooks.nbgrader(cell).get("grade_id") == grade_id:
            return index
    raise InputError(solution, f"sample {sample.name!r}: no cell with grade_id {grade_id!r}")
