"""Threat model, stage 2: the hidden checks read files a student's code wrote.

Anything that runs code in the check process can write any result, so the host validates what
comes back on the private channel against the checks in source (issue 12, item 1). And what a
student's files do to the check process (too slow, too big, a crash) is the student's verdict,
never a grader error that is retried forever (item 7). Tiny exercises reuse test_checks' helpers.
"""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from test_checks import _run_checks, _spec_dir

from deepgrade.checks.runner import STOPPED_LATER, _report
from deepgrade.checks.snapshots import MAX_SNAPSHOT_BYTES, encode_snapshot
from deepgrade.checks.verify import REJECTED, Channel, static_checks
from deepgrade.export import export_csv, export_gradescope
from deepgrade.grade import _stage2_verdict
from deepgrade.gradebook import Gradebook
from deepgrade.limits import ProcessOutcome
from deepgrade.profiles import resolve_profile
from deepgrade.results import CheckReport, CheckResult, SubmissionResult, Verdict

THREE_CHECKS = '''
import pytest

@pytest.mark.points(2)
def test_first():
    """First check."""

@pytest.mark.points(1)
def test_second():
    """Second check."""
    assert False, "second is wrong"

@pytest.mark.points(1)
def test_third():
    """Third check."""
'''

FINE = ProcessOutcome(1, timed_out=False, oom_killed=False, seconds=1.0, limits=())


# ---------------------------------------------------------------- item 1: forged snapshots


def _static(tmp_path: Path) -> list[CheckResult]:
    return static_checks(_spec_dir(tmp_path, THREE_CHECKS))


def _line(checks: list[dict[str, Any]], complete: bool = True) -> bytes:
    data = {"version": 2, "complete": complete, "error": None, "checks": checks}
    return json.dumps(data).encode() + b"\n"


def _entry(check_id: str, points: float, max_points: float, passed: bool) -> dict[str, Any]:
    name = f"test_hidden::{check_id}"
    return {
        "check_id": name,
        "title": check_id,
        "points": points,
        "max_points": max_points,
        "passed": passed,
        "message": "",
        "done": True,
    }


def _honest() -> list[dict[str, Any]]:
    return [
        _entry("test_first", 2, 2, True),
        _entry("test_second", 0, 1, False),
        _entry("test_third", 1, 1, True),
    ]


def _stream(static: list[CheckResult], *lines: bytes) -> Channel:
    """The channel as the host reads it: the plugin's real first snapshot, then `lines`."""
    channel = Channel(static)
    channel.feed(encode_snapshot(static, [False] * len(static), error=None, complete=False))
    for line in lines:
        channel.feed(line)
    return channel


def _host_report(static: list[CheckResult], channel: Channel) -> CheckReport:
    return _report(static, channel, FINE, 1.0, timeout_s=300, memory_mb=512)


FORGERIES = {
    "unknown id": (
        [*_honest(), _entry("test_bonus", 100, 100, True)],
        "unknown check 'test_hidden::test_bonus'",
    ),
    "points over max": (
        [_entry("test_first", 20, 2, True), *_honest()[1:]],
        "test_hidden::test_first claims 20 points of 2",
    ),
    "duplicated id": (
        [*_honest(), _entry("test_third", 1, 1, True)],
        "test_hidden::test_third reported more than once",
    ),
    "passed with 0": (
        [_entry("test_first", 0, 2, True), *_honest()[1:]],
        "test_hidden::test_first passed with 0 of 2 points",
    ),
    "failed with points": (
        [*_honest()[:1], _entry("test_second", 1, 1, False), *_honest()[2:]],
        "test_hidden::test_second failed but claims 1 points",
    ),
    "wrong max": (
        [_entry("test_first", 9, 9, True), *_honest()[1:]],
        "test_hidden::test_first claims a maximum of 9 (its marker says 2)",
    ),
    "negative points": (
        [*_honest()[:1], _entry("test_second", -5, 1, False), *_honest()[2:]],
        "test_hidden::test_second claims -5 points of 1",
    ),
    "points as a boolean": (
        [_entry("test_first", True, 2, True), *_honest()[1:]],  # type: ignore[arg-type]
        "'test_hidden::test_first''s points is not a finite number",
    ),
}


@pytest.mark.parametrize("kind", list(FORGERIES))
def test_forged_snapshot_is_rejected_and_earns_nothing(tmp_path: Path, kind: str) -> None:
    checks, problem = FORGERIES[kind]
    static = _static(tmp_path)
    report = _host_report(static, _stream(static, _line(checks)))
    assert report.verdict is Verdict.RESULTS_REJECTED
    assert report.error is not None and problem in report.error
    assert "a person should look" in report.error
    assert report.points == 0 and report.max_points == 4
    assert [c.message for c in report.checks] == [REJECTED] * 3


@pytest.mark.parametrize(
    "line",
    [
        b'{"version": 2, "complete": true, "error": null, "checks": [{"check_id": '
        b'"test_hidden::test_first", "title": "x", "points": NaN, "max_points": 2, '
        b'"passed": true, "done": true}]}\n',
        b"not json at all\n",
        b'{"version": 1, "checks": []}\n',
        b"x" * (MAX_SNAPSHOT_BYTES + 10) + b"\n",
    ],
    ids=["NaN points", "not JSON", "old version", "oversized"],
)
def test_malformed_snapshot_is_rejected(tmp_path: Path, line: bytes) -> None:
    static = _static(tmp_path)
    report = _host_report(static, _stream(static, line))
    assert report.verdict is Verdict.RESULTS_REJECTED
    assert report.points == 0


def test_totals_come_from_the_host_and_missing_checks_fail_as_not_run(tmp_path: Path) -> None:
    static = _static(tmp_path)
    honest = _honest()
    data = json.loads(_line(honest[:2]))
    data["points"] = data["max_points"] = 1000  # a reported total is never read
    stream = _stream(static, json.dumps(data).encode() + b"\n")
    report = _host_report(static, stream)
    assert [(c.check_id, c.points, c.passed) for c in report.checks] == [
        ("test_hidden::test_first", 2.0, True),
        ("test_hidden::test_second", 0.0, False),
        ("test_hidden::test_third", 0.0, False),
    ]
    assert (report.points, report.max_points) == (2.0, 4.0)
    assert report.checks[2].message.startswith("this check was stopped: ")
    assert report.verdict is Verdict.ARTIFACT_REJECTED  # the student's, not the grader's
    # Titles are the source's, not whatever the process reported.
    assert [c.title for c in report.checks] == ["First check.", "Second check.", "Third check."]


def test_finished_results_cannot_be_rewritten_later(tmp_path: Path) -> None:
    """Code that takes over the process in a later check cannot flip an earlier one."""
    static = _static(tmp_path)
    honest = _honest()
    after_first = [
        honest[0],
        {**honest[1], "done": False, "message": "not yet"},
        {**honest[2], "done": False, "points": 0, "passed": False},
    ]
    after_second = [*honest[:2], {**honest[2], "done": False, "points": 0, "passed": False}]
    flipped = [honest[0], _entry("test_second", 1, 1, True), honest[2]]
    lines = [_line(after_first, False), _line(after_second, False), _line(flipped)]
    report = _host_report(static, _stream(static, *lines))
    assert report.verdict is Verdict.RESULTS_REJECTED
    assert "test_hidden::test_second's result changed after it finished" in str(report.error)
    assert report.points == 0
    honest_run = _host_report(static, _stream(static, *lines[:2], _line(honest)))
    assert honest_run.verdict is None and honest_run.points == 3


def test_flood_of_snapshots_is_rejected(tmp_path: Path) -> None:
    static = _static(tmp_path)
    report = _host_report(static, _stream(static, *[_line(_honest())] * 50))
    assert report.verdict is Verdict.RESULTS_REJECTED
    assert "more than 14 snapshots" in str(report.error)


def test_honest_snapshot_is_accepted_as_is(tmp_path: Path) -> None:
    static = _static(tmp_path)
    report = _host_report(static, _stream(static, _line(_honest())))
    assert report.error is None and report.verdict is None
    assert (report.points, report.max_points) == (3.0, 4.0)


def test_stage2_sandbox_has_no_writable_bind(tmp_path: Path, bwrap: str) -> None:
    from deepgrade.checks.runner import _sandboxed_argv
    from deepgrade.exercise import load_spec

    directory = _spec_dir(tmp_path, THREE_CHECKS)
    ini = tmp_path / "pytest.ini"
    ini.write_text("[pytest]\n")
    usage = tmp_path / "stage1-usage.json"
    usage.write_text("{}")
    empty = tmp_path / "artifacts"
    spec = load_spec(directory)
    profile = resolve_profile(spec, "smoke", data_files=()).write(tmp_path / "profile.json")
    argv = _sandboxed_argv(spec, profile, empty, [], ini, 5, empty, usage)
    assert "--bind" not in argv and "--dev-bind" not in argv
    assert not any("/results" in arg for arg in argv)
    assert "--dg-results-fd=5" in argv
    # The resolved profile goes in read-only; the checks never look the name up again.
    at = argv.index(str(profile))
    assert argv[at - 1 : at + 2] == ["--ro-bind", str(profile), "/stage2/profile.json"]
    assert "--dg-profile-file=/stage2/profile.json" in argv


WRITER = '''
import json, os, pytest

@pytest.mark.points(1)
def test_writes_nowhere(artifacts_dir, data_dir, spec):
    """Tries every place the results could be forged."""
    targets = [
        "/results/results.json",
        "/results/forged.json",
        str(artifacts_dir / "forged.json"),
        str(data_dir / "forged.json"),
        str(spec.directory / "forged.json"),
        "/opt/deepgrade/forged.json",
        "/forged.json",
    ]
    written = []
    for target in [*targets, HOST_PATH]:  # the host's /tmp is not this one: tried, not counted
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "w") as handle:
                handle.write("{}")
            written.append(target)
        except OSError:
            pass
    assert not set(written) & set(targets), json.dumps(written)
'''


def test_check_process_cannot_write_results_or_host_paths(tmp_path: Path, bwrap: str) -> None:
    host = tmp_path / "work" / "checks" / "results" / "results.json"
    directory = _spec_dir(tmp_path, WRITER.replace("HOST_PATH", repr(str(host))))
    report = _run_checks(tmp_path, directory)
    assert report.error is None, report.error
    assert report.checks[0].passed, report.checks[0].message
    assert not host.exists()
    assert not list(tmp_path.rglob("forged.json"))


FORGERS = {
    "writes to the channel": (
        '''
        import json, os, pytest

        @pytest.mark.points(2)
        def test_honest():
            """An honest check."""

        @pytest.mark.points(1)
        def test_forger():
            """Writes a forged snapshot on every pipe it can find."""
            forged = {"version": 2, "complete": True, "error": None, "measurements": {},
                      "checks": [{"check_id": "test_hidden::test_bonus", "title": "bonus",
                                  "points": 100, "max_points": 100, "passed": True,
                                  "message": "", "done": True}]}
            for fd in map(int, os.listdir("/proc/self/fd")):
                try:
                    if os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:"):
                        os.write(fd, json.dumps(forged).encode() + b"\\n")
                except OSError:
                    pass
            os._exit(0)  # nothing honest comes after the forgery
        ''',
        "unknown check 'test_hidden::test_bonus'",
    ),
    "patches the plugin": (
        '''
        import pytest

        @pytest.mark.points(2)
        def test_honest():
            """An honest check."""

        @pytest.mark.points(1)
        def test_forger(pytestconfig):
            """Raises its own worth in the plugin's records."""
            recorder = pytestconfig.pluginmanager.get_plugin("deepgrade-recorder")
            for check in recorder.checks.values():
                check.max_points = 50
        ''',
        "claims a maximum of 50 (its marker says 2)",
    ),
}


@pytest.mark.parametrize("kind", list(FORGERS))
def test_checks_that_forge_results_end_rejected(tmp_path: Path, bwrap: str, kind: str) -> None:
    source, problem = FORGERS[kind]
    directory = _spec_dir(tmp_path, source)
    report = _run_checks(tmp_path, directory)
    assert report.verdict is Verdict.RESULTS_REJECTED, report.error
    assert report.error is not None and problem in report.error
    assert report.points == 0 and report.max_points == 3


# ---------------------------------------------------------------- item 7: whose fault


BOMB = '''
import numpy as np, pytest

@pytest.mark.points(2)
def test_before():
    """Runs before the bomb."""

@pytest.mark.points(1)
def test_reads_array(artifact):
    """Reads the student's array."""
    with np.load(artifact("weights.npz"), allow_pickle=False) as saved:
        assert float(saved["w"].sum()) == 1.0, "the weights are wrong"

@pytest.mark.points(1)
def test_after():
    """Runs after the bomb."""
'''


def _deflate_bomb(path: Path, mib: int) -> None:
    """An .npz of `mib` MiB of zeros that is a few MiB on disk."""
    header = b"\x93NUMPY\x01\x00"
    text = f"{{'descr': '<f8', 'fortran_order': False, 'shape': ({mib * 131072},), }}"
    text = text.ljust(117) + "\n"  # 10 + 118 bytes: the data starts 64-aligned
    zeros = bytes(1 << 20)
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open("w.npy", "w", force_zip64=True) as member,
    ):
        member.write(header + len(text).to_bytes(2, "little") + text.encode())
        for _ in range(mib):
            member.write(zeros)


def test_deflate_bomb_is_the_students_verdict(tmp_path: Path) -> None:
    directory = _spec_dir(tmp_path, BOMB)  # the spec's memory limit: 512 MiB
    _deflate_bomb(tmp_path / "artifacts" / "weights.npz", 768)
    assert (tmp_path / "artifacts" / "weights.npz").stat().st_size < 8 << 20
    report = _run_checks(tmp_path, directory, unsafe=True)
    first, bomb, after = report.checks
    assert (first.passed, first.points) == (True, 2.0)  # finished checks keep their points
    assert (bomb.passed, bomb.points) == (False, 0.0)
    if report.verdict is None:  # no memory cgroup: RLIMIT_AS turned the bomb into MemoryError
        assert bomb.message == "this check could not run: MemoryError"
        assert after.passed
        return
    assert report.verdict is Verdict.ARTIFACT_REJECTED, report.error
    assert report.error is not None
    assert report.error.startswith(
        "the hidden checks stopped at 'Reads the student's array.': they ran out of memory "
        "(limit 512 MiB)"
    )
    assert bomb.message.startswith("this check was stopped: the hidden checks ran out of memory")
    assert (after.points, after.message) == (0.0, STOPPED_LATER)


HUGE = '''
import numpy as np, pytest

@pytest.mark.points(2)
def test_before():
    """Runs before the array."""

@pytest.mark.points(1)
def test_reads_array(artifact):
    """Reads the student's array."""
    saved = np.load(artifact("weights.npy"), allow_pickle=False)
    assert float(saved.sum()) == 1.0, "the weights are wrong"
'''


def test_array_claiming_terabytes_is_the_students_loss(tmp_path: Path) -> None:
    directory = _spec_dir(tmp_path, HUGE)
    text = "{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776,), }".ljust(117)
    header = b"\x93NUMPY\x01\x00" + (118).to_bytes(2, "little") + text.encode() + b"\n"
    (tmp_path / "artifacts" / "weights.npy").write_bytes(header + bytes(64))
    report = _run_checks(tmp_path, directory, unsafe=True)
    assert report.verdict in (None, Verdict.ARTIFACT_REJECTED), report.error
    assert [(c.points, c.passed) for c in report.checks] == [(2.0, True), (0.0, False)]


SLOW = '''
import time, pytest

@pytest.mark.points(2)
def test_quick():
    """A quick check."""

@pytest.mark.points(1)
def test_predicts():
    """Predicts with the student's model."""
    time.sleep(3600)

@pytest.mark.points(1)
def test_later():
    """A later check."""
'''


def test_check_timeout_is_the_students_verdict(tmp_path: Path) -> None:
    directory = _spec_dir(tmp_path, SLOW)
    report = _run_checks(tmp_path, directory, unsafe=True, timeout_s=20)
    assert report.verdict is Verdict.CHECK_TIMEOUT, report.error
    assert report.error == (
        "the hidden checks stopped at 'Predicts with the student's model.': they ran past their "
        "20 s time limit (your saved model or arrays took too long to load or use); the 2 "
        "check(s) that did not finish earn 0"
    )
    quick, slow, later = report.checks
    assert (quick.points, quick.passed) == (2.0, True)
    assert slow.points == 0 and slow.message.startswith(
        "this check was stopped: the hidden checks ran past their 20 s time limit here"
    )
    assert (later.points, later.message) == (0.0, STOPPED_LATER)


@pytest.mark.parametrize(
    ("source", "conftest", "expected"),
    [
        (
            "import pytest\nP = 2\n@pytest.mark.points(P)\ndef test_hidden_points():\n    pass\n",
            "",
            "differ from the checks in source (collected but not found in source: "
            "test_hidden::test_hidden_points)",
        ),
        (
            "import pytest\n@pytest.mark.points(1)\ndef test_x():\n    pass\n",
            "import os\nos._exit(4)\n",
            "pytest reported no checks (exit status 4)",
        ),
        (
            "import pytest\n@pytest.mark.points(1)\ndef test_x():\n    pass\n"
            "def test_y():\n    pass\n",
            "",
            "bad points markers",
        ),
        (
            "import pytest\n@pytest.mark.points(1)\ndef test_x():\n    pass\n",
            "import time\ntime.sleep(3600)\n",
            "the checks ran past their 5 s time limit before reporting any",
        ),
    ],
    ids=["points not in source", "conftest dies", "marker missing", "slow before collection"],
)
def test_grader_faults_stay_grader_errors(
    tmp_path: Path, source: str, conftest: str, expected: str
) -> None:
    directory = _spec_dir(tmp_path, source, conftest=conftest)
    report = _run_checks(tmp_path, directory, unsafe=True, timeout_s=5)
    assert report.verdict is Verdict.GRADER_ERROR
    assert report.error is not None and expected in report.error
    assert report.points == 0


# ---------------------------------------------------------------- item 7: grade and exports


def _report_with(verdict: Verdict | None, error: str) -> CheckReport:
    return CheckReport((), 1.0, error, verdict)


def test_stage2_verdicts_in_grade_submission() -> None:
    ok, cell = (Verdict.GRADED, "ran"), (Verdict.CELL_ERROR, "cell 3 raised ValueError")
    timeout = _report_with(Verdict.CHECK_TIMEOUT, "too slow")
    assert _stage2_verdict(timeout, *ok) == (Verdict.CHECK_TIMEOUT, "too slow")
    assert _stage2_verdict(timeout, *cell) == (
        Verdict.CELL_ERROR,
        "cell 3 raised ValueError; too slow",
    )
    rejected = _report_with(Verdict.RESULTS_REJECTED, "forged")
    assert _stage2_verdict(rejected, *cell) == (Verdict.RESULTS_REJECTED, "forged")
    broken = _report_with(Verdict.GRADER_ERROR, "no checks")
    assert _stage2_verdict(broken, *cell)[0] is Verdict.GRADER_ERROR


def _result(student: str, verdict: Verdict) -> SubmissionResult:
    check = CheckResult("test_a::test_one", "One", 0.0, 2.0, False, "stopped")
    return SubmissionResult(
        student=student,
        exercise="signs_cnn",
        profile="smoke",
        content_hash=f"hash-{student}",
        verdict=verdict,
        detail="hidden checks could not run: no checks" if verdict is Verdict.GRADER_ERROR else "",
        checks=(check,) if verdict is not Verdict.GRADER_ERROR else (),
        stage1_seconds=1.0,
        stage2_seconds=1.0,
    )


def test_student_verdicts_are_final_in_the_gradebook(tmp_path: Path) -> None:
    with Gradebook(tmp_path / "gb.db") as book:
        for verdict in (Verdict.CHECK_TIMEOUT, Verdict.ARTIFACT_REJECTED, Verdict.RESULTS_REJECTED):
            book.record(_result(str(verdict), verdict))
            assert book.has(str(verdict), "signs_cnn", "smoke", f"hash-{verdict}")


def test_csv_export_leaves_grader_errors_without_points(tmp_path: Path) -> None:
    rows = [
        (_result("ana", Verdict.CHECK_TIMEOUT), "t"),
        (_result("bo", Verdict.GRADER_ERROR), "t"),
    ]
    export_csv(rows, tmp_path / "grades.csv")
    with (tmp_path / "grades.csv").open() as handle:
        table = {row["student"]: row for row in csv.DictReader(handle)}
    assert (table["ana"]["points"], table["ana"]["max_points"]) == ("0", "2")
    assert (table["bo"]["points"], table["bo"]["max_points"]) == ("", "")
    assert table["bo"]["verdict"] == "grader_error"


def test_gradescope_export_leaves_out_grader_errors_and_says_so(tmp_path: Path) -> None:
    rows = [
        (_result("ana", Verdict.CHECK_TIMEOUT), "t"),
        (_result("bo", Verdict.GRADER_ERROR), "t"),
    ]
    exported = export_gradescope(rows, tmp_path)
    assert exported.files == [tmp_path / "signs_cnn" / "ana" / "results.json"]
    assert not (tmp_path / "signs_cnn" / "bo").exists()
    assert len(exported.left_out) == 1
    assert exported.left_out[0].startswith("signs_cnn/bo: grader_error (hidden checks could not")


def test_cli_export_reports_what_it_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from deepgrade.cli import main

    with Gradebook(tmp_path / "gb.db") as book:
        book.record(_result("ana", Verdict.GRADED))
        book.record(_result("bo", Verdict.GRADER_ERROR))
    out = tmp_path / "gs"
    gradebook = str(tmp_path / "gb.db")
    code = main(["export", "--format", "gradescope", "--gradebook", gradebook, "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "exported 1 results to 1 file(s)" in printed
    assert "left out 1 result(s)" in printed and "signs_cnn/bo: grader_error" in printed
