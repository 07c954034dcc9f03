"""Every spec.toml key in words: what it means, whether it is required, its default, an example.

One table serves three readers: `load_spec`'s error for a missing key (what the key means and
an example line to add), docs/authoring.md's key table (tests/test_authoring_guide.py checks
the guide shows exactly `markdown_table()`), and that test's check that this table lists
exactly the keys exercise.py reads.
"""

from __future__ import annotations

from dataclasses import dataclass

TOP = "top level"
PROFILE = "[profiles.NAME]"


@dataclass(frozen=True)
class SpecKey:
    key: str
    table: str  # TOP or PROFILE
    required: bool
    default: str  # what an optional key is when left out ("" for a required one)
    meaning: str
    example: str  # a line to paste into spec.toml


SPEC_KEYS: tuple[SpecKey, ...] = (
    SpecKey(
        "name", TOP, True, "", "the exercise's name; equal to its folder's", 'name = "shirts_dense"'
    ),
    SpecKey(
        "title",
        TOP,
        True,
        "",
        "a one-line title for reports",
        'title = "Clothes with a dense network"',
    ),
    SpecKey(
        "notebook",
        TOP,
        True,
        "",
        "the notebook's file name in source/, release/, solutions/",
        'notebook = "shirts_dense.ipynb"',
    ),
    SpecKey(
        "datasets",
        TOP,
        True,
        "",
        "data sets mounted read-only at DATA_DIR in both stages",
        'datasets = ["fashion_mnist"]',
    ),
    SpecKey(
        "artifacts",
        TOP,
        True,
        "",
        "files the locked (and grade-time) cells save into ARTIFACT_DIR; one missing makes the "
        "verdict missing_artifact",
        'artifacts = ["answers.json", "history.json", "model.keras"]',
    ),
    SpecKey(
        "profiles",
        TOP,
        True,
        "",
        "one table per profile, smoke and full (keys below)",
        "[profiles.smoke]",
    ),
    SpecKey(
        "draft",
        TOP,
        False,
        "false",
        "still being written: left out of demo, check-solutions and release --check",
        "draft = true",
    ),
    SpecKey(
        "gradetime_cells",
        TOP,
        False,
        "none",
        "a `# %%`-separated file of cells appended to the grader's copy, calling the student's "
        "functions on hidden inputs",
        'gradetime_cells = "gradetime.py"',
    ),
    SpecKey(
        "hidden_module",
        TOP,
        False,
        "none",
        "a module making hidden inputs from [hidden] values: the checks import it, grade-time "
        "cells call it as `_dg_inputs`",
        'hidden_module = "hidden_inputs.py"',
    ),
    SpecKey(
        "visible_checks",
        TOP,
        False,
        "[] (every check hidden until grades are published)",
        "checks whose result a student sees on submitting (Gradescope `visible`); the others "
        "are `after_published`",
        'visible_checks = ["test_architecture::test_layers"]',
    ),
    SpecKey(
        "show_thresholds",
        TOP,
        False,
        "true",
        "feedback pages show each measurement's threshold beside it",
        "show_thresholds = false",
    ),
    SpecKey(
        "hidden",
        TOP,
        False,
        "{}",
        "values the student never sees (the HIDDEN dict of grade-time cells, the `hidden` fixture)",
        "[hidden]",
    ),
    SpecKey(
        "models",
        TOP,
        False,
        "[]",
        "trained models the notebook reads, mounted beside the data (smoke: the file shipped in "
        "`src/deepgrade/models/shipped/`, the same on every host; full: imported by the "
        "instructor)",
        'models = ["resnet1"]',
    ),
    SpecKey(
        "data",
        PROFILE,
        True,
        "",
        '"synth" (look-alikes made by deepgrade) or "real" (imported into the cache)',
        'data = "synth"',
    ),
    SpecKey(
        "cell_timeout_s", PROFILE, True, "", "seconds one cell may run", "cell_timeout_s = 300"
    ),
    SpecKey(
        "notebook_timeout_s",
        PROFILE,
        True,
        "",
        "seconds the whole notebook may run",
        "notebook_timeout_s = 600",
    ),
    SpecKey("memory_mb", PROFILE, True, "", "memory limit of one run, in MB", "memory_mb = 4096"),
    SpecKey(
        "artifact_cap_mb",
        PROFILE,
        True,
        "",
        "size cap of the artifact folder, in MB",
        "artifact_cap_mb = 64",
    ),
    SpecKey(
        "parameters",
        PROFILE,
        False,
        "{}",
        "values the grader sets in the notebook's parameters cell (each name must be there)",
        "parameters = { EPOCHS = 5, SEED = 0 }",
    ),
    SpecKey(
        "thresholds",
        PROFILE,
        False,
        "{}",
        "numbers the checks read with the `threshold` fixture (calibrate them)",
        "thresholds = { test_accuracy = 0.8 }",
    ),
    SpecKey(
        "backend_thresholds",
        PROFILE,
        False,
        "{}",
        "per Keras backend, thresholds that replace the profile's (calibrate each backend)",
        "backend_thresholds = { jax = { tta_cost_ratio = 16.0 } }",
    ),
    SpecKey(
        "borderline",
        PROFILE,
        False,
        "{}",
        "per threshold, the margin within which a measurement is borderline (class report)",
        "borderline = { test_accuracy = 0.02 }",
    ),
    SpecKey(
        "borderline_runs",
        PROFILE,
        False,
        "2",
        "K: a borderline result is run again with K other seeds and decided by the median",
        "borderline_runs = 2",
    ),
    SpecKey(
        "borderline_auto",
        PROFILE,
        False,
        "false",
        "re-run borderline results while grading (else `deepgrade regrade --borderline`)",
        "borderline_auto = true",
    ),
    SpecKey(
        "gpus", PROFILE, False, "0", "fraction of a GPU one grading worker needs", "gpus = 0.25"
    ),
    SpecKey(
        "cpus",
        PROFILE,
        False,
        "2",
        "CPUs one run needs: what each task asks of a Ray node (the kernel uses 2 threads)",
        "cpus = 2",
    ),
    SpecKey(
        "gpu_memory_mb",
        PROFILE,
        False,
        "a share of the GPU",
        "GPU memory one run may take, in MB: its cap, and how many runs share a GPU",
        "gpu_memory_mb = 8192",
    ),
    SpecKey(
        "data_sizes",
        PROFILE,
        False,
        "the real sizes",
        "sizes of the synthetic look-alikes, per data set",
        "data_sizes = { fashion_mnist = { n_train = 5000, n_test = 1000 } }",
    ),
)


def key_help(key: str) -> str:
    """'(what it means), e.g. `line`' for a key's error message; "" for an unknown key."""
    for entry in SPEC_KEYS:
        if entry.key == key:
            return f" ({entry.meaning}), e.g. `{entry.example}`; see docs/authoring.md"
    return ""


def markdown_table() -> str:
    """The key table of docs/authoring.md."""
    lines = [
        "| key | table | required | default | meaning | example |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for k in SPEC_KEYS:
        required = "required" if k.required else "optional"
        default = k.default or "-"
        lines.append(
            f"| `{k.key}` | {k.table} | {required} | {default} | {k.meaning} | `{k.example}` |"
        )
    return "\n".join(lines)
