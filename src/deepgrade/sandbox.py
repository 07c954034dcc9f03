"""The isolation command: a bubblewrap sandbox that sees only what grading needs.

Student code runs with no network, its own PID/IPC/UTS/user namespaces, no capabilities, no way
to create further namespaces, a read-only system and interpreter, a fresh size-capped HOME and
/tmp, and only the mounts a caller lists (data read-only, a capped artifact folder). The course
repository, the cache, the gradebook and other submissions are never mounted: the interpreter is
bound by its exact prefixes, not by the folder it happens to live in.

/etc is bound file by file from an allow-list rather than whole: a grading host's /etc holds
secrets (shadow, SSH host keys, TLS private keys) that a notebook could print into its output.
"""

from __future__ import annotations

import functools
import os
import shutil
import site
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType

from deepgrade.errors import SandboxUnavailable

SANDBOX_HOME = "/home/grader"
MIB = 1024 * 1024
# Fresh tmpfs mounts every sandbox gets; a SandboxSpec.tmpfs entry with the same dest wins.
DEFAULT_TMPFS: Mapping[str, int] = MappingProxyType(
    {"/tmp": 512 * MIB, SANDBOX_HOME: 256 * MIB, "/dev/shm": 64 * MIB}
)
# Top-level system folders: bound read-only, or recreated as the same symlink (usrmerge hosts).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What Python, TensorFlow, matplotlib and the dynamic loader read from /etc; nothing secret.
ETC_ALLOWED = (
    "alternatives",
    "fonts",
    "gai.conf",
    "group",
    "host.conf",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "passwd",
    "protocols",
    "services",
    "timezone",
)


@dataclass(frozen=True)
class Mount:
    """One path made visible inside the sandbox.

    With symlink=True nothing is bound: dest is created as a symlink whose target is the text
    of `host` (e.g. /lib -> usr/lib), so usrmerge hosts look the same inside as outside.
    """

    host: Path
    dest: str
    writable: bool = False
    symlink: bool = False


@dataclass(frozen=True)
class SandboxSpec:
    """Everything one sandbox sees besides the defaults bwrap_argv always adds."""

    mounts: tuple[Mount, ...] = ()
    tmpfs: tuple[tuple[str, int], ...] = ()  # (dest, size in bytes): writable, size-capped
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    chdir: str = SANDBOX_HOME
    network: bool = False
    gpu_devices: tuple[str, ...] = ()  # device nodes passed through, e.g. /dev/nvidia0


def _depth(dest: str) -> int:
    return len(PurePosixPath(dest).parts)


def bwrap_argv(spec: SandboxSpec, command: Sequence[str], bwrap: str) -> list[str]:
    """The bwrap command line running `command` inside the sandbox `spec` describes.

    Mounts are applied parents first (a bind under /tmp survives the /tmp tmpfs), and the root
    is remounted read-only last, so the only writable places are the listed tmpfs and binds.
    """
    argv = [bwrap, "--unshare-all", "--unshare-user", "--disable-userns"]
    if spec.network:
        argv.append("--share-net")
    argv += ["--die-with-parent", "--new-session", "--cap-drop", "ALL", "--clearenv"]
    env = {"HOME": SANDBOX_HOME, **spec.env}
    for key, value in env.items():
        argv += ["--setenv", key, value]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    ops: list[tuple[str, list[str]]] = []
    sizes = {**DEFAULT_TMPFS, **dict(spec.tmpfs)}
    for dest, size in sizes.items():
        ops.append((dest, ["--size", str(size), "--tmpfs", dest]))
    for mount in spec.mounts:
        if mount.symlink:
            ops.append((mount.dest, ["--symlink", str(mount.host), mount.dest]))
        else:
            kind = "--bind" if mount.writable else "--ro-bind"
            ops.append((mount.dest, [kind, str(mount.host), mount.dest]))
    for device in spec.gpu_devices:
        ops.append((device, ["--dev-bind", device, device]))
    for _, args in sorted(ops, key=lambda op: _depth(op[0])):  # stable: tmpfs before binds
        argv += args
    argv += ["--remount-ro", "/", "--chdir", spec.chdir, "--", *command]
    return argv


def _inside(path: Path, others: Sequence[Path]) -> bool:
    return any(path == other or other in path.parents for other in others)


def python_mounts() -> tuple[Mount, ...]:
    """Read-only mounts for the system and this interpreter, and nothing else.

    Binds sys.prefix (the venv), the base interpreter's prefix and the site-packages folders
    exactly: a venv inside the course repository exposes only the venv, never the repository.
    """
    mounts: list[Mount] = []
    for name in SYSTEM_DIRS:
        path = Path(name)
        if path.is_symlink():
            mounts.append(Mount(Path(os.readlink(path)), name, symlink=True))
        elif path.is_dir():
            mounts.append(Mount(path, name))
    for name in ETC_ALLOWED:
        path = Path("/etc") / name
        if path.exists():
            mounts.append(Mount(path, str(path)))
    bound = [Path(m.dest) for m in mounts if not m.symlink]
    candidates = [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix]
    candidates += site.getsitepackages()
    cwd = Path.cwd()
    for text in dict.fromkeys(candidates):  # ordered, unique
        path = Path(os.path.abspath(text))
        if not path.is_dir() or _inside(path, bound):
            continue
        if cwd == path or path in cwd.parents:
            raise SandboxUnavailable(
                f"the Python environment {path} contains the working directory {cwd}; binding "
                "it would expose the course repository to student code. Use a virtual "
                "environment outside the repository or at its .venv."
            )
        mounts.append(Mount(path, str(path)))
        bound.append(path)
    return tuple(mounts)


def _probe(bwrap: str) -> str | None:
    """None when `bwrap` can build our sandbox here, else why not (its own message)."""
    command = [sys.executable, "-c", "pass"]
    argv = bwrap_argv(SandboxSpec(mounts=python_mounts()), command, bwrap)
    try:
        done = subprocess.run(argv, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{bwrap} could not run: {exc}"
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        return f"{bwrap} cannot create the sandbox here: {message[-1] if message else done}"
    return None


@functools.cache
def _bwrap_status() -> tuple[str | None, str]:
    candidate = os.environ.get("DEEPGRADE_BWRAP") or shutil.which("bwrap")
    if not candidate:
        return None, "bubblewrap (bwrap) is not installed"
    problem = _probe(candidate)
    return (None, problem) if problem else (candidate, "")


def find_bwrap() -> str | None:
    """Path of a bwrap that can create our namespaces here (probed once per process).

    `DEEPGRADE_BWRAP` names a bwrap other than the one on PATH.
    """
    return _bwrap_status()[0]


def unavailable_reason() -> str:
    """Why find_bwrap() returned None ("" when the sandbox works)."""
    return _bwrap_status()[1]
