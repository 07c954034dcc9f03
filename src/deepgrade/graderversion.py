"""Which grader made a result: a hash of everything that decides a grade for one exercise.

A result is only as good as the grader that made it. When an instructor fixes a check, changes
a message or a threshold, the results made before are outdated: `grade` says how many, and
`regrade --outdated` re-grades exactly those (their submissions' content did not change, so the
content-hash cache alone would never notice). What counts: every file of the exercise's
autograder folder except its documentation and the flawed samples (README.md, samples.toml,
which never reach a grade), the released notebook (its locked cells are what tampering is
judged against) and the engine's version.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from deepgrade import __version__

NOT_GRADING = frozenset({"README.md", "samples.toml"})


def _grading_files(folder: Path) -> list[Path]:
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and path.name not in NOT_GRADING
        and "__pycache__" not in path.parts
        and not path.name.startswith(".")
    )


def grader_version(autograder_folder: Path, release_notebook: Path) -> str:
    """A short stable id of the grader of one exercise (same files, same id, on any host)."""
    digest = hashlib.sha256(f"deepgrade {__version__}\n".encode())
    for path in _grading_files(autograder_folder):
        digest.update(path.relative_to(autograder_folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    if release_notebook.is_file():
        digest.update(b"release\0" + hashlib.sha256(release_notebook.read_bytes()).digest())
    return digest.hexdigest()[:16]
