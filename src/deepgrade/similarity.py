"""The class's similarity report for one exercise: answer code and trained weights.

Two signals, both for a person to look at, never a grade:
- **Answer code.** Each student's answer cells (the cells the released notebook leaves for
  them, found by their nbgrader `grade_id`) are compared with every other student's by
  winnowed fingerprints (copydetect, the MOSS approach: identifiers and comments normalised
  away), with the released notebook's code as boilerplate, so the given stubs match nobody.
  A pair is flagged when either side's share of copied code reaches the threshold.
- **Trained weights.** The grader trains every notebook itself, with the profile's seed, so
  identical `model.weights.h5` inside two students' saved `.keras` files (or identical other
  artifacts) mean the two notebooks ran the same computation: the same model, initialised and
  trained in the same order. Two independent solutions that do exactly that can match too, so
  this is read together with the code pairs. The bytes are hashed as stage 1 stored them (the
  zip member, not parsed: Keras rewrites only its metadata's date on each save).

Input is the gradebook's latest results: each result's notebook (`source_path`, used only while
its content hash still matches) and its stage-1 artifacts under the runs folder.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import zipfile
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from deepgrade import notebooks
from deepgrade.errors import DeepgradeError, InputError
from deepgrade.export import Graded

THRESHOLD = 0.6  # share of one side's answer tokens found in the other's
NOISE_TOKENS = 25  # copydetect's k: shorter matches are noise
GUARANTEE_TOKENS = 30  # any match this long is found (winnowing window = 30 - 25 + 1)
MAX_MEMBER_BYTES = 1 << 30
KERAS_WEIGHTS = "model.weights.h5"


@dataclass(frozen=True)
class Answers:
    """One student's answer cells, joined in the notebook's order."""

    student: str
    code: str


@dataclass(frozen=True)
class Match:
    """Two students whose answers share code: each side's share, and the shared stretches of
    each side's code as (start, end) character offsets."""

    first: str
    second: str
    first_share: float
    second_share: float
    first_code: str
    second_code: str
    first_slices: tuple[tuple[int, int], ...]
    second_slices: tuple[tuple[int, int], ...]

    @property
    def share(self) -> float:
        return max(self.first_share, self.second_share)


@dataclass(frozen=True)
class SameWeights:
    """Students whose saved artifact `name` is the very same bytes."""

    name: str
    sha256: str
    students: tuple[str, ...]


@dataclass(frozen=True)
class SimilarityReport:
    exercise: str
    threshold: float
    compared: int  # students whose answers were compared
    pairs: int  # pairs compared
    flagged: tuple[Match, ...]  # at or above the threshold, highest first
    same_weights: tuple[SameWeights, ...]
    left_out: tuple[str, ...]  # students not compared, with why


def _copydetect() -> Any:
    try:
        import copydetect
    except ImportError:
        raise DeepgradeError(
            "the similarity report needs copydetect: pip install 'deepgrade[similarity]'"
        ) from None
    return copydetect


def answer_code(nb: Any, answer_ids: Sequence[str]) -> str:
    """The code of `nb`'s cells whose grade_id is one of `answer_ids`, in their order."""
    wanted = set(answer_ids)
    parts = []
    for cell in nb.cells:
        gid = notebooks.grade_id(cell)
        if cell.get("cell_type") == "code" and gid in wanted:
            parts.append(notebooks.strip_solution_markers(str(cell.get("source", ""))))
    return "\n\n".join(parts) + "\n"


def answer_ids(release: Any) -> list[str]:
    """The grade_ids of the released notebook's code answer cells."""
    found = []
    for cell in release.cells:
        gid = notebooks.grade_id(cell)
        if cell.get("cell_type") == "code" and notebooks.is_solution(cell) and gid:
            found.append(gid)
    return found


def _fingerprint(copydetect: Any, name: str, code: str, boilerplate: Any = None) -> Any:
    import io

    return copydetect.CodeFingerprint(
        f"{name}.py",
        NOISE_TOKENS,
        GUARANTEE_TOKENS - NOISE_TOKENS + 1,
        boilerplate=boilerplate,
        fp=io.StringIO(code),
    )


def compare_answers(
    answers: Sequence[Answers], boilerplate_code: str, threshold: float = THRESHOLD
) -> tuple[list[Match], int]:
    """Every pair's shared code; the pairs at or above `threshold`, and how many were compared."""
    copydetect = _copydetect()
    boilerplate = sorted(_fingerprint(copydetect, "release", boilerplate_code).hashes)
    prints = {a.student: _fingerprint(copydetect, a.student, a.code, boilerplate) for a in answers}
    flagged = []
    pairs = 0
    for first, second in itertools.combinations(sorted(prints), 2):
        pairs += 1
        _, shares, slices = copydetect.compare_files(prints[first], prints[second])
        if not any(shares) or max(shares) < threshold:  # no overlap: no slices either
            continue
        flagged.append(
            Match(
                first,
                second,
                round(float(shares[0]), 3),
                round(float(shares[1]), 3),
                prints[first].raw_code,
                prints[second].raw_code,
                tuple(zip(map(int, slices[0][0]), map(int, slices[0][1]), strict=True)),
                tuple(zip(map(int, slices[1][0]), map(int, slices[1][1]), strict=True)),
            )
        )
    flagged.sort(key=lambda m: (-m.share, m.first, m.second))
    return flagged, pairs


def artifact_digests(artifacts: Path) -> dict[str, str]:
    """sha256 of each saved artifact: of a .keras file's weights member, else of the file."""
    found = {}
    for path in sorted(artifacts.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        name = path.relative_to(artifacts).as_posix()
        digest = hashlib.sha256()
        if path.suffix == ".keras" and zipfile.is_zipfile(path):
            try:
                with zipfile.ZipFile(path) as archive:
                    info = archive.getinfo(KERAS_WEIGHTS)
                    if info.file_size > MAX_MEMBER_BYTES:
                        continue
                    with archive.open(info) as member:
                        for chunk in iter(lambda: member.read(1 << 20), b""):
                            digest.update(chunk)
            except (KeyError, zipfile.BadZipFile, OSError):
                continue
        else:
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
        found[name] = digest.hexdigest()
    return found


def same_weights(digests: Mapping[str, Mapping[str, str]]) -> list[SameWeights]:
    """Groups of students (two or more) whose artifact of one name has the same sha256."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for student, files in digests.items():
        for name, digest in files.items():
            groups[(name, digest)].append(student)
    return sorted(
        (
            SameWeights(name, digest, tuple(sorted(students)))
            for (name, digest), students in groups.items()
            if len(students) > 1
        ),
        key=lambda group: (group.name, group.students),
    )


def class_similarity(
    results: Sequence[Graded],
    *,
    exercise: str,
    release_notebook: Path,
    runs: Path,
    threshold: float = THRESHOLD,
) -> SimilarityReport:
    """The report for `exercise` from its latest results (see the module's docstring)."""
    release = notebooks.read_notebook(release_notebook)
    ids = answer_ids(release)
    if not ids:
        raise InputError(release_notebook, "no answer cells (nbgrader solution cells) to compare")
    answers: list[Answers] = []
    digests: dict[str, dict[str, str]] = {}
    left_out: list[str] = []
    for result, _ in results:
        if result.exercise != exercise:
            continue
        path = Path(result.source_path)
        try:
            data = path.read_bytes()
        except OSError:
            left_out.append(f"{result.student}: {path} is gone (grade again to compare it)")
            continue
        if hashlib.sha256(data).hexdigest() != result.content_hash:
            left_out.append(f"{result.student}: {path} changed since it was graded")
            continue
        try:
            nb = notebooks.read_notebook(path)
        except InputError as exc:
            left_out.append(f"{result.student}: {exc.problem}")
            continue
        answers.append(Answers(result.student, answer_code(nb, ids)))
        artifacts = runs / f"{result.student}-{result.content_hash[:12]}" / "artifacts"
        if artifacts.is_dir():
            digests[result.student] = artifact_digests(artifacts)
    flagged, pairs = compare_answers(answers, answer_code(release, ids), threshold)
    return SimilarityReport(
        exercise=exercise,
        threshold=threshold,
        compared=len(answers),
        pairs=pairs,
        flagged=tuple(flagged),
        same_weights=tuple(same_weights(digests)),
        left_out=tuple(left_out),
    )


def _marked(code: str, slices: Sequence[tuple[int, int]]) -> list[tuple[str, bool]]:
    """`code` cut into (text, shared?) runs, for the page to mark the shared ones."""
    runs: list[tuple[str, bool]] = []
    at = 0
    for start, end in sorted(slices):
        if start > at:
            runs.append((code[at:start], False))
        runs.append((code[max(start, at) : end], True))
        at = max(at, end)
    runs.append((code[at:], False))
    return [run for run in runs if run[0]]


def write_report(report: SimilarityReport, out: Path) -> list[Path]:
    """`out/<exercise>-similarity.html` (pairs side by side, shared code marked) and `.json`."""
    from deepgrade.feedback import html_environment

    out.mkdir(parents=True, exist_ok=True)
    page = out / f"{report.exercise}-similarity.html"
    template = html_environment().get_template("similarity.html.j2")
    pairs = [
        (m, _marked(m.first_code, m.first_slices), _marked(m.second_code, m.second_slices))
        for m in report.flagged
    ]
    page.write_text(template.render(report=report, pairs=pairs), encoding="utf-8")
    data = out / f"{report.exercise}-similarity.json"
    data.write_text(json.dumps(asdict(report), indent=1) + "\n", encoding="utf-8")
    return [page, data]
