"""deepgrade's check toolkit: what an exercise's hidden checks are written with.

Hidden checks are plain pytest files in `autograder/<exercise>/`, run by the stage-2 process
under deepgrade's plugin (`deepgrade.checks.plugin`), which provides the fixtures:

    model          model.keras, validated (Keras built-ins only) and loaded without compiling
    load_model     load_model("other.keras"): the same for another saved model
    dataset        the grader's own copy of the exercise's first data set (its loader's value)
    history        history.json as {metric: [one float per epoch]}
    answers        answers.json as a dict; a missing key fails naming the answer
    artifact       artifact("name") -> Path of a saved file; fails when it was not saved
    profile        the profile being graded (parameters such as EPOCHS, limits, thresholds)
    threshold      threshold("test_accuracy") -> the profile's threshold
    measure        measure("test_accuracy", value): recorded for the gradebook and calibration
    hidden         the spec's [hidden] table (never put its values in a message)
    data_dir       the folder of the grader's data files
    stage1_usage   CPU time stage 1's runner measured of `# deepgrade-measure:` cells

and this package the helpers for the checks every exercise repeats. Each helper fails the
check with a message written for the student (what is wrong and what to do), never with a
traceback or the check's source: a student reads every message.

    from deepgrade.checks import expect_history, predict_or_fail, expect_accuracy

    @pytest.mark.points(1)
    def test_history(history, profile):
        "Training ran for EPOCHS epochs with validation data"
        expect_history(history, epochs=profile.parameters["EPOCHS"])

Importing this package costs no Keras, numpy or pytest import: those load when a helper runs.
"""

from __future__ import annotations

from deepgrade.checks.compiled import (
    compile_config,
    expect_loss,
    expect_optimizer,
    loss_name,
    optimizer_steps,
)
from deepgrade.checks.expect import close, expect_accuracy, expect_history, fail
from deepgrade.checks.layers import (
    LayerInfo,
    expect_input,
    expect_layers,
    flat_layers,
    input_shape,
    layer_table,
    of_kind,
    pair,
)
from deepgrade.checks.predict import predict_or_fail, score_or_fail

__all__ = [
    "LayerInfo",
    "close",
    "compile_config",
    "expect_accuracy",
    "expect_history",
    "expect_input",
    "expect_layers",
    "expect_loss",
    "expect_optimizer",
    "fail",
    "flat_layers",
    "input_shape",
    "layer_table",
    "loss_name",
    "of_kind",
    "optimizer_steps",
    "pair",
    "predict_or_fail",
    "score_or_fail",
]
