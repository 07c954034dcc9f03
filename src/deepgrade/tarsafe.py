"""Unpacking stage 1's result tar with the guarantees of tarfile's "data" filter, everywhere.

Python 3.11.4+ ships `tarfile.data_filter`; Debian 12's own python3 (3.11.2) does not, and its
`extractall` has no `filter` argument at all. The rules are ours either way (a member must be a
regular file or folder, under an allowed name, with a plain relative path, once, and within the
size cap); where `data_filter` exists it runs too, and where it does not, we write the members
ourselves: folders 0755, files with no special bits, never through a link, never twice.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from collections.abc import Collection
from pathlib import Path

# Whatever a tar member says, files are written with at most these bits (no setuid, no o+w).
FILE_MODE_MASK = 0o755
DIR_MODE = 0o755


class Refused(Exception):
    """A member that will not be extracted, with the reason."""


class _Rules:
    """Which members may be extracted into `dest`, and how much in all."""

    def __init__(self, files: Collection[str], tree: str, max_bytes: int) -> None:
        self.files, self.tree, self.max_bytes = frozenset(files), tree, max_bytes
        self.total = 0
        self.seen: set[str] = set()

    def check(self, member: tarfile.TarInfo) -> str:
        """The member's normalised relative name; Refused when it may not be extracted."""
        name = member.name
        parts = name.split("/")
        if name.startswith("/") or any(part in ("", ".", "..") for part in parts):
            raise Refused("not a plain relative path")
        if any(ord(ch) < 32 for ch in name):
            raise Refused("control characters in the name")
        in_tree = parts[0] == self.tree
        if member.isdir():
            if not in_tree:
                raise Refused("a folder outside the allowed names")
        elif member.isreg():
            if not ((in_tree and len(parts) > 1) or name in self.files):
                raise Refused("a file outside the allowed names")
        else:
            raise Refused("not a regular file or folder (links and devices are refused)")
        if name in self.seen:
            raise Refused("a second member with the same name")
        if self.total + member.size > self.max_bytes:
            raise Refused("over the size limit")
        self.seen.add(name)
        self.total += member.size
        return name


def _has_data_filter() -> bool:
    return hasattr(tarfile, "data_filter")


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path, name: str) -> None:
    """Create one checked member under `dest` without following any link on the way."""
    target = dest.joinpath(*name.split("/"))
    parent = target.parent if member.isreg() else target
    for folder in [*reversed(parent.relative_to(dest).parents), parent.relative_to(dest)]:
        path = dest / folder
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise Refused("a path through something that is not a folder")
        path.mkdir(mode=DIR_MODE, exist_ok=True)
    if not member.isreg():
        return
    mode = member.mode & FILE_MODE_MASK | 0o600
    if not member.mode & 0o100:
        mode &= ~0o111
    source = tar.extractfile(member)
    if source is None:
        raise Refused("no data")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(target, flags, mode)
    with source, os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(source, out)
    os.chmod(target, mode)  # the umask may have taken bits we meant to keep; none are added


def extract(
    tar_path: Path,
    dest: Path,
    *,
    files: Collection[str],
    tree: str,
    max_bytes: int,
) -> list[str]:
    """Extract the allowed members of `tar_path` into `dest`; a problem line per refusal.

    Allowed: the regular files named in `files` at the top, and regular files and folders
    under the folder `tree`; at most `max_bytes` of file data in all. A damaged or truncated
    tar keeps what came before the damage and adds a problem line.
    """
    rules = _Rules(files, tree, max_bytes)
    problems: list[str] = []

    def allowed(member: tarfile.TarInfo, where: str) -> tarfile.TarInfo | None:
        try:
            rules.check(member)
            return tarfile.data_filter(member, where)
        except Refused as exc:
            problems.append(f"refused {member.name!r}: {exc}")
        except tarfile.TarError as exc:  # data_filter's FilterError
            problems.append(f"refused {member.name!r}: {exc}")
        return None

    try:
        with tarfile.open(tar_path, "r:") as tar:
            if _has_data_filter():
                tar.extractall(dest, filter=allowed)
            else:
                for member in tar:
                    try:
                        _write_member(tar, member, dest, rules.check(member))
                    except Refused as exc:
                        problems.append(f"refused {member.name!r}: {exc}")
                    except tarfile.TarError:
                        raise  # a damaged stream: stop here, keep what came before
                    except OSError as exc:
                        problems.append(f"could not write {member.name!r}: {exc.strerror}")
    except (OSError, tarfile.TarError) as exc:
        problems.append(f"incomplete result stream: {exc}")
    return problems
