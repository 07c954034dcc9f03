"""Release: the instructor's master notebook -> the student notebook and the reference solution.

`source/<name>/<notebook>` (solution regions, nbgrader metadata) becomes:
- `release/<name>/<notebook>`: solution regions replaced by stubs, outputs cleared, locked cells
  made read-only in Jupyter (`editable`/`deletable` false) with their checksum recorded, and
  notebook metadata `deepgrade = {"exercise", "version"}` (version: hash of the source file, so
  a submission says which release it came from);
- `solutions/<name>/<notebook>`: the same notebook with the solution code in place and the
  markers removed, i.e. a perfect submission (its locked cells are byte-identical to the
  release's, so it passes the tamper check).
Other non-notebook files of `source/<name>/` (helper modules, images) are copied beside both.
Both folders are generated, committed, and checked in CI with check_release(); files in them
that the release no longer produces are removed, as otter and nbgrader rebuild theirs.

Output is deterministic (same source, same bytes): nbformat's sorted-key JSON, execution
metadata dropped, stable cell ids, a final newline.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from deepgrade import notebooks as nbt
from deepgrade.errors import InputError
from deepgrade.exercise import ExerciseSpec, load_exercise
from deepgrade.project import Project

# Cell and notebook metadata written by a run (papermill, Jupyter extensions), not by the author.
_RUN_METADATA = ("execution", "ExecuteTime", "papermill", "collapsed", "scrolled")
_SKIPPED_NAMES = {"__pycache__"}  # and every name starting with "." (checkpoints, temp files)


def release_exercise(project: Project, name: str) -> list[Path]:
    """Write release/<name>/ and solutions/<name>/; return the files written."""
    outputs = render_exercise(project, name)
    written: list[Path] = []
    for path, data in outputs.items():
        _write_atomic(path, data)
        written.append(path)
    for folder in (project.release / name, project.solutions / name):
        for stale in _files_under(folder):
            if stale not in outputs:
                stale.unlink()
    return written


def check_release(project: Project) -> list[str]:
    """Paths (relative to the project root) that are missing, stale or no longer produced."""
    problems: list[str] = []
    for name in project.exercise_names():
        outputs = render_exercise(project, name)
        for path, data in outputs.items():
            if not path.is_file() or path.read_bytes() != data:
                problems.append(path.relative_to(project.root).as_posix())
        for folder in (project.release / name, project.solutions / name):
            problems.extend(
                extra.relative_to(project.root).as_posix()
                for extra in _files_under(folder)
                if extra not in outputs
            )
    return sorted(problems)


def render_exercise(project: Project, name: str) -> dict[Path, bytes]:
    """Everything release_exercise would write, in memory: {path: bytes}."""
    spec = load_exercise(project.autograder, name)
    source_dir = project.source / name
    source_path = source_dir / spec.notebook
    source = nbt.read_notebook(source_path)
    validate_source(source, source_path)
    check_parameters(source, spec, source_path)
    version = "sha256:" + hashlib.sha256(source_path.read_bytes()).hexdigest()[:16]
    outputs = {
        project.release / name / spec.notebook: _dump(
            _transform(source, name, version, nbt.clear_solutions)
        ),
        project.solutions / name / spec.notebook: _dump(
            _transform(source, name, version, lambda text, _type: nbt.strip_solution_markers(text))
        ),
    }
    for extra in _files_under(source_dir):
        if extra.suffix == ".ipynb":
            continue
        relative = extra.relative_to(source_dir)
        data = extra.read_bytes()
        outputs[project.release / name / relative] = data
        outputs[project.solutions / name / relative] = data
    return outputs


def validate_source(nb: NotebookNode, path: Path) -> None:
    """Refuse a master notebook the release cannot turn into a fair student notebook."""
    parameters = [
        i
        for i, cell in enumerate(nb.cells, 1)
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", [])
    ]
    if not parameters:
        raise InputError(
            path,
            "no code cell tagged 'parameters' (the grader sets DATA_DIR, ARTIFACT_DIR, PROFILE "
            "and the profiles' parameters there): add a code cell assigning them near the top "
            "and give it the tag parameters (Jupyter: View > Cell Toolbar > Tags); see "
            "docs/authoring.md",
        )
    if len(parameters) > 1:
        raise InputError(
            path, f"cells {parameters} are all tagged 'parameters'; keep the tag on one of them"
        )
    seen: dict[str, int] = {}
    for pos, cell in enumerate(nb.cells, 1):
        gid = nbt.grade_id(cell)
        where = f"cell {pos}" + (f" ({gid})" if gid else "")
        if nbt.nbgrader(cell) and gid is None:
            raise InputError(
                path,
                f"{where}: nbgrader metadata without a grade_id: give the cell a unique "
                'grade_id, e.g. "grade_id": "train" in its nbgrader metadata (samples.toml and '
                "the tamper check find cells by it)",
            )
        if gid is not None:
            if gid in seen:
                raise InputError(
                    path, f"{where}: grade_id {gid!r} already used by cell {seen[gid]}"
                )
            seen[gid] = pos
        try:
            regions = nbt.solution_regions(str(cell.source))
        except ValueError as exc:
            raise InputError(path, f"{where}: {exc}") from None
        if nbt.is_solution(cell):
            if cell.cell_type not in ("code", "markdown"):
                raise InputError(path, f"{where}: a solution cell must be code or markdown")
            if not regions:
                raise InputError(
                    path,
                    f"{where}: solution cell without a {nbt.BEGIN_SOLUTION} ... "
                    f"{nbt.END_SOLUTION} region: put the reference code between a line "
                    f"{nbt.BEGIN_SOLUTION!r} and a line {nbt.END_SOLUTION!r} (students get "
                    "a stub there)",
                )
            if nbt.nbgrader(cell).get("locked"):
                raise InputError(path, f"{where}: a solution cell cannot also be locked")
            if cell.cell_type == "markdown" and not nbt.is_grade(cell):
                raise InputError(
                    path,
                    f"{where}: a markdown answer must also be a grade cell, as nbgrader requires: "
                    'set "grade": true and "points": 0 in its nbgrader metadata (a person reads '
                    "it; deepgrade's points come from the hidden checks)",
                )
        elif cell.cell_type == "markdown" and nbt.is_grade(cell):
            raise InputError(path, f"{where}: a markdown grade cell must be a solution cell")
        elif regions:
            raise InputError(
                path,
                f"{where}: solution region in a cell not marked as a solution: set "
                '"solution": true (and a grade_id) in its nbgrader metadata, or remove the '
                "markers",
            )
        if nbt.is_grade(cell) and "points" not in nbt.nbgrader(cell):
            raise InputError(path, f"{where}: grade cell without points")


def check_parameters(nb: NotebookNode, spec: ExerciseSpec, path: Path) -> None:
    """Every parameter a profile sets is assigned in the parameters cell: papermill would add
    an unknown one silently, and the student would never see it."""
    import ast

    pos, cell = next(
        (i, c)
        for i, c in enumerate(nb.cells, 1)
        if c.cell_type == "code" and "parameters" in c.get("metadata", {}).get("tags", [])
    )
    try:
        body = ast.parse(str(cell.source)).body
    except SyntaxError as exc:
        problem = f"cell {pos} (the parameters cell): not valid Python ({exc.msg})"
        raise InputError(path, problem) from None
    assigned = {
        target.id
        for node in body
        for target in (
            node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        )
        if isinstance(target, ast.Name)
    }
    for profile in spec.profiles.values():
        missing = [key for key in profile.parameters if key not in assigned]
        if missing:
            example = f"{missing[0]} = {profile.parameters[missing[0]]!r}"
            raise InputError(
                path,
                f"cell {pos} (the parameters cell) does not assign {', '.join(missing)}, which "
                f"[profiles.{profile.name}] parameters of {spec.directory / 'spec.toml'} sets: "
                f"add a line such as `{example}` to it",
            )


def _transform(
    source: NotebookNode, name: str, version: str, solution: Callable[[str, str], str]
) -> NotebookNode:
    nb = copy.deepcopy(source)
    if nb.nbformat_minor < 5:
        nb.nbformat_minor = 5
    taken: set[str] = set()
    for pos, cell in enumerate(nb.cells, 1):
        for key in _RUN_METADATA:
            cell.metadata.pop(key, None)
        if not cell.get("id") or cell["id"] in taken:
            wanted = re.sub(r"[^A-Za-z0-9_-]", "-", nbt.grade_id(cell) or "")[:64]
            cell["id"] = wanted if wanted and wanted not in taken else f"cell-{pos}"
        taken.add(cell["id"])
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        if nbt.is_solution(cell):
            cell.source = solution(str(cell.source), cell.cell_type)
        if nbt.is_locked(cell):
            cell.metadata.editable = False
            cell.metadata.deletable = False
            cell.metadata.setdefault("deepgrade", {})["checksum"] = nbt.checksum(cell)
    for key in _RUN_METADATA:
        nb.metadata.pop(key, None)
    nb.metadata["deepgrade"] = {"exercise": name, "version": version}
    return nb


def _dump(nb: NotebookNode) -> bytes:
    text: str = nbformat.writes(nb)  # type: ignore[no-untyped-call]
    return (text if text.endswith("\n") else text + "\n").encode("utf-8")


def _files_under(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and not any(
            part in _SKIPPED_NAMES or part.startswith(".")
            for part in path.relative_to(folder).parts
        )
    )


def _write_atomic(path: Path, data: bytes) -> None:
    """Write via a temp file and rename, so an interrupted release never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
