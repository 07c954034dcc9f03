"""A batch on GPUs, on a CPU machine: slots from --gpus and --per-gpu, the NVML monitor's
figures in the results, the batch summary and the gradebook, and `doctor`'s GPU lines."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import GPU_UUIDS, FakeNvml, make_gpu_tree

from deepgrade import gpudoctor, nvidia, runner
from deepgrade.exercise import load_exercise
from deepgrade.gpubatch import GpuRequest, resolve_gpus
from deepgrade.gpumonitor import GpuMonitor
from deepgrade.grade import GradeSettings
from deepgrade.gradebook import BatchRecord, Gradebook
from deepgrade.results import CheckResult, SubmissionResult, Verdict
from deepgrade.submissions import Submission

ROOT = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _gpus(tmp_path: Path, count: int = 2) -> nvidia.GpuHost:
    return nvidia.read_host(**make_gpu_tree(tmp_path / "driver", count))


def test_the_monitor_samples_busy_and_memory_per_gpu(tmp_path: Path) -> None:
    host = _gpus(tmp_path)
    nvml, clock = FakeNvml(total_mb=81559), Clock()
    monitor = GpuMonitor(nvml, host.gpus, interval_s=3600, clock=clock)
    nvml.busy[GPU_UUIDS[0]], nvml.used_mb[GPU_UUIDS[0]] = 90.0, 30000
    monitor.start()  # first sample at t=0
    clock.now = 10.0
    nvml.busy[GPU_UUIDS[0]], nvml.used_mb[GPU_UUIDS[0]] = 50.0, 61000
    usage = monitor.stop()  # last sample at t=10
    first, second = usage
    assert (first.samples, first.busy_pct, first.memory_peak_mb) == (2, 70.0, 61000)
    assert first.memory_total_mb == 81559
    assert (second.busy_pct, second.memory_peak_mb) == (0.0, 0)
    assert (
        first.describe()
        == "GPU 0 (NVIDIA H200): busy 70% (2 samples), memory peak 59.6 GiB of 79.6"
    )
    assert monitor.window(host.gpus[0], 5.0, 10.0) == (50.0, 61000)
    assert monitor.window(host.gpus[0], 11.0, 12.0) == (None, None)


def test_a_monitor_thread_samples_until_stopped(tmp_path: Path) -> None:
    host = _gpus(tmp_path, 1)
    nvml = FakeNvml()
    monitor = GpuMonitor(nvml, host.gpus, interval_s=0.01)
    with monitor:
        deadline = threading.Event()
        while monitor.usage()[0].samples < 5 and not deadline.wait(0.01):
            pass
    count = monitor.usage()[0].samples
    assert count >= 5
    deadline.wait(0.05)
    assert monitor.usage()[0].samples == count  # stopped means stopped


def test_resolving_the_batchs_gpus(tmp_path: Path) -> None:
    host = _gpus(tmp_path)
    spec = load_exercise(ROOT / "autograder", "signs_cnn")
    full = spec.profiles["full"]
    made: list[Any] = []

    def make_nodes(h: nvidia.GpuHost, gpus: Any) -> nvidia.GpuHost:
        made.append([g.index for g in gpus])
        return h

    setup = resolve_gpus(
        GpuRequest.parse("1,0", per_gpu=2), 8, full,
        read_host=lambda: host, make_nodes=make_nodes, nvml_loader=lambda: FakeNvml(81559),
    )  # fmt: skip
    assert made == [[1, 0]]
    assert [s.gpu.index for s in setup.plan.slots if s] == [1, 0, 1, 0]
    assert {s.memory_mb for s in setup.plan.slots if s} == {int(81559 * 0.9 / 2)}
    assert setup.monitor() is not None
    cpu = resolve_gpus(GpuRequest.parse(None), 2, full)
    assert cpu.plan.slots == (None, None) and cpu.monitor() is None
    with pytest.raises(nvidia.GpuError, match="GPU '7'"):
        resolve_gpus(GpuRequest.parse("7"), 1, full, read_host=lambda: host)
    assert GpuRequest.parse(" 0, ,1 ") == GpuRequest(("0", "1"))


def test_gpu_results_carry_their_gpu_and_how_busy_it_was(
    tmp_path: Path, settings: GradeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = _gpus(tmp_path)
    nvml, clock = FakeNvml(), Clock()
    for uuid in GPU_UUIDS:
        nvml.busy[uuid], nvml.used_mb[uuid] = 80.0, 12000
    setup = resolve_gpus(
        GpuRequest.parse("0,1", per_gpu=1), 2, settings.profile.spec,
        read_host=lambda: host, make_nodes=lambda h, g: h, nvml_loader=lambda: nvml,
    )  # fmt: skip
    monitor = GpuMonitor(nvml, setup.plan.gpus, interval_s=3600, clock=clock)
    seen: list[tuple[str, int, str]] = []
    lock = threading.Lock()

    def grade(submission: Submission, job: GradeSettings) -> SubmissionResult:
        assert job.gpu is not None
        with lock:
            seen.append(
                (
                    submission.student,
                    job.gpu.gpu.index,
                    job.gpu.view.env["CUDA_VISIBLE_DEVICES"],
                )
            )
        check = CheckResult("t.py::test_x", "X", 1.0, 1.0, True)
        return SubmissionResult(
            submission.student, job.spec.name, job.profile.name,
            submission.content_hash, Verdict.GRADED, "", (check,), 1.0, 1.0,
        )  # fmt: skip

    monkeypatch.setattr(runner, "grade_submission", grade)
    monkeypatch.setattr(runner, "require_sandbox", lambda unsafe: None)
    monkeypatch.setattr(runner, "require_limits", lambda **kwargs: None)
    subs = []
    for name in ("ana", "bo", "cy"):
        (tmp_path / f"{name}.ipynb").write_text(name)
        subs.append(Submission(name, tmp_path / f"{name}.ipynb"))
    with monitor, Gradebook(tmp_path / "gb.db") as book:
        results = runner.grade_batch(subs, settings, book, slots=setup.plan, monitor=monitor)
    assert {index for _, index, _ in seen} <= {0, 1}
    assert all(uuid == GPU_UUIDS[index] for _, index, uuid in seen)
    for result in results:
        assert result.gpu in ("GPU 0 (NVIDIA H200)", "GPU 1 (NVIDIA H200)")
        assert (result.gpu_busy_pct, result.gpu_memory_peak_mb) == (80.0, 12000)
        assert SubmissionResult.from_json(result.to_json()) == result


def test_the_gradebook_keeps_each_batch_with_its_gpu_figures(tmp_path: Path) -> None:
    when = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    usage = ({"index": 0, "label": "GPU 0", "busy_pct": 71.5, "samples": 9},)
    with Gradebook(tmp_path / "gb.db") as book:
        book.record_batch(BatchRecord("signs_cnn", "full", when, when, 4, 8, 0, usage))
        book.record_batch(BatchRecord("bn_discovery", "smoke", when, when, 1, 2))
    with Gradebook(tmp_path / "gb.db") as book:
        stored = book.batches("signs_cnn")
        assert len(book.batches()) == 2
    assert stored == [BatchRecord("signs_cnn", "full", when, when, 4, 8, 0, usage)]


def test_doctor_lists_each_gpu_and_what_its_sandbox_saw(tmp_path: Path) -> None:
    paths = make_gpu_tree(tmp_path / "driver", 2)
    (paths["dev"] / "nvidia1").unlink()
    host = nvidia.read_host(**paths)
    probed: list[int] = []

    def probe(h: nvidia.GpuHost, gpu: nvidia.Gpu) -> str:
        probed.append(gpu.index)
        return ""

    reports = gpudoctor.gpu_reports(host, nvml=FakeNvml(143771), probe=probe)
    lines = gpudoctor.describe(host, reports)
    assert probed == [0]  # the GPU without its node is not probed: it cannot work
    assert lines[0] == "gpus:        2 (driver 550.54.15)"
    assert lines[1].endswith(
        "/dev/nvidia0, 140 GiB; in a sandbox: usable (CUDA and the Keras backend see it)"
    )
    assert (
        "/dev/nvidia1 (MISSING)" in lines[2]
        and "NOT usable: missing device nodes nvidia1" in lines[2]
    )
    assert reports[1].to_json()["sandbox_usable"] is False
    none = nvidia.read_host(tmp_path / "none", tmp_path / "none")
    assert gpudoctor.describe(none, []) == [
        f"gpus:        none (no NVIDIA driver lists a GPU under {tmp_path / 'none' / 'gpus'})"
    ]
    unprobed = gpudoctor.gpu_reports(host, nvml=FakeNvml(), probe=None)
    assert unprobed[0].describe().endswith("sandbox not probed")


def test_doctor_probes_in_a_real_sandbox(tmp_path: Path, bwrap: Any) -> None:
    """On this CPU host the sandboxed probe finds no CUDA driver, and says so."""
    host = _gpus(tmp_path, 1)
    procfs = "/proc/driver" if Path("/proc/driver").is_dir() else "/proc/tty"
    problem = gpudoctor.probe_in_sandbox(host, host.gpus[0], proc_dest=procfs)
    assert problem.startswith("the CUDA driver library libcuda.so.1 cannot be loaded"), problem
