"""Notebook transforms: pure functions, nbformat in and nbformat out.

We speak nbgrader's metadata vocabulary (``cell.metadata["nbgrader"]`` with ``grade_id``,
``locked``, ``solution``, ``grade``, ``points``; solution regions between ``### BEGIN SOLUTION``
and ``### END SOLUTION``) so instructors' habits and existing notebooks carry over, but we do not
depend on nbgrader itself: installing it pulls jupyterlab and SQLAlchemy (~330 MB) into every
grading image, and its preprocessors are configured through traitlets (configuration as
executable Python). The handful of transforms we need are a few dozen lines each and easy to
test on tiny notebooks.

Checksums differ from nbgrader's on purpose and live under ``cell.metadata["deepgrade"]``, not
``nbgrader.checksum``, so nbgrader's own validator never compares them with its md5: ours ignore
whitespace at line ends and trailing blank lines (an editor that strips them is not tampering)
and use sha256. The grader never trusts a checksum found in a submission: find_tampering()
compares the submission with the released notebook itself; the recorded checksums let a student
tool say "you edited locked cell X" without the release at hand.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode
from nbformat.v4.rwbase import rejoin_lines

from deepgrade.errors import InputError

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
MARKDOWN_STUB = "YOUR ANSWER HERE"
CELL_SEPARATOR = "# %%"
MAX_NOTEBOOK_BYTES = 64 * 1024 * 1024  # outputs included; the course's notebooks are ~1 MB
MAX_DEPTH = 64  # real notebooks nest ~10 levels; recursion in nbformat and copy fails ~300


def read_notebook(path: Path) -> NotebookNode:
    """Read and validate an nbformat 4 notebook; InputError naming the file otherwise.

    Whatever the file holds (any JSON shape, any size, any nesting, any bytes), the outcome is
    a notebook every transform here can use, or an InputError: a student's file must never
    become a grader error.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_NOTEBOOK_BYTES + 1)
    except FileNotFoundError:
        raise InputError(path, "no such notebook") from None
    except OSError as exc:
        raise InputError(path, f"cannot read the notebook ({exc.strerror})") from None
    if len(data) > MAX_NOTEBOOK_BYTES:
        limit = MAX_NOTEBOOK_BYTES // 2**20
        raise InputError(path, f"the notebook is over {limit} MiB; clear large outputs and save")
    try:
        raw = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not a notebook: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not a notebook: invalid JSON at line {exc.lineno}") from None
    except (ValueError, RecursionError):  # e.g. an integer of 5,000 digits, deep nesting
        raise InputError(path, "not a notebook: JSON the grader cannot read") from None
    version = raw.get("nbformat") if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or type(version) is not int or version != 4:
        found = version if isinstance(raw, dict) else type(raw).__name__
        raise InputError(path, f"not an nbformat 4 notebook (nbformat: {str(found)[:40]!r})")
    problem = _shape_problem(raw)
    if problem:
        raise InputError(path, f"not a valid nbformat 4 notebook: {problem}")
    with warnings.catch_warnings():
        # nbformat warns about missing cell ids; the release assigns stable ones.
        warnings.simplefilter("ignore")
        try:
            nbformat.validate(raw)
        except nbformat.ValidationError as exc:
            first = str(exc.message).splitlines()[0][:200]
            raise InputError(path, f"not a valid nbformat 4 notebook: {first}") from None
        except (
            ValueError, TypeError, KeyError, AttributeError, AssertionError, RecursionError
        ) as exc:  # fmt: skip
            # nbformat's schema lookup trips on some malformed versions and shapes
            raise InputError(
                path, f"not a valid nbformat 4 notebook ({type(exc).__name__})"
            ) from None
    # Sources and outputs are stored as lists of lines; every transform wants one string.
    nb: NotebookNode = rejoin_lines(nbformat.from_dict(raw))  # type: ignore[no-untyped-call]
    return nb


def _shape_problem(raw: Mapping[str, Any]) -> str | None:
    """What no valid notebook has, checked before nbformat (which trips on some of it):
    missing or mistyped top-level keys and cells, nesting deeper than MAX_DEPTH, text that is
    not Unicode (lone surrogates)."""
    minor = raw.get("nbformat_minor")
    if type(minor) is not int or minor < 0:
        return f"'nbformat_minor' is {str(minor)[:40]!r}, not a version number"
    if not isinstance(raw.get("metadata"), dict):
        return "no 'metadata' table; save the notebook again from Jupyter"
    cells = raw.get("cells")
    if not isinstance(cells, list):
        return "no list of 'cells'; save the notebook again from Jupyter"
    for number, cell in enumerate(cells, 1):
        if not isinstance(cell, dict) or not isinstance(cell.get("cell_type"), str):
            return f"cell {number} is not a notebook cell"
        if not isinstance(cell.get("metadata", {}), dict):
            return f"cell {number} has no 'metadata' table"
    stack: list[tuple[Any, int]] = [(raw, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"data nested more than {MAX_DEPTH} levels deep"
        if isinstance(node, dict):
            stack.extend((key, depth + 1) for key in node)
            stack.extend((value, depth + 1) for value in node.values())
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return "text that is not valid Unicode"
    return None


def nbgrader(cell: Mapping[str, Any]) -> dict[str, Any]:
    """The cell's nbgrader metadata, or an empty dict when it has none."""
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta if isinstance(meta, dict) else {}


def grade_id(cell: Mapping[str, Any]) -> str | None:
    value = nbgrader(cell).get("grade_id")
    return value if isinstance(value, str) and value else None


def is_solution(cell: Mapping[str, Any]) -> bool:
    return bool(nbgrader(cell).get("solution", False))


def is_grade(cell: Mapping[str, Any]) -> bool:
    return bool(nbgrader(cell).get("grade", False))


def is_locked(cell: Mapping[str, Any]) -> bool:
    """nbgrader's rule: solution cells are never locked, grade cells always are."""
    meta = nbgrader(cell)
    if not meta or is_solution(cell):
        return False
    return is_grade(cell) or bool(meta.get("locked", False))


def locked_cells(nb: NotebookNode) -> dict[str, NotebookNode]:
    """Locked cells by grade_id (the first one wins if a grade_id repeats)."""
    found: dict[str, NotebookNode] = {}
    for cell in nb.cells:
        gid = grade_id(cell)
        if gid is not None and is_locked(cell) and gid not in found:
            found[gid] = cell
    return found


def normalized_source(source: str) -> str:
    """Source without trailing whitespace on lines or at the end: editors strip those."""
    lines = [line.rstrip() for line in source.replace("\r\n", "\n").split("\n")]
    return "\n".join(lines).rstrip("\n")


def checksum(cell: Mapping[str, Any]) -> str:
    """sha256 of what makes a locked cell: source, type, nbgrader flags, grade_id, points."""
    meta = nbgrader(cell)
    parts = [
        normalized_source(str(cell.get("source", ""))),
        str(cell.get("cell_type", "")),
        f"grade={is_grade(cell)}",
        f"solution={is_solution(cell)}",
        f"locked={is_locked(cell)}",
        f"grade_id={grade_id(cell)}",
        f"points={_points(meta) if is_grade(cell) else 0.0}",
    ]
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()
    return f"sha256:{digest}"


def _points(meta: Mapping[str, Any]) -> float | str:
    """The cell's points as a number; anything else as its text (it then never matches)."""
    value = meta.get("points", 0) or 0
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return repr(value)[:80]
    try:
        return float(value)
    except (ValueError, OverflowError):
        return repr(value)[:80]


def find_tampering(submission: NotebookNode, release: NotebookNode) -> list[str]:
    """Human messages for every locked cell of `release` changed, deleted or unlabelled.

    Positions are 1-based cell numbers (markdown included), as Jupyter users count them.
    """
    by_id: dict[str, list[tuple[int, NotebookNode]]] = {}
    for pos, cell in enumerate(submission.cells, 1):
        gid = grade_id(cell)
        if gid is not None:
            by_id.setdefault(gid, []).append((pos, cell))
    messages: list[str] = []
    expected_order: list[str] = []
    for rpos, rcell in enumerate(release.cells, 1):
        gid = grade_id(rcell)
        if gid is None or not is_locked(rcell):
            continue
        expected_order.append(gid)
        matches = by_id.get(gid, [])
        if not matches:
            messages.append(_missing_message(gid, rpos, rcell, submission))
        elif len(matches) > 1:
            where = ", ".join(str(pos) for pos, _ in matches)
            messages.append(
                f"locked cell {gid!r} appears {len(matches)} times (cells {where}); "
                "keep only the original from the released notebook"
            )
        elif checksum(matches[0][1]) != checksum(rcell):
            messages.append(
                f"locked cell {gid!r} (cell {matches[0][0]}) was changed; "
                "copy it back from the released notebook"
            )
    found_order = [
        gid
        for gid, cells in sorted(by_id.items(), key=lambda kv: kv[1][0][0])
        if gid in expected_order
    ]
    present = [gid for gid in expected_order if gid in found_order]
    if found_order != present:
        messages.append(
            "locked cells were moved: expected the order "
            f"{', '.join(present)}; found {', '.join(found_order)}"
        )
    return messages


def _missing_message(gid: str, rpos: int, rcell: NotebookNode, submission: NotebookNode) -> str:
    wanted = normalized_source(str(rcell.get("source", "")))
    for pos, cell in enumerate(submission.cells, 1):
        if grade_id(cell) != gid and normalized_source(str(cell.get("source", ""))) == wanted:
            return (
                f"locked cell {gid!r} (cell {pos}) lost its nbgrader grade_id; "
                "copy it back from the released notebook"
            )
    return (
        f"locked cell {gid!r} (cell {rpos} of the released notebook) was deleted; "
        "copy it back from the released notebook"
    )


def split_marked_cells(text: str) -> list[tuple[str, dict[str, str]]]:
    """(source, options) of each cell of a `# %%`-separated file; the header before the first
    `# %%` is dropped. Options are the marker's `key=value` words (`# %% calls=build_model`);
    other words on the marker line are a title and ignored."""
    cells: list[tuple[list[str], dict[str, str]]] | None = None
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.startswith(CELL_SEPARATOR):
            words = line[len(CELL_SEPARATOR) :].split()
            options = dict(word.split("=", 1) for word in words if "=" in word)
            cells = [] if cells is None else cells
            cells.append(([], options))
        elif cells is not None:
            cells[-1][0].append(line)
    found = [("\n".join(lines).strip("\n"), options) for lines, options in cells or []]
    return [(source, options) for source, options in found if source.strip()]


def split_cells(text: str) -> list[str]:
    """Cell sources of a `# %%`-separated file; the header before the first `# %%` is dropped."""
    return [source for source, _ in split_marked_cells(text)]


def append_cells(
    nb: NotebookNode,
    sources: Iterable[str],
    tag: str,
    metadata: Sequence[Mapping[str, Any]] = (),
) -> NotebookNode:
    """A copy of `nb` with code cells appended, tagged `tag` so reports can hide them;
    `metadata[i]`, when given, is merged into the i-th new cell's metadata."""
    new = copy.deepcopy(nb)
    extra = list(metadata)
    stem = re.sub(r"[^A-Za-z0-9_-]", "-", tag)[:48] or "appended"
    taken = {cell.get("id") for cell in new.cells}
    for index, source in enumerate(sources, 1):
        cell_id = f"{stem}-{index}"
        while cell_id in taken:
            cell_id += "x"
        taken.add(cell_id)
        raw: dict[str, Any] = {
            "cell_type": "code",
            "execution_count": None,
            "metadata": {**(extra[index - 1] if index <= len(extra) else {}), "tags": [tag]},
            "outputs": [],
            "source": source,
        }
        cell: NotebookNode = nbformat.from_dict(raw)  # type: ignore[no-untyped-call]
        if new.get("nbformat_minor", 0) >= 5:
            cell["id"] = cell_id
        new.cells.append(cell)
    return new


def solution_regions(text: str) -> list[tuple[int, int]]:
    """(begin, end) line indexes of each solution region; ValueError if markers are unbalanced."""
    regions: list[tuple[int, int]] = []
    begin: int | None = None
    for index, line in enumerate(text.split("\n")):
        stripped = line.strip()
        if stripped.startswith(BEGIN_SOLUTION):
            if begin is not None:
                raise ValueError(
                    f"line {index + 1}: {BEGIN_SOLUTION} inside the region opened at line "
                    f"{begin + 1}"
                )
            begin = index
        elif stripped.startswith(END_SOLUTION):
            if begin is None:
                raise ValueError(f"line {index + 1}: {END_SOLUTION} without {BEGIN_SOLUTION}")
            regions.append((begin, index))
            begin = None
    if begin is not None:
        raise ValueError(f"line {begin + 1}: {BEGIN_SOLUTION} without {END_SOLUTION}")
    return regions


def clear_solutions(source_text: str, cell_type: str) -> str:
    """Replace each solution region by the stub students fill in, keeping its indentation."""
    if cell_type not in ("code", "markdown"):
        raise ValueError(f"solution regions belong in code or markdown cells, not {cell_type}")
    lines = source_text.split("\n")
    out: list[str] = []
    start = 0
    for begin, end in solution_regions(source_text):
        out.extend(lines[start:begin])
        indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
        stub = CODE_STUB if cell_type == "code" else (MARKDOWN_STUB,)
        out.extend(indent + line for line in stub)
        start = end + 1
    out.extend(lines[start:])
    return "\n".join(out)


def strip_solution_markers(text: str) -> str:
    """The solution as a student would write it: region markers removed, code kept."""
    marker_lines = {i for region in solution_regions(text) for i in region}
    return "\n".join(line for i, line in enumerate(text.split("\n")) if i not in marker_lines)
