"""What this host enforces, resolved once into a typed value: sandbox, cgroups, limits, GPUs.

Grading student code is only safe when three things hold: bubblewrap isolates it, its memory is
bounded, and so is its number of processes (a fork bomb otherwise reaches the host). Which
mechanism provides each depends on the host:

- memory: a cgroup (v1 memory controller, or v2 `memory.max` in a subtree we may write), else
  RLIMIT_AS per process, which CUDA cannot live with (no memory limit with --gpus);
- processes: a pids cgroup, else RLIMIT_NPROC for the sandbox's uid, which the kernel ignores
  for root;
- CPU time: cpuacct (v1) or cpu.stat (v2) of the run's cgroup, else not measured.

On cgroup v2 a non-root user can only use a subtree delegated to them, and a cgroup with
processes in it cannot hand controllers to children ("no internal processes"): the grader's
processes move into a leaf (LEAF_NAME) first, and runs get cgroups beside it. `resolve` decides
from files only (the cgroup tree, /proc/self/cgroup, /dev) and never changes anything, so
`deepgrade doctor` can run anywhere; `limits.prepare` does the moving when grading starts.
"""

from __future__ import annotations

import functools
import glob
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepgrade import sandbox

CGROUP_ROOT = Path("/sys/fs/cgroup")
LEAF_NAME = "deepgrade-grader"  # v2: where the grader's own processes move
RUNS_NAME = "deepgrade"  # the folder holding one cgroup per run
V1_CONTROLLERS = ("memory", "pids", "cpuacct")
V2_NEEDED = ("memory", "pids")

MEMORY_CGROUP_V1, MEMORY_CGROUP_V2 = "cgroup v1 memory", "cgroup v2 memory.max"
MEMORY_RLIMIT_AS, NOT_LIMITED = "RLIMIT_AS per process (CPU only)", "not limited"
PIDS_CGROUP_V1, PIDS_CGROUP_V2 = "cgroup v1 pids", "cgroup v2 pids.max"
PIDS_RLIMIT_NPROC = "RLIMIT_NPROC for the sandbox's uid"
CPU_CGROUP_V1, CPU_CGROUP_V2 = "cgroup v1 cpuacct.usage", "cgroup v2 cpu.stat"

DELEGATE_FIX = (
    "run deepgrade inside a delegated systemd scope, e.g. `systemd-run --user --scope -p "
    "Delegate=yes -- deepgrade grade ...` (deepgrade then moves itself into a leaf cgroup and "
    "limits each run), or run it as root"
)
CONTAINER_FIX = (
    "in a container, give it a writable cgroup: docker/podman `--cgroupns=private` with "
    "/sys/fs/cgroup mounted read-write (or rootless podman, which delegates one)"
)


@dataclass(frozen=True)
class Problem:
    """One piece of protection this host lacks: why, and how to fix the host."""

    piece: str  # "sandbox", "memory", "processes", "memory with --gpus", "cpu time", "gpu"
    why: str
    fix: str
    blocking: bool = True  # False: worth knowing, grading is still safe

    def to_json(self) -> dict[str, Any]:
        return {"piece": self.piece, "why": self.why, "fix": self.fix, "blocking": self.blocking}


@dataclass(frozen=True)
class CgroupPlan:
    """Where each run's cgroups go: `parents[controller]/deepgrade/run-*`.

    v1 names one parent per controller; v2 one parent for all. `leaf` (v2 only) is where the
    processes of the parent must move before the parent can enable memory and pids.
    """

    version: int
    parents: Mapping[str, Path]
    leaf: Path | None = None


@dataclass(frozen=True)
class HostLimits:
    """What this host enforces for a sandboxed run, and what it lacks."""

    uid: int
    sandbox: sandbox.Bwrap | None
    sandbox_problem: str
    cgroup_version: int | None  # 1, 2, or None: no cgroup file system
    cgroup_controllers: tuple[str, ...]  # what the hierarchy offers (mounted / listed)
    cgroup: CgroupPlan | None  # None: no cgroup we may write
    memory: str  # one of MEMORY_* or NOT_LIMITED
    processes: str  # one of PIDS_* or NOT_LIMITED
    cpu_time: str  # one of CPU_* or NOT_LIMITED
    gpu_devices: tuple[str, ...]
    problems: tuple[Problem, ...] = field(default=())

    def memory_limited(self, *, gpu: bool) -> bool:
        if self.memory == MEMORY_RLIMIT_AS:
            return not gpu
        return self.memory != NOT_LIMITED

    def refusal(self, *, sandboxed: bool = True, gpu: bool = False) -> str:
        """Why grading here is unsafe ("" when it is safe), with how to fix each piece."""
        pieces = {"memory", "processes"} | ({"sandbox"} if sandboxed else set())
        if gpu:
            pieces.add("memory with --gpus")
        lines = [
            f"{p.piece}: {p.why}; to fix: {p.fix}"
            for p in self.problems
            if p.blocking and p.piece in pieces
        ]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        tool = self.sandbox
        return {
            "uid": self.uid,
            "sandbox": None
            if tool is None
            else {
                "path": tool.path,
                "version": tool.version_text,
                "userns_guard": tool.userns_guard,
            },
            "sandbox_problem": self.sandbox_problem,
            "cgroup_version": self.cgroup_version,
            "cgroup_controllers": list(self.cgroup_controllers),
            "cgroup_parents": {}
            if self.cgroup is None
            else {k: str(v) for k, v in self.cgroup.parents.items()},
            "cgroup_leaf": None
            if self.cgroup is None or not self.cgroup.leaf
            else str(self.cgroup.leaf),
            "memory": self.memory,
            "processes": self.processes,
            "cpu_time": self.cpu_time,
            "gpu_devices": list(self.gpu_devices),
            "problems": [p.to_json() for p in self.problems],
            "safe": not self.refusal(),
            "safe_with_gpus": not self.refusal(gpu=True),
        }


Writable = Callable[[Path], bool]


def _os_writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def own_cgroups(text: str) -> dict[str, str]:
    """/proc/self/cgroup as {controller: path}; the v2 entry is under ""."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        names = parts[1].split(",") if parts[1] else [""]
        for name in names:
            found[name] = parts[2]
    return found


def nproc_enforced(uid: int, uid_map: str) -> bool:
    """The kernel ignores RLIMIT_NPROC for the initial namespace's root (uid 0 mapped to 0)."""
    if uid != 0:
        return True
    for line in uid_map.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0] == "0":
            return fields[1] != "0"
    return False


def _v1_parent(root: Path, controller: str, own: str, writable: Writable) -> Path | None:
    """Our own cgroup in the controller's hierarchy, else its root, else a runs folder an
    administrator created for us (mount/deepgrade, chowned)."""
    mount = root / controller
    if not (mount / "cgroup.procs").exists():
        return None
    for parent in dict.fromkeys([mount / own.lstrip("/"), mount]):
        if parent.is_dir() and (writable(parent) or writable(parent / RUNS_NAME)):
            return parent
    return None


def _plan_v1(root: Path, own: Mapping[str, str], writable: Writable) -> CgroupPlan | None:
    parents = {}
    for controller in V1_CONTROLLERS:
        parent = _v1_parent(root, controller, own.get(controller, "/"), writable)
        if parent is not None:
            parents[controller] = parent
    return CgroupPlan(1, parents) if parents else None


def _words(path: Path) -> set[str]:
    return set(_read(path).split())


def _plan_v2(root: Path, own: str, writable: Writable) -> tuple[CgroupPlan | None, str]:
    """Where runs' cgroups can go on v2, or None and why not."""
    needed = set(V2_NEEDED)
    current = root / own.lstrip("/")
    if current.name == LEAF_NAME:  # an earlier grader (maybe us) already moved in here
        parent = current.parent
        if needed <= _words(parent / "cgroup.subtree_control") and writable(parent):
            return CgroupPlan(2, dict.fromkeys(V2_NEEDED, parent)), ""
    if needed <= _words(current / "cgroup.controllers") and writable(current):
        # Enabled already, or the root cgroup (a VM's or a cgroupns container's), which may
        # hold processes and children at once: no leaf, and its kernel threads cannot move.
        at_root = current == root and writable(current / "cgroup.subtree_control")
        if at_root or needed <= _words(current / "cgroup.subtree_control"):
            return CgroupPlan(2, dict.fromkeys(V2_NEEDED, current)), ""
        if writable(current / "cgroup.procs") and writable(current / "cgroup.subtree_control"):
            plan = CgroupPlan(2, dict.fromkeys(V2_NEEDED, current), leaf=current / LEAF_NAME)
            return plan, ""
    enabled = needed <= _words(root / "cgroup.subtree_control")
    if enabled and writable(root) and writable(root / "cgroup.procs"):
        return CgroupPlan(2, dict.fromkeys(V2_NEEDED, root)), ""
    missing = needed - _words(current / "cgroup.controllers")
    if missing:
        why = (
            f"your cgroup {own} does not offer {' and '.join(sorted(missing))} "
            "(the controllers are not delegated to it)"
        )
    else:
        why = f"your cgroup {own} is not writable by uid {os.getuid()} (not delegated to you)"
    return None, why


def _gpu_problem(devices: tuple[str, ...]) -> Problem | None:
    if not devices:
        return Problem(
            "gpu",
            "no NVIDIA device nodes (/dev/nvidia*) on this host",
            "only needed for --gpus: install the NVIDIA driver (or pass the devices into the "
            "container)",
            blocking=False,
        )
    closed = [d for d in devices if not os.access(d, os.R_OK | os.W_OK)]
    if closed:
        return Problem(
            "gpu",
            f"uid {os.getuid()} cannot open {', '.join(closed)}, so a sandbox could not either",
            "add the grading user to the group owning the devices (often `video`)",
            blocking=False,
        )
    return None


def resolve(
    *,
    cgroup_root: Path = CGROUP_ROOT,
    proc_cgroup: str | None = None,
    uid: int | None = None,
    uid_map: str | None = None,
    writable: Writable = _os_writable,
    bwrap: tuple[sandbox.Bwrap | None, str] | None = None,
    dev: Path = Path("/dev"),
) -> HostLimits:
    """Decide what this host enforces; every input can be replaced for tests."""
    uid = os.getuid() if uid is None else uid
    if proc_cgroup is None:
        proc_cgroup = _read(Path("/proc/self/cgroup"))
    if uid_map is None:
        uid_map = _read(Path("/proc/self/uid_map"))
    tool, tool_problem = bwrap if bwrap is not None else sandbox.sandbox_status()
    own = own_cgroups(proc_cgroup)
    problems: list[Problem] = []
    if tool is None:
        fix = (
            "apt-get install bubblewrap (0.8.0 or later; older releases need libseccomp2)"
            if "not installed" in tool_problem
            else "install bubblewrap 0.8.0 or later (or libseccomp2 with an older one) and allow "
            "unprivileged user namespaces (Ubuntu 24.04: an AppArmor profile for bwrap, or "
            "sysctl kernel.apparmor_restrict_unprivileged_userns=0; containers: let them "
            "create namespaces)"
        )
        problems.append(Problem("sandbox", tool_problem, fix))

    version: int | None = None
    controllers: tuple[str, ...] = ()
    plan: CgroupPlan | None = None
    cgroup_why = "no cgroup file system is mounted at " + str(cgroup_root)
    cgroup_fix = "mount cgroups (any systemd host has them); " + CONTAINER_FIX
    v2_controllers = _words(cgroup_root / "cgroup.controllers")
    if (cgroup_root / "cgroup.controllers").is_file():
        version, controllers = 2, tuple(sorted(v2_controllers))
        plan, cgroup_why = _plan_v2(cgroup_root, own.get("", "/"), writable)
        cgroup_fix = DELEGATE_FIX + "; " + CONTAINER_FIX
    elif any((cgroup_root / c / "cgroup.procs").exists() for c in V1_CONTROLLERS):
        version = 1
        controllers = tuple(
            c for c in V1_CONTROLLERS if (cgroup_root / c / "cgroup.procs").exists()
        )
        plan = _plan_v1(cgroup_root, own, writable)
        cgroup_why = f"the cgroup v1 controllers under {cgroup_root} are read-only for uid {uid}"
        cgroup_fix = (
            "run as root, or let an administrator create a runs folder for you: sudo mkdir "
            f"{cgroup_root}/{{memory,pids,cpuacct}}/{RUNS_NAME} && sudo chown -R $USER "
            f"{cgroup_root}/{{memory,pids,cpuacct}}/{RUNS_NAME}; " + CONTAINER_FIX
        )
    parents = plan.parents if plan is not None else {}

    if "memory" in parents:
        memory = MEMORY_CGROUP_V1 if version == 1 else MEMORY_CGROUP_V2
    else:
        memory = MEMORY_RLIMIT_AS
        problems.append(
            Problem(
                "memory with --gpus",
                f"{cgroup_why}, and RLIMIT_AS (the fallback) breaks CUDA",
                cgroup_fix,
            )
        )
        problems.append(
            Problem(
                "memory",
                f"{cgroup_why}: memory is bounded per process by RLIMIT_AS, not per run",
                cgroup_fix,
                blocking=False,
            )
        )
    if "pids" in parents:
        processes = PIDS_CGROUP_V1 if version == 1 else PIDS_CGROUP_V2
    elif nproc_enforced(uid, uid_map):
        processes = PIDS_RLIMIT_NPROC
    else:
        processes = NOT_LIMITED
        problems.append(
            Problem(
                "processes",
                f"{cgroup_why}, and the kernel ignores RLIMIT_NPROC for root, so a fork bomb "
                "would reach the host",
                cgroup_fix + "; or grade as an ordinary user (RLIMIT_NPROC then holds)",
            )
        )
    cpu = {"cpuacct": CPU_CGROUP_V1, "memory": CPU_CGROUP_V2}
    key = "cpuacct" if version == 1 else "memory"
    cpu_time = cpu[key] if key in parents else NOT_LIMITED
    if cpu_time == NOT_LIMITED:
        problems.append(
            Problem(
                "cpu time",
                "no cgroup to read a run's CPU time from; time limits are wall-clock only",
                cgroup_fix,
                blocking=False,
            )
        )
    devices = tuple(sorted(glob.glob(str(dev / "nvidia*"))))
    gpu = _gpu_problem(devices)
    if gpu is not None:
        problems.append(gpu)
    return HostLimits(
        uid=uid,
        sandbox=tool,
        sandbox_problem=tool_problem,
        cgroup_version=version,
        cgroup_controllers=controllers,
        cgroup=plan,
        memory=memory,
        processes=processes,
        cpu_time=cpu_time,
        gpu_devices=devices,
        problems=tuple(problems),
    )


@functools.cache
def current() -> HostLimits:
    """This host, resolved once per process."""
    return resolve()


def describe(host: HostLimits) -> list[str]:
    """`deepgrade doctor`'s text: one line per piece, then each problem with its fix."""
    tool = host.sandbox
    if tool is None:
        lines = [f"sandbox:     MISSING ({host.sandbox_problem})"]
    else:
        lines = [
            f"sandbox:     bubblewrap {tool.version_text} at {tool.path}; "
            f"nested user namespaces blocked by {tool.userns_guard}"
        ]
    if host.cgroup_version is None:
        lines.append("cgroups:     none")
    else:
        where = ""
        if host.cgroup is not None:
            places = sorted({str(p) for p in host.cgroup.parents.values()})
            where = f"; runs' cgroups under {', '.join(places)}"
            if host.cgroup.leaf is not None:
                where += f" (its processes move into {host.cgroup.leaf} first)"
        else:
            where = "; none writable"
        shown = " ".join(host.cgroup_controllers) or "none"
        lines.append(f"cgroups:     v{host.cgroup_version} (controllers: {shown}){where}")
    root_note = " (running as root)" if host.uid == 0 else f" (uid {host.uid})"
    cpu = "not measured" if host.cpu_time == NOT_LIMITED else f"measured by {host.cpu_time}"
    gpu_memory = "not limited" if not host.memory_limited(gpu=True) else host.memory
    lines += [
        f"memory:      {host.memory}; with --gpus: {gpu_memory}",
        f"processes:   {host.processes}{root_note}",
        f"cpu time:    {cpu}",
    ]
    for problem in host.problems:
        kind = "PROBLEM" if problem.blocking else "note"
        lines.append(f"{kind} ({problem.piece}): {problem.why}")
        lines.append(f"    fix: {problem.fix}")
    cpu_refusal, gpu_refusal = host.refusal(), host.refusal(gpu=True)
    if not cpu_refusal:
        lines.append(
            "grading can run safely here" + ("" if not gpu_refusal else " (not with --gpus)")
        )
    else:
        lines.append("grading here is NOT safe: `deepgrade grade` refuses (see PROBLEM lines)")
    return lines
