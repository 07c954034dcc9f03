"""The similarity report: near-copies flagged, independent solutions not, shared weights found.

The SIGNS answers are short and the exercise fixes their layers, so independent solutions
share a lot by necessity; the test uses the reference, a near-copy of it (names changed,
comments and blank lines added, as a student hiding a copy would) and an independent solution
written another way (the functional API, loops, a one-hot by indexing).
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path

import nbformat
import pytest

from deepgrade import notebooks
from deepgrade.results import CheckResult, SubmissionResult, Verdict
from deepgrade.similarity import (
    Answers,
    answer_code,
    answer_ids,
    class_similarity,
    compare_answers,
    write_report,
)

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "signs_cnn" / "signs_cnn.ipynb"
RELEASE = ROOT / "release" / "signs_cnn" / "signs_cnn.ipynb"

INDEPENDENT = {
    "scale": "def to_unit(images):\n    return images / np.float32(255)\n\n"
    "X_train, X_val, X_test = (to_unit(a.astype(np.float32)) for a in "
    "(X_train_int, X_val_int, X_test_orig))\n",
    "one_hot": 'eye = np.eye(6, dtype="float32")\n'
    "Y_train_hot, Y_val_hot, Y_test_hot = eye[Y_train.ravel()], eye[Y_val.ravel()], "
    "eye[Y_test.ravel()]\n",
    "build_model": "def build_model(n1, n2, n3, n4, n5, n6):\n"
    "    inputs = keras.Input(shape=(64, 64, 3))\n    x = inputs\n"
    "    for filters in (n1, n2, n3):\n"
    '        x = keras.layers.Conv2D(filters, 3, activation="relu")(x)\n'
    "        x = keras.layers.MaxPooling2D(2)(x)\n    x = keras.layers.Flatten()(x)\n"
    "    for units in (n4, n5):\n"
    '        x = keras.layers.Dense(units, activation="relu")(x)\n'
    '    return keras.Model(inputs, keras.layers.Dense(n6, activation="softmax")(x))\n',
    "params_per_layer": "def conv(k, c_in, c_out):\n    return k * k * c_in * c_out + c_out\n\n"
    "def dense(n_in, n_out):\n    return (n_in + 1) * n_out\n\n"
    'params_per_layer = {"conv1": conv(3, 3, 8), "conv2": conv(3, 8, 16), '
    '"conv3": conv(3, 16, 32), "dense1": dense(1152, 64), "dense2": dense(64, 32), '
    '"dense3": dense(32, 6)}\ntotal_params = sum(params_per_layer.values())\n',
    "train": "model.compile(keras.optimizers.Adam(1e-3, 0.9, 0.999), "
    '"categorical_crossentropy", ["accuracy"])\n'
    "history = model.fit(X_train, Y_train_hot, validation_data=(X_val, Y_val_hot), "
    "epochs=EPOCHS, batch_size=32, verbose=0)\n",
    "evaluate": "train_eval, val_eval, test_eval = [model.evaluate(x, y, verbose=0) for x, y "
    "in ((X_train, Y_train_hot), (X_val, Y_val_hot), (X_test, Y_test_hot))]\n",
    "predict": "y_pred = model.predict(X_test, verbose=0).argmax(axis=-1)\n",
    "scatter": 'plt.figure()\nplt.plot(Y_test, "ro", label="true")\n'
    'plt.plot(y_pred, "b.", label="predicted")\nplt.legend()\nplt.show()\n',
    "activation_model": "activation_model = keras.Model(model.inputs, "
    "[l.output for l in model.layers[:6]])\n",
    "expand_dims": "img_tensor = X_test[7][np.newaxis, ...]\n",
    "activations": "activations = activation_model.predict(img_tensor, verbose=0)\n"
    "first_activation = activations[0]\n",
    "plot_activations": "for act in activations:\n    plt.matshow(act[0, :, :, 0])\n"
    "    plt.show()\n",
}
RENAMES = {"model": "net", "optimizer": "opt", "probabilities": "probs", "examples": "idx",
           "layer_outputs": "outs", "index": "k", "history": "hist"}  # fmt: skip


def near_copy(source: str) -> str:
    """What a student hiding a copy does: other names, comments, blank lines."""
    for old, new in RENAMES.items():
        source = re.sub(rf"\b{old}\b", new, source)
    lines = []
    for number, line in enumerate(source.splitlines()):
        lines.append(line)
        if number % 3 == 0 and not line.rstrip().endswith(("(", ",", "[", "{")):
            lines.append("# my own work, step by step")
    return "\n\n".join(lines) + "\n"


def notebook(path: Path, answers: dict[str, str] | None = None, copy: bool = False) -> Path:
    nb = nbformat.read(SOLUTION, as_version=4)
    for cell in nb.cells:
        gid = notebooks.grade_id(cell)
        if cell.cell_type == "code" and notebooks.is_solution(cell) and gid:
            if answers is not None:
                cell.source = answers[gid]
            elif copy:
                cell.source = near_copy(cell.source)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def code_of(path: Path) -> str:
    ids = answer_ids(notebooks.read_notebook(RELEASE))
    return answer_code(notebooks.read_notebook(path), ids)


def test_near_copies_are_flagged_and_independent_solutions_are_not(tmp_path: Path) -> None:
    answers = [
        Answers("ana", code_of(notebook(tmp_path / "ana.ipynb"))),
        Answers("bo", code_of(notebook(tmp_path / "bo.ipynb", copy=True))),
        Answers("cy", code_of(notebook(tmp_path / "cy.ipynb", INDEPENDENT))),
    ]
    boilerplate = code_of(RELEASE)
    flagged, pairs = compare_answers(answers, boilerplate)
    assert pairs == 3
    assert [(m.first, m.second) for m in flagged] == [("ana", "bo")]
    assert min(flagged[0].first_share, flagged[0].second_share) > 0.8
    everything, _ = compare_answers(answers, boilerplate, threshold=0.0)
    shares = {(m.first, m.second): m.share for m in everything}
    assert shares.get(("ana", "cy"), 0) < 0.3 and shares.get(("bo", "cy"), 0) < 0.3


def result(student: str, path: Path) -> tuple[SubmissionResult, str]:
    return (
        SubmissionResult(
            student=student,
            exercise="signs_cnn",
            profile="smoke",
            content_hash=hashlib.sha256(path.read_bytes()).hexdigest(),
            verdict=Verdict.GRADED,
            detail="",
            checks=(CheckResult("a::b", "B", 1.0, 1.0, True),),
            stage1_seconds=1.0,
            stage2_seconds=1.0,
            source_path=str(path),
        ),
        "t",
    )


def saved_model(path: Path, weights: bytes, when: str) -> None:
    """A .keras file as Keras writes it: the same weights saved twice differ in metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"date_saved": when}))
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", weights)


def test_the_class_report_lists_pairs_and_identical_weights(tmp_path: Path) -> None:
    subs = tmp_path / "subs"
    graded = [
        result("ana", notebook(subs / "ana.ipynb")),
        result("bo", notebook(subs / "bo.ipynb", copy=True)),
        result("cy", notebook(subs / "cy.ipynb", INDEPENDENT)),
        result("di", notebook(subs / "di.ipynb", INDEPENDENT)),
    ]
    runs = tmp_path / "runs"
    for (res, _), weights in zip(graded, [b"w-ana", b"w-bo", b"same", b"same"], strict=True):
        folder = runs / f"{res.student}-{res.content_hash[:12]}" / "artifacts"
        saved_model(folder / "model.keras", weights, res.student)
    (subs / "di.ipynb").write_text("{}")  # changed since it was graded: left out, said
    report = class_similarity(graded, exercise="signs_cnn", release_notebook=RELEASE, runs=runs)
    assert report.compared == 3 and [(m.first, m.second) for m in report.flagged] == [("ana", "bo")]
    assert report.left_out == (f"di: {subs / 'di.ipynb'} changed since it was graded",)
    assert report.same_weights == ()  # di was left out: cy's weights are its own
    page, data = write_report(report, tmp_path / "reports")
    html = page.read_text()
    assert "ana and bo" in html and "<mark>" in html and "No pair" not in html
    assert json.loads(data.read_text())["flagged"][0]["first"] == "ana"


def test_identical_weights_are_found_whatever_the_save_date(tmp_path: Path) -> None:
    from deepgrade.similarity import artifact_digests, same_weights

    for student, when in (("cy", "2026-12-01"), ("di", "2026-12-02"), ("ed", "2026-12-03")):
        weights = b"trained once" if student != "ed" else b"trained again"
        saved_model(tmp_path / student / "model.keras", weights, when)
        (tmp_path / student / "answers.json").write_text(f'{{"who": "{student}"}}')
    digests = {s: artifact_digests(tmp_path / s) for s in ("cy", "di", "ed")}
    groups = same_weights(digests)
    assert [(g.name, g.students) for g in groups] == [("model.keras", ("cy", "di"))]


def test_without_copydetect_the_report_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import builtins

    from deepgrade.errors import DeepgradeError

    real_import = builtins.__import__

    def refuse(name: str, *args: object, **kwargs: object) -> object:
        if name == "copydetect":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", refuse)
    with pytest.raises(DeepgradeError, match=r"pip install 'deepgrade\[similarity\]'"):
        compare_answers([Answers("a", "x = 1\n")], "")
