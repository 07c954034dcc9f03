"""The isolation command: a bubblewrap sandbox that sees only what grading needs.

Student code runs with no network, its own PID/IPC/UTS/user namespaces, no capabilities, no way
to create further namespaces (bwrap >= 0.8's --disable-userns, or a seccomp filter on older
releases such as Ubuntu 22.04's 0.6), a read-only system and interpreter, a fresh size-capped
HOME and /tmp, and only the mounts a caller lists (data read-only, a capped artifact folder).
The course repository, the cache, the gradebook and other submissions are never mounted: the
interpreter is bound by its exact prefixes, not by the folder it happens to live in.

/etc is bound file by file from an allow-list rather than whole: a grading host's /etc holds
secrets (shadow, SSH host keys, TLS private keys) that a notebook could print into its output.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import site
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType

from deepgrade import seccomp
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
DISABLE_USERNS_SINCE = (0, 8, 0)  # the bubblewrap release that added --disable-userns
GUARD_FLAG, GUARD_SECCOMP = "--disable-userns", "seccomp filter"
SECCOMP_FD = 9  # the filter's descriptor: the shell wrapper opens it just before bwrap starts


@dataclass(frozen=True)
class Bwrap:
    """A bubblewrap binary, its version, and how it stops nested user namespaces.

    `userns_guard` is GUARD_FLAG (bwrap >= 0.8) or GUARD_SECCOMP: then `seccomp_file` holds the
    compiled filter, handed to bwrap on SECCOMP_FD.
    """

    path: str
    version: tuple[int, ...] | None = None  # None: `bwrap --version` said nothing we read
    userns_guard: str = GUARD_FLAG
    seccomp_file: str = ""

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version)) if self.version else "unknown"


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
    # device nodes the sandbox may open, (host path, path inside), e.g. a GPU (see nvidia.py)
    devices: tuple[tuple[str, str], ...] = ()


def _depth(dest: str) -> int:
    return len(PurePosixPath(dest).parts)


def bwrap_argv(spec: SandboxSpec, command: Sequence[str], bwrap: str | Bwrap) -> list[str]:
    """The bwrap command line running `command` inside the sandbox `spec` describes.

    Mounts are applied parents first (a bind under /tmp survives the /tmp tmpfs), and the root
    is remounted read-only last, so the only writable places are the listed tmpfs and binds.
    A plain path means a bwrap with --disable-userns; a Bwrap with the seccomp guard gets the
    filter through /bin/sh, which opens it on SECCOMP_FD and execs bwrap (no descriptor has to
    survive the caller's close_fds).
    """
    tool = bwrap if isinstance(bwrap, Bwrap) else Bwrap(bwrap)
    argv = [tool.path, "--unshare-all", "--unshare-user"]
    if tool.userns_guard == GUARD_SECCOMP:
        argv += ["--seccomp", str(SECCOMP_FD)]
    else:
        argv.append(GUARD_FLAG)
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
    for host, dest in spec.devices:
        ops.append((dest, ["--dev-bind", host, dest]))
    for _, args in sorted(ops, key=lambda op: _depth(op[0])):  # stable: tmpfs before binds
        argv += args
    argv += ["--remount-ro", "/", "--chdir", spec.chdir, "--", *command]
    if tool.userns_guard == GUARD_SECCOMP:
        opener = f'exec "$@" {SECCOMP_FD}<"$0"'
        return ["/bin/sh", "-c", opener, tool.seccomp_file, *argv]
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


def _probe(bwrap: Bwrap) -> str | None:
    """None when `bwrap` can build our sandbox here, else why not (its own message)."""
    command = [sys.executable, "-c", "pass"]
    argv = bwrap_argv(SandboxSpec(mounts=python_mounts()), command, bwrap)
    try:
        done = subprocess.run(argv, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{bwrap.path} could not run: {exc}"
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        return f"{bwrap.path} cannot create the sandbox here: {message[-1] if message else done}"
    return None


def bwrap_version(path: str) -> tuple[int, ...] | None:
    """The version `path --version` reports ("bubblewrap 0.6.1" -> (0, 6, 1)), None if none."""
    try:
        done = subprocess.run([path, "--version"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(rb"(\d+)\.(\d+)(?:\.(\d+))?", done.stdout)
    if done.returncode != 0 or found is None:
        return None
    return tuple(int(part) for part in found.groups(b"0"))


@functools.cache
def _filter_file() -> str:
    """The compiled user-namespace filter in a private folder, removed when deepgrade exits."""
    folder = tempfile.mkdtemp(prefix="deepgrade-seccomp-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = Path(folder) / "no-userns.bpf"
    path.write_bytes(seccomp.userns_filter_bpf())
    return str(path)


def describe_bwrap(path: str) -> tuple[Bwrap | None, str]:
    """`path` with its version and user-namespace guard, or None and why it cannot be used."""
    version = bwrap_version(path)
    if version is not None and version >= DISABLE_USERNS_SINCE:
        return Bwrap(path, version, GUARD_FLAG), ""
    missing = seccomp.unavailable_reason()
    if missing:
        shown = ".".join(map(str, version)) if version else "of unknown version"
        return None, (
            f"bubblewrap {shown} ({path}) has no --disable-userns (added in "
            f"{'.'.join(map(str, DISABLE_USERNS_SINCE))}) and {missing}, so sandboxed code "
            "could create user namespaces; install bubblewrap 0.8.0 or later, or libseccomp2"
        )
    try:
        return Bwrap(path, version, GUARD_SECCOMP, _filter_file()), ""
    except OSError as exc:
        return None, f"could not build the seccomp filter bubblewrap {path} needs: {exc}"


@functools.cache
def _bwrap_status() -> tuple[Bwrap | None, str]:
    candidate = os.environ.get("DEEPGRADE_BWRAP") or shutil.which("bwrap")
    if not candidate:
        return None, "bubblewrap (bwrap) is not installed"
    tool, problem = describe_bwrap(candidate)
    if tool is None:
        return None, problem
    problem = _probe(tool) or ""
    return (None, problem) if problem else (tool, "")


def sandbox_status() -> tuple[Bwrap | None, str]:
    """The usable bwrap (or None) and why not ("" when usable), probed once per process."""
    return _bwrap_status()


def find_bwrap() -> Bwrap | None:
    """The bwrap that can create our namespaces here (probed once per process).

    `DEEPGRADE_BWRAP` names a bwrap other than the one on PATH.
    """
    return _bwrap_status()[0]


def unavailable_reason() -> str:
    """Why find_bwrap() returned None ("" when the sandbox works)."""
    return _bwrap_status()[1]
