"""The last look at every string a student can read: no hidden value, no grade-time code.

The real protection is upstream: the hidden values reach the kernel only when the grader's own
cells start (never in a cell's source), a failing grade-time cell is described from the
grader's template (the function and a known exception type, never its message), the student's
saved files are frozen when those cells start, and student text is bounded. This module is
defence in depth where a student-visible string is finally produced (the SubmissionResult that
grade_submission returns, and every export): text that carries a distinctive hidden value, a
line of the grade-time cells or the grader's own names is replaced by a neutral sentence, and
every such string loses its control characters and is cut to a bounded length.

Only distinctive values count: numbers of four or more digits, strings of four or more
characters, and lists of three or more numbers matched in any formatting; "6" or "0.05" alone
would withhold honest feedback and protects nothing.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepgrade.results import SubmissionResult

if TYPE_CHECKING:
    from deepgrade.exercise import ExerciseSpec

WITHHELD = (
    "(message withheld by the grader: it repeated part of the grader's hidden test inputs or "
    "code; the verdict and the check's title still say what failed)"
)
MAX_DETAIL = 500
MAX_MESSAGE = 1000
MAX_TRACEBACK = 4000
MIN_TEXT = 4  # a hidden string shorter than this is not distinctive
MIN_DIGITS = 4  # nor is a number with fewer significant digits
MIN_SEQUENCE = 3  # nor a list of fewer numbers
MIN_LINE = 16  # grade-time source lines shorter than this ("return x") are not distinctive
# Nor is an import: `import numpy as np` is in every student's notebook too, and withholding
# a traceback because it quotes the student's own import would hide honest feedback.
_IMPORT_LINE = re.compile(
    r"^\s*(?:from\s+[\w.]+\s+)?import\s+[\w., ()*]+?(?:\s+as\s+\w+)?\s*(?:#.*)?$"
)
# The grader's own names: the hidden table and the grade-time cells' private `_dg_` names.
GRADER_NAMES = re.compile(r"\bHIDDEN\s*(?:\[|=|\.get\b)|_dg_[A-Za-z0-9]")
_NUMBER = re.compile(r"(?<![\d.])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|.)")


def _fold(text: str) -> str:
    return " ".join(text.casefold().split())


def _significant_digits(value: float) -> int:
    digits = re.sub(r"[^0-9]", "", repr(abs(value)).split("e")[0].split("E")[0])
    return len(digits.lstrip("0").rstrip("0") if "." in repr(value) else digits.lstrip("0"))


@dataclass(frozen=True)
class Secrets:
    """What must not appear in one exercise's student-visible text."""

    texts: tuple[str, ...] = ()  # folded: hidden strings and grade-time source lines
    numbers: frozenset[float] = frozenset()  # distinctive hidden numbers
    sequences: tuple[tuple[float, ...], ...] = ()  # hidden lists of numbers

    def reveals(self, text: str) -> bool:
        """Whether `text` carries one of these secrets (or the grader's own names)."""
        if GRADER_NAMES.search(text):
            return True
        folded = _fold(text)
        if any(secret in folded for secret in self.texts):
            return True
        found = [float(token) for token in _NUMBER.findall(text)]
        if self.numbers.intersection(found):
            return True
        for sequence in self.sequences:
            size = len(sequence)
            if any(tuple(found[i : i + size]) == sequence for i in range(len(found) - size + 1)):
                return True
        return False


def _collect(value: Any, texts: set[str], numbers: set[float], sequences: set[Any]) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, str):
        if len(value.strip()) >= MIN_TEXT:
            texts.add(_fold(value))
    elif isinstance(value, int | float):
        if _significant_digits(float(value)) >= MIN_DIGITS:
            numbers.add(float(value))
    elif isinstance(value, Mapping):
        for item in value.values():
            _collect(item, texts, numbers, sequences)
    elif isinstance(value, list | tuple):
        plain = [v for v in value if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(plain) == len(value) >= MIN_SEQUENCE:
            sequences.add(tuple(float(v) for v in plain))
        for item in value:
            _collect(item, texts, numbers, sequences)


def secrets_of(hidden: Mapping[str, Any], gradetime_sources: Iterable[str]) -> Secrets:
    """The distinctive parts of a [hidden] table and of the grade-time cells' lines."""
    texts: set[str] = set()
    numbers: set[float] = set()
    sequences: set[tuple[float, ...]] = set()
    _collect(dict(hidden), texts, numbers, sequences)
    for source in gradetime_sources:
        for line in source.splitlines():
            folded = _fold(line)
            if len(folded) >= MIN_LINE and not _IMPORT_LINE.match(line):
                texts.add(folded)
    return Secrets(tuple(sorted(texts)), frozenset(numbers), tuple(sorted(sequences)))


def exercise_secrets(spec: ExerciseSpec) -> Secrets:
    """Secrets of an exercise: its [hidden] table, its grade-time cells' file and the module
    that makes hidden inputs."""
    files = (spec.gradetime_cells, spec.hidden_module)
    sources = [path.read_text(encoding="utf-8") for path in files if path and path.is_file()]
    return secrets_of(spec.hidden, sources)


def project_secrets(autograder: Path, exercises: Iterable[str]) -> dict[str, Secrets]:
    """Secrets per exercise name; an exercise that no longer loads gets only the generic
    backstop (the grader's names, control characters, length)."""
    from deepgrade.errors import InputError
    from deepgrade.exercise import load_exercise

    found: dict[str, Secrets] = {}
    for name in sorted(set(exercises)):
        try:
            found[name] = exercise_secrets(load_exercise(autograder, name))
        except InputError:
            continue
    return found


def clean(text: str, limit: int, *, one_line: bool = False, indented: bool = False) -> str:
    """`text` without terminal escapes or control and format characters (bidi overrides,
    zero-width marks), at most `limit` characters; newlines survive unless `one_line`, and
    runs of spaces too when `indented` (a traceback's code lines)."""
    text = _ANSI.sub("", str(text))
    kept = []
    for char in text:
        kind = unicodedata.category(char)
        if char == "\n" and not one_line:
            kept.append(char)
        elif kind == "Cc" or kind[0] == "Z":  # tabs, NUL, odd spaces: one plain space
            kept.append(" ")
        elif kind[0] != "C":  # format (bidi, zero-width), private, unassigned: dropped
            kept.append(char)
    text = "".join(kept)
    if one_line:
        text = " ".join(text.split())
    elif indented:
        text = "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")
    else:
        text = re.sub(r"[ ]{2,}", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def visible(
    text: str, secrets: Secrets, limit: int, *, one_line: bool = False, indented: bool = False
) -> str:
    """`text` as a student may read it: cleaned, or WITHHELD when it carries a secret."""
    if secrets.reveals(text) or secrets.reveals(clean(text, len(text) + 1, one_line=True)):
        return WITHHELD
    return clean(text, limit, one_line=one_line, indented=indented)


def withhold(result: SubmissionResult, secrets: Secrets | None) -> SubmissionResult:
    """`result` with its student-visible text (detail, check titles and messages) passed
    through `visible`; points and verdict are unchanged."""
    secrets = secrets or Secrets()
    checks = tuple(
        dataclasses.replace(
            check,
            title=visible(check.title, secrets, MAX_DETAIL, one_line=True),
            message=visible(check.message, secrets, MAX_MESSAGE) if check.message else "",
        )
        for check in result.checks
    )
    detail = visible(result.detail, secrets, MAX_DETAIL, one_line=True)
    traceback = (
        visible(result.traceback, secrets, MAX_TRACEBACK, indented=True) if result.traceback else ""
    )
    summary = tuple(
        (visible(name, secrets, 80, one_line=True), kind, shape, params)
        for name, kind, shape, params in result.model_summary
    )
    return dataclasses.replace(
        result, detail=detail, checks=checks, traceback=traceback, model_summary=summary
    )
