"""Where things live: the course repository's folders and the per-user data cache.

The repository root is found from the working directory (the nearest folder holding
`autograder/` and `source/`), or set with `--root` / `DEEPGRADE_ROOT`. The cache, where data
sets and synthetic look-alikes are kept, is `DEEPGRADE_CACHE`, else `$XDG_CACHE_HOME/deepgrade`,
else `~/.cache/deepgrade`: data never goes into git.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from deepgrade.errors import DeepgradeError


@dataclass(frozen=True)
class Project:
    """The folders of one course repository (DESIGN.md's layout)."""

    root: Path

    @property
    def source(self) -> Path:
        return self.root / "source"

    @property
    def release(self) -> Path:
        return self.root / "release"

    @property
    def solutions(self) -> Path:
        return self.root / "solutions"

    @property
    def autograder(self) -> Path:
        return self.root / "autograder"

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    def exercise_names(self, include_drafts: bool = False) -> list[str]:
        """Exercises are the folders of autograder/ that hold a spec.toml; drafts (specs with
        `draft = true`, still being written) only when asked for."""
        names = []
        for spec in sorted(self.autograder.glob("*/spec.toml")):
            if include_drafts or not _is_draft(spec):
                names.append(spec.parent.name)
        return names

    @classmethod
    def find(cls, start: Path | None = None) -> Project:
        env = os.environ.get("DEEPGRADE_ROOT")
        if env:
            return cls(Path(env).resolve())
        here = (start or Path.cwd()).resolve()
        for candidate in (here, *here.parents):
            if (candidate / "autograder").is_dir() and (candidate / "source").is_dir():
                return cls(candidate)
        raise DeepgradeError(
            f"{here}: not inside a deepgrade course repository (no autograder/ and source/ "
            "folders here or above); pass --root or set DEEPGRADE_ROOT"
        )


def _is_draft(spec: Path) -> bool:
    try:
        return bool(tomllib.loads(spec.read_text(encoding="utf-8")).get("draft", False))
    except (OSError, tomllib.TOMLDecodeError):
        return False  # a broken spec is not hidden: loading it reports the problem


def cache_dir() -> Path:
    """The per-user cache of data sets, models and synthetic look-alikes."""
    env = os.environ.get("DEEPGRADE_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "deepgrade"
