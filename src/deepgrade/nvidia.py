"""The host's NVIDIA GPUs, read from the driver's files, and the part of them one sandbox gets.

CUDA finds GPUs through the kernel driver: /proc/driver/nvidia/gpus/<PCI bus id>/information
names each GPU's model, UUID and device minor (its /dev/nvidiaN); every CUDA process also
opens /dev/nvidiactl and /dev/nvidia-uvm (unified memory: without it cuInit fails and
TensorFlow quietly trains on the CPU). A sandbox gets exactly one GPU, as NVIDIA's container
toolkit does it: that GPU's node, the control nodes, and a /proc/driver/nvidia of its own that
lists only that GPU, all read-only but the nodes. The other GPUs' nodes do not exist inside, so
a student who changes CUDA_VISIBLE_DEVICES finds nothing to open.

Everything is read from files under roots a test can replace (a fake tree), and nothing here
changes the host except `create_missing_nodes`, which runs the driver's own nvidia-modprobe.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from deepgrade.errors import DeepgradeError
from deepgrade.sandbox import Mount

PROC = Path("/proc/driver/nvidia")
DEV = Path("/dev")
SYS_PCI = Path("/sys/bus/pci/devices")
# Opened by every CUDA process; nvidia-uvm-tools only by profilers, passed when present.
REQUIRED_CONTROL = ("nvidiactl", "nvidia-uvm")
OPTIONAL_CONTROL = ("nvidia-uvm-tools",)
DRIVER_FILES = ("version", "params", "registry")  # under /proc/driver/nvidia, read-only
SYS_FILES = ("numa_node", "local_cpulist")  # what TensorFlow and NCCL read about the device
MASK_BYTES = 64 * 1024  # the tmpfs that replaces /proc/driver/nvidia inside: holds binds only
_FIELD = re.compile(r"^\s*([A-Za-z][A-Za-z ]*?)\s*:\s*(.*?)\s*$")


class GpuError(DeepgradeError):
    """A GPU was asked for and cannot be given: unknown id, missing driver nodes."""


@dataclass(frozen=True)
class Gpu:
    """One GPU as the driver lists it. `index` is nvidia-smi's (PCI bus order)."""

    index: int
    bus_id: str  # "0000:17:00.0", the folder name under /proc/driver/nvidia/gpus
    minor: int  # /dev/nvidia<minor>
    uuid: str  # "GPU-...", "" when the driver does not say
    model: str = ""

    @property
    def node(self) -> str:
        return f"nvidia{self.minor}"

    @property
    def label(self) -> str:
        """How the instructor names it: the index, with the model when known."""
        return f"GPU {self.index}" + (f" ({self.model})" if self.model else "")


@dataclass(frozen=True)
class GpuHost:
    """The driver's view: its GPUs, the device nodes that exist, and where it was read."""

    gpus: tuple[Gpu, ...]
    nodes: frozenset[str]  # names under dev that start with "nvidia"
    driver_version: str = ""
    proc: Path = PROC
    dev: Path = DEV
    sys_pci: Path = SYS_PCI

    def missing_nodes(self, gpu: Gpu) -> list[str]:
        """Device nodes a CUDA process on `gpu` needs and this host lacks (names under dev)."""
        return [n for n in (*REQUIRED_CONTROL, gpu.node) if n not in self.nodes]


def parse_information(text: str) -> dict[str, str]:
    """The "Key: value" lines of a gpus/<bus id>/information file."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = _FIELD.match(line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def read_host(proc: Path = PROC, dev: Path = DEV, sys_pci: Path = SYS_PCI) -> GpuHost:
    """The GPUs the driver lists under `proc` and the nvidia nodes under `dev` (none: empty)."""
    gpus: list[Gpu] = []
    folders = sorted(p for p in (proc / "gpus").glob("*") if p.is_dir())
    for index, folder in enumerate(folders):
        info = parse_information(_read(folder / "information"))
        minor = info.get("Device Minor", "")
        if not minor.isdigit():
            continue  # a GPU without a minor has no node to give a sandbox
        gpus.append(
            Gpu(
                index=index,
                bus_id=info.get("Bus Location", folder.name),
                minor=int(minor),
                uuid=info.get("GPU UUID", ""),
                model=info.get("Model", ""),
            )
        )
    try:
        nodes = frozenset(p.name for p in dev.iterdir() if p.name.startswith("nvidia"))
    except OSError:
        nodes = frozenset()
    # "... x86_64 Kernel Module  550.54.15  ..." or, from the open modules, "... Open Kernel
    # Module for x86_64  580.159.04  Release Build ...": the first dotted number on the line.
    version = re.search(r"NVRM version:.*?\s(\d+\.\d+(?:\.\d+)?)\s", _read(proc / "version"))
    return GpuHost(
        gpus=tuple(gpus),
        nodes=nodes,
        driver_version=version.group(1) if version else "",
        proc=proc,
        dev=dev,
        sys_pci=sys_pci,
    )


def select(host: GpuHost, ids: Sequence[str]) -> tuple[Gpu, ...]:
    """The GPUs `ids` name (an index as nvidia-smi prints it, a UUID or a PCI bus id), in
    order, each once; an id the driver does not list is refused with the ones it does."""
    chosen: list[Gpu] = []
    for wanted in ids:
        key = wanted.strip()
        match = [
            g
            for g in host.gpus
            if key in (str(g.index), g.bus_id) or (g.uuid and key.lower() == g.uuid.lower())
        ]
        if not match:
            listed = ", ".join(f"{g.index} ({g.uuid or g.bus_id})" for g in host.gpus)
            raise GpuError(
                f"--gpus names GPU {wanted!r}, which the NVIDIA driver does not list"
                + (f"; it lists {listed}" if listed else " (it lists no GPU on this host)")
            )
        if match[0] not in chosen:
            chosen.append(match[0])
    return tuple(chosen)


Runner = Callable[[list[str]], int]


def _run_quietly(argv: list[str]) -> int:
    try:
        return subprocess.run(argv, capture_output=True, timeout=60, check=False).returncode
    except (OSError, subprocess.TimeoutExpired):
        return -1


def create_missing_nodes(
    host: GpuHost,
    gpus: Sequence[Gpu],
    *,
    modprobe: str | None = None,
    run: Runner = _run_quietly,
    reread: Callable[[], GpuHost] | None = None,
) -> GpuHost:
    """Make the device nodes `gpus` need before the first job, as CUDA itself would: the
    driver's setuid nvidia-modprobe (-c N: /dev/nvidiaN and nvidiactl; -u -c 0: nvidia-uvm).
    Raises GpuError naming what is still missing and how to fix it."""
    missing = sorted({n for g in gpus for n in host.missing_nodes(g)})
    if not missing:
        return host
    tool = modprobe if modprobe is not None else shutil.which("nvidia-modprobe")
    if tool:
        for gpu in gpus:
            run([tool, "-c", str(gpu.minor)])
        if any(n.startswith("nvidia-uvm") for n in missing):
            run([tool, "-u", "-c", "0"])
        host = (reread or (lambda: read_host(host.proc, host.dev, host.sys_pci)))()
        missing = sorted({n for g in gpus for n in host.missing_nodes(g)})
        if not missing:
            return host
    nodes = ", ".join(str(host.dev / n) for n in missing)
    how = (
        f"{tool} did not create them" if tool else "nvidia-modprobe is not installed to create them"
    )
    raise GpuError(
        f"the NVIDIA device nodes {nodes} are missing ({how}), so CUDA could not start in the "
        "sandbox and the notebook would train on the CPU; run `sudo nvidia-modprobe -u -c 0` "
        "(or load the nvidia-uvm module: `sudo modprobe nvidia-uvm`), or pass the devices "
        "into the container"
    )


@dataclass(frozen=True)
class SandboxGpu:
    """What one sandbox gets of one GPU: the nodes it may open, a /proc/driver/nvidia that
    lists only that GPU, its sysfs entries read-only, and the CUDA environment naming it."""

    gpu: Gpu
    devices: tuple[tuple[str, str], ...]  # (host node, node inside), opened read-write
    masks: tuple[tuple[str, int], ...]  # (folder inside, tmpfs bytes): hides the host's
    mounts: tuple[Mount, ...]  # read-only driver files, onto the masks
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


def sandbox_view(host: GpuHost, gpu: Gpu, *, proc_dest: str = str(PROC)) -> SandboxGpu:
    """The sandbox's share of `gpu`. `proc_dest` is where the driver folder appears inside
    (a test on a host without the driver points it at a folder procfs has)."""
    devices = [
        (str(host.dev / name), f"/dev/{name}")
        for name in (*REQUIRED_CONTROL, *OPTIONAL_CONTROL, gpu.node)
        if name in host.nodes
    ]
    mounts = [
        Mount(host.proc / name, f"{proc_dest}/{name}")
        for name in DRIVER_FILES
        if (host.proc / name).exists()
    ]
    folder = host.proc / "gpus" / gpu.bus_id
    if folder.is_dir():
        mounts.append(Mount(folder, f"{proc_dest}/gpus/{gpu.bus_id}"))
    sysfs = host.sys_pci / gpu.bus_id.lower()
    for name in SYS_FILES:
        if (sysfs / name).is_file():
            mounts.append(Mount(sysfs / name, f"{SYS_PCI}/{gpu.bus_id.lower()}/{name}"))
    env = {
        # The only GPU inside; by UUID, so even a CUDA that enumerated others picks this one.
        "CUDA_VISIBLE_DEVICES": gpu.uuid or "0",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    }
    return SandboxGpu(
        gpu=gpu,
        devices=tuple(devices),
        masks=((proc_dest, MASK_BYTES),),
        mounts=tuple(mounts),
        env=MappingProxyType(env),
    )
