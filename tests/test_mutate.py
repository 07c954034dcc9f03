"""`deepgrade mutate`: the operators on small snippets, the mutants of a notebook, the report
and its exit code on made-up results, the README block, and one real run on a tiny subset."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import nbformat
import pytest

from deepgrade import mutation_ops, notebooks
from deepgrade.cli import main
from deepgrade.errors import DeepgradeError, InputError
from deepgrade.mutate import (
    REFERENCE,
    Accepted,
    Mutant,
    build_report,
    load_accepted,
    make_mutants,
    select,
    short_change,
    write_mutants,
)
from deepgrade.mutate_report import BEGIN, END, markdown, write_readme
from deepgrade.results import CheckResult, SubmissionResult, Verdict

ROOT = Path(__file__).resolve().parents[1]
NO_CONTEXT = mutation_ops.Context(parameters={}, released={}, calls={})

MODEL = """\
model = keras.Sequential(
    [
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(20, (5, 5), activation="relu"),
        keras.layers.MaxPooling2D((2, 2), strides=2),
        keras.layers.Conv2D(8, 3, padding="valid", activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.25),
        keras.layers.Dense(100, activation="relu"),
        keras.layers.Dense(2, activation="softmax"),
    ]
)
model.compile(optimizer=keras.optimizers.Adam(beta_1=0.9), loss="categorical_crossentropy")
X = x.astype("float32") / 255.0 - 0.5
Y = keras.utils.to_categorical(y, 2)
history = model.fit(X, Y, epochs=EPOCHS)
"""

INFERENCE = """\
views = [(False, 0, 0), (True, 0, 0),
    (False, 2, 0),
]
names = [("a", 1), ("b", 2, 3)]  # tuples of different lengths: not views
padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="edge")
mean = probabilities.reshape(len(views), n, -1).mean(axis=0)
best = np.max(probabilities, 1)
accuracy = np.mean(np.argmax(mean, axis=1) == y)  # no axis: an accuracy, left alone
shift = keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect")
base.trainable = False
fine_tune_at = 100
for layer in base.layers[:fine_tune_at]:
    layer.trainable = False
for layer in model.layers[3:]:
    print(layer.name)  # no trainable set here: not a fine-tuning loop
model.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True))
"""


def changes(source: str, operator: str, ctx: mutation_ops.Context = NO_CONTEXT) -> list[str]:
    """The one operator's edits on `source`, each as the changed text `before -> after`."""
    found = []
    for edit in mutation_ops.edits(source, ctx, {operator: mutation_ops.OPERATORS[operator]}):
        mutated = mutation_ops.apply(source, edit)
        ast.parse(mutated)  # every mutant is valid Python
        assert edit.operator == operator
        found.append(f"{source[edit.start : edit.end]} -> {edit.text}")
    return found


@pytest.mark.parametrize(
    ("operator", "expected"),
    [
        (
            "padding",
            [' -> , padding="same"', '"valid" -> "same"'],
        ),
        ("kernel_size", ["(5, 5) -> (3, 3)", "3 -> 5"]),
        (
            "pool_size",
            ["(2, 2) -> (3, 3)", "MaxPooling2D -> AveragePooling2D"],
        ),
        ("strides", [" -> , strides=2", "2 -> 1", " -> , strides=2"]),
        ("units", ["20 -> 40", "8 -> 16", "100 -> 200"]),  # the softmax output is left alone
        ("dropout", ["0.25 -> 0.5"]),
        (
            "activation",
            [
                '"relu" -> "tanh"',
                '"relu" -> "elu"',
                '"relu" -> "linear"',
                '"relu" -> "tanh"',
                '"relu" -> "elu"',
                '"relu" -> "linear"',
                '"relu" -> "tanh"',
                '"relu" -> "elu"',
                '"relu" -> "linear"',
                '"softmax" -> "sigmoid"',
            ],
        ),
        (
            "scaling",
            [
                'x.astype("float32") / 255.0 - 0.5 -> x.astype("float32") / 255.0',
                "255.0 -> 127.5",
                'x.astype("float32") / 255.0 -> x.astype("float32")',
            ],
        ),
        ("labels", ["keras.utils.to_categorical(y, 2) -> y", "2 -> 3"]),
        (
            "loss",
            [
                '"categorical_crossentropy" -> "binary_crossentropy"',
                '"categorical_crossentropy" -> "mean_squared_error"',
            ],
        ),
        (
            "optimizer",
            ["Adam -> SGD", " -> , learning_rate=0.01", "0.9 -> 0.5"],
        ),
        ("epochs", ["EPOCHS -> EPOCHS // 2"]),
    ],
)
def test_each_operator_finds_its_sites(operator: str, expected: list[str]) -> None:
    assert changes(MODEL, operator) == expected


@pytest.mark.parametrize(
    ("operator", "expected"),
    [
        (
            "views",
            [
                "(False, 0, 0),  -> ",  # each view dropped in turn, the other lines kept
                ", (True, 0, 0) -> ",
                "    (False, 2, 0),\n -> ",
                "(False, 2, 0) -> (True, 2, 0)",
                "(False, 2, 0) -> (False, -2, 0)",  # one changed field per column, new views
            ],
        ),
        ("aggregate", ["mean -> max", "mean -> sum", "max -> mean"]),
        (
            "pad_mode",
            [
                '"edge" -> "constant"',
                '"edge" -> "reflect"',
                '"reflect" -> "constant"',
                '"reflect" -> "nearest"',
            ],
        ),
        ("trainable", ["False -> True", "False -> True"]),
        ("fine_tune", ["[:fine_tune_at] -> [fine_tune_at:]", "100 -> 90", "100 -> 110"]),
        ("from_logits", ["True -> False"]),
        ("loss", ["BinaryCrossentropy -> CategoricalCrossentropy"]),
    ],
)
def test_inference_and_transfer_operators_find_their_sites(
    operator: str, expected: list[str]
) -> None:
    assert changes(INFERENCE, operator) == expected


def test_views_mutants_keep_every_other_view() -> None:
    mutated = [
        mutation_ops.apply(INFERENCE, edit)
        for edit in mutation_ops.edits(INFERENCE, NO_CONTEXT, {"v": mutation_ops.op_views})
    ]
    views = [ast.literal_eval(m.split("views = ", 1)[1].split("]", 1)[0] + "]") for m in mutated]
    assert views == [
        [(True, 0, 0), (False, 2, 0)],
        [(False, 0, 0), (False, 2, 0)],
        [(False, 0, 0), (True, 0, 0)],
        [(False, 0, 0), (True, 0, 0), (True, 2, 0)],
        [(False, 0, 0), (True, 0, 0), (False, -2, 0)],
    ]
    assert all(m.split("]", 1)[1] == INFERENCE.split("]", 1)[1] for m in mutated)


def test_fine_tune_moves_a_literal_or_unknown_bound() -> None:
    literal = "for layer in base.layers[120:]:\n    layer.trainable = True\n"
    assert changes(literal, "fine_tune") == ["[120:] -> [:120]", "120 -> 108", "120 -> 132"]
    unknown = "for layer in base.layers[:at]:\n    layer.trainable = False\n"
    assert changes(unknown, "fine_tune") == ["[:at] -> [at:]", "at -> at - 10", "at -> at + 10"]


def test_constant_replaces_a_notebook_parameter_by_its_released_value() -> None:
    ctx = mutation_ops.Context(parameters={"EPOCHS": 8}, released={"EPOCHS": 30}, calls={})
    assert changes(MODEL, "constant", ctx) == ["EPOCHS -> 30"]
    # the profile runs the released value: another constant, or the mutant would change nothing
    same = mutation_ops.Context(parameters={"EPOCHS": 30}, released={"EPOCHS": 30}, calls={})
    assert changes(MODEL, "constant", same) == ["EPOCHS -> 31"]


def test_constant_replaces_a_function_parameter_by_the_value_its_callers_pass() -> None:
    cells = [
        "def build(n1, width=1, x=None):\n"
        "    x = n1\n"  # x is reassigned: never replaced
        "    return keras.layers.Dense(n1 // width)\n",
        "model = build(8, WIDTH)\n",
    ]
    calls = mutation_ops.call_values(cells, {"WIDTH": 4})
    assert calls == {"build": {"n1": 8, "width": 4}}  # the caller's WIDTH beats the default
    ctx = mutation_ops.Context(parameters={"WIDTH": 4}, released={}, calls=calls)
    assert changes(cells[0], "constant", ctx) == ["n1 -> 8", "n1 -> 8", "width -> 4"]


def test_edits_keep_everything_else_including_non_ascii_text() -> None:
    source = 'título = "ñ"  # comentário\nlayer = keras.layers.Dense(64, activation="relu")\n'
    (edit,) = mutation_ops.edits(source, NO_CONTEXT, {"units": mutation_ops.op_units})
    assert mutation_ops.apply(source, edit) == source.replace("64", "128")


def code_cell(source: str, grade_id: str | None, *, solution: bool, locked: bool) -> Any:
    cell = nbformat.v4.new_code_cell(source)
    if grade_id:
        cell.metadata["nbgrader"] = {
            "grade_id": grade_id, "solution": solution, "locked": locked, "grade": False,
        }  # fmt: skip
    return cell


def tiny_solution(tmp_path: Path) -> Path:
    params = nbformat.v4.new_code_cell("EPOCHS = 30\nSEED = 0\n")
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        params,
        code_cell(
            'setup = keras.layers.Dense(4, activation="relu")\n', "setup", solution=False,
            locked=True,
        ),
        code_cell(MODEL, "train", solution=True, locked=False),
        code_cell("%matplotlib inline\nx = 1\n", "magic", solution=True, locked=False),
        code_cell('free = keras.layers.Dense(4, activation="relu")\n', None, solution=False,
                  locked=False),
        code_cell(INFERENCE, "infer", solution=True, locked=False),
    ]  # fmt: skip
    path = tmp_path / "solution.ipynb"
    nbformat.write(nb, path)
    return path


def test_mutants_of_a_notebook_touch_only_solution_cells(tmp_path: Path) -> None:
    made = make_mutants(tiny_solution(tmp_path), {"EPOCHS": 2})
    assert {m.cell for m in made.mutants} == {"train", "infer"}  # locked, unmarked: untouched
    assert [(s.cell, s.reason.split(":")[0]) for s in made.skipped] == [
        ("magic", "not plain Python (line 1)")
    ]
    sources = [m.source for m in made.mutants]
    assert len(set(sources)) == len(sources)
    for mutant in made.mutants:
        ast.parse(mutant.source)
        original = MODEL if mutant.cell == "train" else INFERENCE
        assert mutant.original == original and mutant.source != original
    operators = {m.operator for m in made.mutants}
    assert operators == set(mutation_ops.OPERATORS)
    numbers = [m.number for m in made.mutants]
    assert numbers == list(range(1, len(numbers) + 1))
    epochs = [m for m in made.mutants if m.operator == "constant"]
    assert [(m.line, m.short) for m in epochs] == [(16, "EPOCHS -> 30")]


def test_identical_mutants_are_made_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    solution = tiny_solution(tmp_path)
    once = make_mutants(solution, {}, operators=["activation"]).mutants
    monkeypatch.setitem(mutation_ops.OPERATORS, "again", mutation_ops.op_activation)
    twice = make_mutants(solution, {}, operators=["activation", "again"]).mutants
    assert [m.source for m in twice] == [m.source for m in once] and len(once) == 10


def test_mutant_notebooks_change_exactly_one_cell(tmp_path: Path) -> None:
    solution = tiny_solution(tmp_path)
    mutants = make_mutants(solution, {}).mutants
    paths = write_mutants(solution, mutants, tmp_path / "out")
    original = notebooks.read_notebook(solution)
    assert notebooks.read_notebook(paths[REFERENCE]).cells == original.cells
    for mutant in mutants:
        cells = notebooks.read_notebook(paths[mutant.name]).cells
        differ = [i for i, (a, b) in enumerate(zip(cells, original.cells, strict=True)) if a != b]
        at = 2 if mutant.cell == "train" else 5
        assert differ == [at] and cells[at].source == mutant.source
    # the edit is the changed line alone when it occurs once: ready for a samples.toml sample
    dropout = next(m for m in mutants if m.operator == "dropout")
    assert dropout.edit().find == "        keras.layers.Dropout(0.25),\n"


def test_short_change_keeps_only_what_differs() -> None:
    assert short_change("Conv2D(20, (5, 5))", "Conv2D(20, (3, 3))") == "5, 5 -> 3, 3"
    assert short_change("a = x / 255.0 - 0.5", "a = x / 255.0") == "- 0.5 -> (nothing)"
    assert short_change('f(a="relu")', 'f(a="tanh")') == '"relu" -> "tanh"'


def test_select_by_operator_cell_or_name_and_limit(tmp_path: Path) -> None:
    mutants = make_mutants(tiny_solution(tmp_path), {}).mutants
    assert {m.operator for m in select(mutants, ["dropout", "loss"], None)} == {"dropout", "loss"}
    assert len(select(mutants, ["train"], 3)) == 3
    assert [m.name for m in select(mutants, ["mutant-002"], None)] == ["mutant-002"]
    assert select(mutants, [], None) == list(mutants)


# -- the report and its exit code, on made-up results -------------------------------------


def mutant(number: int, change: str = "0.25 -> 0.5") -> Mutant:
    before, after = change.split(" -> ")
    return Mutant(number, "dropout", "train", 3, before, after, "a = 1\n", "a = 2\n")


def result(name: str, failed: tuple[str, ...] = (), verdict: Verdict = Verdict.GRADED) -> Any:
    checks = tuple(
        CheckResult(f"test_x::{check}", check, 0.0 if check in failed else 2.0, 2.0,
                    check not in failed)
        for check in ("test_a", "test_b")
    )  # fmt: skip
    return SubmissionResult(name, "ex", "smoke", "h", verdict, "", checks, 1.0, 1.0)


def test_report_marks_killed_survived_and_accepted_mutants() -> None:
    mutants = [mutant(1, "a -> b"), mutant(2, "c -> d"), mutant(3, "e -> f")]
    results = {
        REFERENCE: result(REFERENCE),
        "mutant-001": result("mutant-001", failed=("test_b",)),
        "mutant-002": result("mutant-002"),
        "mutant-003": result("mutant-003"),
    }
    accepted = [Accepted("train", "e -> f", "free choice"), Accepted("train", "x -> y", "old")]
    report = build_report("ex", "smoke", mutants, results, accepted, subset=False)
    assert [o.status for o in report.outcomes] == ["killed", "SURVIVED", "accepted"]
    assert report.outcomes[0].lost == ["test_x::test_b"]
    assert report.problems == ["SURVIVED: train line 3 (dropout): c -> d"]
    assert report.exit_code == 1
    assert [a.change for a in report.stale] == ["x -> y"]
    data = json.loads(json.dumps(report.to_json()))
    assert data["survivors"] == 1 and data["accepted"] == 1 and data["killed"] == 1
    assert data["mutants"][2]["accepted"] == "free choice"
    # once the survivor is accepted too, the run is clean
    accepted.append(Accepted("train", "c -> d", "equivalent here"))
    clean = build_report("ex", "smoke", mutants, results, accepted, subset=True)
    assert clean.exit_code == 0 and clean.problems == [] and clean.stale == ()


def test_report_fails_on_a_short_reference_or_a_grader_error() -> None:
    mutants = [mutant(1)]
    short = {REFERENCE: result(REFERENCE, failed=("test_a",)), "mutant-001": result("m", ("a",))}
    report = build_report("ex", "smoke", mutants, short, [], subset=False)
    assert report.exit_code == 1 and "reference solution itself got 2/4" in report.problems[0]
    broken = {
        REFERENCE: result(REFERENCE),
        "mutant-001": result("m", verdict=Verdict.GRADER_ERROR),
    }
    report = build_report("ex", "smoke", mutants, broken, [], subset=False)
    assert report.outcomes[0].status == "grader_error" and report.exit_code == 1
    # a cell error that keeps every point survives: the points are the grade, not the verdict
    crashed = {REFERENCE: result(REFERENCE), "mutant-001": result("m", verdict=Verdict.CELL_ERROR)}
    report = build_report("ex", "smoke", mutants, crashed, [], subset=False)
    assert report.outcomes[0].status == "SURVIVED"


def test_accepted_survivors_are_read_from_samples_toml(tmp_path: Path) -> None:
    (tmp_path / "samples.toml").write_text(
        '[[mutation_accepted]]\ncell = "train"\nchange = "0.25 -> 0.5"\nreason = "free"\n'
    )
    assert load_accepted(tmp_path) == [Accepted("train", "0.25 -> 0.5", "free")]
    (tmp_path / "samples.toml").write_text('[[mutation_accepted]]\ncell = "train"\n')
    with pytest.raises(InputError, match=r"samples\.toml.*needs cell, change and reason"):
        load_accepted(tmp_path)
    assert load_accepted(tmp_path / "none") == []


def test_readme_block_is_appended_once_then_replaced(tmp_path: Path) -> None:
    mutants = [mutant(1, "a | b -> c")]
    results = {REFERENCE: result(REFERENCE), "mutant-001": result("m", failed=("test_a",))}
    report = build_report("ex", "smoke", mutants, results, [], subset=False)
    readme = tmp_path / "README.md"
    readme.write_text("# ex\n\nchecks\n")
    write_readme(readme, markdown(report, "deepgrade mutate ex"))
    first = readme.read_text()
    assert first.startswith("# ex\n\nchecks\n\n## Mutation testing")
    assert "killed by a" in first and "`a \\| b -> c`" in first
    survived = {REFERENCE: result(REFERENCE), "mutant-001": result("m")}
    again = build_report("ex", "smoke", mutants, survived, [], subset=False)
    write_readme(readme, markdown(again, "deepgrade mutate ex"))
    text = readme.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1 and "| SURVIVED |" in text
    assert "killed by" not in text and text.startswith(first.split(BEGIN)[0])


# -- one real run --------------------------------------------------------------------------


@pytest.mark.slow
def test_a_real_mutant_is_graded_and_killed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sandbox_tool: object
) -> None:
    """catdog_split's classify_file without the - 0.5 centring: the hidden image files come
    back wrong, and the reference keeps full marks (two notebooks graded in the sandbox)."""
    code = main(
        ["--root", str(ROOT), "mutate", "catdog_split", "--only", "classify_file",
         "--limit", "1", "--workers", "2", "--json", "--workdir", str(tmp_path)]
    )  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert data["subset"] is True and data["reference"]["points"] == data["reference"]["max_points"]
    (graded,) = data["mutants"]
    assert graded["cell"] == "classify_file" and graded["operator"] == "scaling"
    assert graded["status"] == "killed" and graded["lost"] and code == 0
    assert graded["points"] < graded["max_points"]


def test_only_naming_nothing_known_is_an_error(tmp_path: Path) -> None:
    mutants = make_mutants(tiny_solution(tmp_path), {}).mutants
    with pytest.raises(DeepgradeError, match="--only paddin: no mutant has that operator"):
        select(mutants, ["paddin"], None)


def test_list_shows_the_mutants_without_grading(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--root", str(ROOT), "mutate", "signs_cnn", "--list", "--only", "epochs"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and len(lines) == 1
    assert lines[0].endswith("(epochs): epochs=EPOCHS, -> epochs=EPOCHS // 2,")
