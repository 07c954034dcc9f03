"""Grading on a real Ray cluster of local nodes (ray.cluster_utils.Cluster on loopback).

The head only hosts the driver's ledger (no CPUs for tasks); nodes `a` and `b` grade, each with
a data cache of its own (nothing reaches them through the filesystem: the course, the checks
and the data travel with the tasks), and node `refuses` cannot sandbox (its bubblewrap is
missing) and must refuse. The exercise is deepgrade.tinycourse's: a notebook that trains
nothing and saves a small model in about a second; its profile mounts a small SIGNS look-alike
that only the driver's cache holds, so each grading node fetches it through the object store.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import deepgrade
from deepgrade import tinycourse

ray = pytest.importorskip("ray", reason="the cluster tests need deepgrade[ray]")

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("sandbox_tool")]
LIB = str(Path(deepgrade.__file__).resolve().parents[1])
STUDENTS = [f"s{index:02d}" for index in range(6)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from ray.cluster_utils import Cluster

    base = tmp_path_factory.mktemp("cluster")

    def env(name: str, **extra: str) -> dict[str, str]:
        return {"DEEPGRADE_CACHE": str(base / f"cache-{name}"), "PYTHONPATH": LIB, **extra}

    made = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "env_vars": env("head")})
    nodes = {
        "a": made.add_node(num_cpus=2, env_vars=env("a")),
        "b": made.add_node(num_cpus=2, env_vars=env("b")),
        "refuses": made.add_node(
            num_cpus=2, env_vars=env("refuses", DEEPGRADE_BWRAP=str(base / "no-bwrap"))
        ),
    }
    made.wait_for_nodes()
    yield {"cluster": made, "nodes": nodes, "base": base}
    made.shutdown()


@pytest.fixture
def course(tmp_path: Path) -> Path:
    return tinycourse.write_course(tmp_path / "course", with_data=True)


def _grade(course: Path, address: str) -> list[str]:
    return [
        sys.executable, "-m", "deepgrade", "--root", str(course), "grade",
        str(course / "submissions"), "--exercise", tinycourse.EXERCISE, "--executor", "ray",
        "--address", address, "--gradebook", str(course / "gb.db"), "--json",
        "--workdir", str(course / "runs"),
    ]  # fmt: skip


def _env(cluster: dict[str, Any]) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": LIB, "DEEPGRADE_CACHE": str(cluster["base"] / "driver")}


def _rows(gradebook: Path) -> list[str]:
    with sqlite3.connect(f"file:{gradebook}?mode=ro", uri=True) as db:
        return [row[0] for row in db.execute("SELECT student FROM submissions ORDER BY student")]


def test_a_batch_is_graded_once_each_and_the_node_without_a_sandbox_refuses(
    cluster: dict[str, Any], course: Path
) -> None:
    tinycourse.write_submissions(course / "submissions", STUDENTS, wrong=["s00"])
    done = subprocess.run(
        _grade(course, cluster["cluster"].address),
        capture_output=True,
        text=True,
        env=_env(cluster),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = {r["student"]: r for r in map(json.loads, done.stdout.splitlines())}
    assert sorted(results) == STUDENTS
    assert results["s00"]["points"] == 0 and results["s01"]["points"] == 1
    assert all(r["verdict"] == "graded" for r in results.values())
    assert _rows(course / "gb.db") == STUDENTS  # each exactly once
    refuses = cluster["nodes"]["refuses"].node_id[:8]
    assert not any(r["extra"]["node"].endswith(refuses) for r in results.values())
    assert re.search(rf"refused by \S+:{refuses}: no usable sandbox", done.stderr), done.stderr
    fetched = [r["student"] for r in results.values() if r["extra"].get("fetched")]
    assert 1 <= len(fetched) <= 2  # the data went to each grading node once, no more
    for name in ("a", "b"):  # the nodes never made the look-alike themselves
        assert not (cluster["base"] / f"cache-{name}" / "signs").exists()


def test_a_node_killed_mid_batch_loses_nothing(cluster: dict[str, Any], course: Path) -> None:
    tinycourse.write_submissions(course / "submissions", STUDENTS, sleep_s=6)
    grading = subprocess.Popen(
        _grade(course, cluster["cluster"].address),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(cluster),
    )
    runs_b = cluster["base"] / "cache-b" / "cluster" / "runs"
    deadline = time.monotonic() + 300
    while not list(runs_b.glob("*/_submissions/*/*.ipynb")):  # a task in flight on b
        assert grading.poll() is None, grading.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no task reached node b"
        time.sleep(0.2)
    cluster["cluster"].remove_node(cluster["nodes"]["b"])
    out, err = grading.communicate(timeout=900)
    assert grading.returncode == 0, err[-3000:]
    results = {r["student"]: r for r in map(json.loads, out.splitlines())}
    assert sorted(results) == STUDENTS
    assert all(r["verdict"] == "graded" and r["points"] == 1 for r in results.values()), results
    assert _rows(course / "gb.db") == STUDENTS  # none lost, none twice
    retried = re.search(r"(\d+) retried task\(s\)", err)
    in_flight_on_b = 2  # b's 2 CPUs, busy when it died (a refusal is not a retry)
    assert retried and 1 <= int(retried.group(1)) <= in_flight_on_b, err[-2000:]
    print(err[-2500:])  # the closing note quotes this run's summary


@pytest.fixture
def driver(cluster: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """This process as the cluster's driver (the CLI tests above run their own)."""
    monkeypatch.setenv("DEEPGRADE_CACHE", str(cluster["base"] / "driver"))
    ray.init(address=cluster["cluster"].address, log_to_driver=False)
    yield ray
    ray.shutdown()


def _settings(course: Path) -> Any:
    from deepgrade.batch import batch_settings
    from deepgrade.project import Project

    return batch_settings(
        Project(course), tinycourse.EXERCISE, "smoke", course / "runs", False, on_this_host=False
    )


def test_past_the_deadline_a_task_is_cancelled_and_a_grader_error(
    driver: Any, course: Path
) -> None:
    from deepgrade.gradebook import Gradebook
    from deepgrade.raydriver import grade_on_ray
    from deepgrade.submissions import Submission

    paths = tinycourse.write_submissions(course / "submissions", ["slow"], sleep_s=120)
    started = time.monotonic()
    with Gradebook(course / "gb.db") as book:
        batch = grade_on_ray([Submission("slow", paths[0])], _settings(course), book, deadline=5)
        assert (
            book.stored("slow", tinycourse.EXERCISE, "smoke", batch.results[0].content_hash) is None
        )
    assert time.monotonic() - started < 90  # not the notebook's 120 s
    [result] = batch.results
    assert result.verdict == "grader_error" and "did not finish within 5 s" in result.detail


def test_ctrl_c_cancels_the_cluster_and_keeps_what_finished(driver: Any, course: Path) -> None:
    from deepgrade.gradebook import Gradebook
    from deepgrade.raydriver import grade_on_ray
    from deepgrade.submissions import Submission

    fast = tinycourse.write_submissions(course / "submissions", ["fast"])
    # one sleeper: node b may be gone (killed above), and node a's 2 CPUs must hold both
    slow = tinycourse.write_submissions(course / "submissions", ["slow"], sleep_s=120)
    subs = [Submission(p.stem, p) for p in fast + slow]

    def interrupt(_event: Any) -> None:
        raise KeyboardInterrupt

    started = time.monotonic()
    with Gradebook(course / "gb.db") as book:
        with pytest.raises(KeyboardInterrupt):
            grade_on_ray(subs, _settings(course), book, on_event=interrupt)
        kept = sorted(result.student for result, _ in book.latest())
    assert kept == ["fast"]
    assert time.monotonic() - started < 90  # the sleepers were cancelled, not waited for
