"""docs/authoring.md cannot drift: its spec.toml table is the one the code reads, and its
commands, run in order in a copy of this repository, turn `deepgrade new` into an exercise whose
reference solution gets full marks through the real pipeline (sandbox, smoke profile)."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deepgrade import notebooks
from deepgrade.calibrate import CALIBRATION_BEGIN, CALIBRATION_END
from deepgrade.spec_keys import PROFILE, SPEC_KEYS, TOP, markdown_table

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "authoring.md"
BLOCK = re.compile(r"<!-- (run|solution: (\w+) (\w+)) -->\n```\w*\n(.*?)```", re.DOTALL)


def _keys_read_by_exercise_py() -> dict[str, set[str]]:
    """{TOP: keys read from `raw`, PROFILE: keys read from a profile's `table`}."""
    tree = ast.parse((ROOT / "src" / "deepgrade" / "exercise.py").read_text(encoding="utf-8"))
    found: dict[str, set[str]] = {TOP: set(), PROFILE: set()}
    tables = {"raw": TOP, "table": PROFILE}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        args = node.args
        if isinstance(func, ast.Name) and func.id == "_require" and len(args) >= 2:
            source, key = args[0], args[1]
        elif isinstance(func, ast.Attribute) and func.attr == "get" and args:
            source, key = func.value, args[0]
        else:
            continue
        if isinstance(source, ast.Name) and source.id in tables:
            where = tables[source.id]
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                found[where].add(key.value)
    # The limits are required through a loop: `for key in ("cell_timeout_s", ...)`.
    for node in ast.walk(tree):
        if isinstance(node, ast.comprehension) and isinstance(node.iter, ast.Tuple):
            found[PROFILE] |= {e.value for e in node.iter.elts if isinstance(e, ast.Constant)}
    return found


def test_spec_key_table_is_the_codes() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    shown = text.split("<!-- spec-keys: begin -->\n", 1)[1].split("\n<!-- spec-keys: end -->")[0]
    assert shown == markdown_table(), "regenerate the table with deepgrade.spec_keys"
    read = _keys_read_by_exercise_py()
    for where in (TOP, PROFILE):
        documented = {k.key for k in SPEC_KEYS if k.table == where}
        assert documented == read[where], where


def test_spec_key_table_says_which_are_required(tmp_path: Path) -> None:
    """Leaving out a key the table calls required is an error naming it; an optional one not."""
    from deepgrade.errors import InputError
    from deepgrade.exercise import load_spec

    folder = tmp_path / "signs_cnn"
    shutil.copytree(ROOT / "autograder" / "signs_cnn", folder)
    spec = (folder / "spec.toml").read_text(encoding="utf-8")
    tested = 0
    for entry in SPEC_KEYS:
        if entry.key == "profiles":
            continue
        pattern = rf"^{entry.key}\s*=\s*(?:\[[^\]]*\]|[^\n]*)"  # arrays may span lines
        if entry.key == "hidden":
            pattern = r"^\[hidden\](\n[^\[].*)*"
        if not re.search(pattern, spec, re.MULTILINE):
            continue
        tested += 1
        left = re.sub(pattern, "", spec, count=1, flags=re.MULTILINE)
        if entry.key == "thresholds":  # a borderline band names thresholds: it goes with them
            left = re.sub(r"^borderline\s*=.*$", "", left, count=1, flags=re.MULTILINE)
        (folder / "spec.toml").write_text(left, encoding="utf-8")
        if entry.required:
            with pytest.raises(InputError, match=f"missing key {entry.key!r}"):
                load_spec(folder)
        else:
            load_spec(folder)
    assert tested >= 10


def _copy_project(tmp: Path) -> Path:
    root = tmp / "course"
    skip = shutil.ignore_patterns("__pycache__", ".deepgrade")
    for folder in ("autograder", "source", "release", "solutions", "datasets"):
        shutil.copytree(ROOT / folder, root / folder, ignore=skip)
    (root / "tests").mkdir()
    for name in ("conftest.py", "test_end_to_end.py"):
        shutil.copy(ROOT / "tests" / name, root / "tests" / name)
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def _shims(tmp: Path) -> Path:
    """`deepgrade` and `python` as the guide's reader has them: this interpreter and package."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    commands = (("deepgrade", f"{sys.executable} -m deepgrade"), ("python", sys.executable))
    for name, command in commands:
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        shim.chmod(0o755)
    return bin_dir


def _fill_solution(root: Path, exercise: str, grade_id: str, code: str) -> None:
    path = root / "source" / exercise / f"{exercise}.ipynb"
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if notebooks.grade_id(cell) == grade_id:
            text = "".join(cell["source"])
            begin = text.index(notebooks.BEGIN_SOLUTION) + len(notebooks.BEGIN_SOLUTION)
            end = text.index(notebooks.END_SOLUTION)
            cell["source"] = text[:begin] + "\n" + code + "\n" + text[end:]
            break
    else:
        raise AssertionError(f"the guide fills cell {grade_id!r}, which {path} lacks")
    path.write_text(json.dumps(nb, indent=1) + "\n", encoding="utf-8")


@pytest.mark.slow
def test_the_guide_makes_a_working_exercise(tmp_path: Path, sandbox_tool: object) -> None:
    root = _copy_project(tmp_path)
    src = ROOT / "src"
    env = dict(
        os.environ,
        PATH=f"{_shims(tmp_path)}:{os.environ['PATH']}",
        PYTHONPATH=os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")])),
        DEEPGRADE_CACHE=str(tmp_path / "cache"),
    )
    env.pop("DEEPGRADE_ROOT", None)
    blocks = BLOCK.findall(GUIDE.read_text(encoding="utf-8"))
    assert [kind.split(":")[0] for kind, *_ in blocks] == ["run", "solution", "run", "run"]
    for kind, exercise, grade_id, body in blocks:
        if kind == "run":
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", body],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                timeout=1500,
            )
            assert done.returncode == 0, f"{body}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        else:
            _fill_solution(root, exercise, grade_id, body.rstrip("\n"))
    # check-solutions (full marks) and the end-to-end test passed inside the blocks; the
    # calibration's table is in the README, between the markers, one row per seed.
    readme = (root / "autograder" / "shirts_dense" / "README.md").read_text(encoding="utf-8")
    table = readme.split(CALIBRATION_BEGIN, 1)[1].split(CALIBRATION_END, 1)[0]
    assert "| 0 | 6/6 |" in table and "| 1 | 6/6 |" in table
    assert "| test_accuracy |" in table
