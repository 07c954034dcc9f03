# Grade-time cells for tta_resnet1: appended by the grader to its own copy of the submission,
# after every student and locked cell, and never released. `HIDDEN` is spec.toml's [hidden]
# table, loaded by the grader's own first cell from a file stage 1 writes just before it runs,
# and `_dg_inputs` is hidden_inputs.py, which makes the hidden images from it (the checks import
# the same module to rebuild them). They call the student's preprocess and tta_predict on hidden
# images and save what those return. Every call gets its own cell, so one failing function costs
# only its own checks; each `# %% calls=name` marker names the student function its cell calls
# (a failure there is reported as that function failing on the grader's inputs, never with its
# message).
#
# tta_predict is judged on its measured calls (`# deepgrade-measure: NAME`): stage 1's runner,
# a grader process outside this kernel, replaces __DG_NONCE__ with a fresh random number just
# before such a cell runs and sums the CPU time of the sandbox's processes while it runs. The
# images of the call are picked with that number, so they exist nowhere before the measurement
# starts; the checks rebuild them from the nonce and compare the output with the grader's own
# 11-view means, and the cost with the grader's own plain predict (stage 2). Nothing this kernel
# counts or times decides a point.

# %%
import os as _dg_os
import time as _dg_time

import keras as _dg_keras
import numpy as _dg_np

_dg_test_uint8 = _dg_inputs.test_images(_dg_os.path.join(DATA_DIR, "test_batch"))  # noqa: F821
_dg_spec = HIDDEN["images"]  # noqa: F821 (loaded by the grader)
_dg_hidden_uint8 = _dg_inputs.pick(_dg_test_uint8, _dg_spec)  # noqa: F821
# The grader's own copy of the network: not what the student's cells did to `model`.
_dg_model = _dg_keras.saving.load_model(_dg_os.path.join(DATA_DIR, "resnet1.keras"))  # noqa: F821
_dg_artifact = lambda name: _dg_os.path.join(ARTIFACT_DIR, name)  # noqa: E731, F821


def _dg_images(nonce):
    """Test images picked with the runner's nonce: they exist nowhere before the measured cell."""
    return _dg_inputs.scale(_dg_inputs.pick(_dg_test_uint8, _dg_spec, nonce))  # noqa: F821


def _dg_save(number, result):
    """A measured call's result saved as a plain array, inside the measured cell (no work left
    for later, outside the measurement)."""
    result = _dg_np.array(result, dtype=_dg_np.float64)
    _dg_np.save(_dg_artifact(f"hidden_tta_{number}.npy"), result, allow_pickle=False)


# %% calls=preprocess
_dg_np.save(
    _dg_artifact("hidden_preprocessed.npy"),
    _dg_np.asarray(preprocess(_dg_hidden_uint8.copy())),  # noqa: F821 (student's function)
    allow_pickle=False,
)

# %% calls=tta_predict
# Warm-up (first calls trace the network): as many images as the measured calls, not judged.
tta_predict(_dg_model, _dg_inputs.scale(_dg_hidden_uint8))  # noqa: F821 (student's function)
_dg_started = _dg_time.perf_counter()  # only decides whether the later rounds run

# %% calls=tta_predict
# deepgrade-measure: tta_1
_dg_save(1, tta_predict(_dg_model, _dg_images(__DG_NONCE__)))  # noqa: F821 (the runner's nonce)

# %% calls=tta_predict
# deepgrade-measure: tta_2
# Two more rounds (the checks take the cheapest), unless the first was slow.
if _dg_time.perf_counter() - _dg_started < HIDDEN["timing_budget_s"]:  # noqa: F821
    _dg_save(2, tta_predict(_dg_model, _dg_images(__DG_NONCE__)))  # noqa: F821

# %% calls=tta_predict
# deepgrade-measure: tta_3
if _dg_time.perf_counter() - _dg_started < HIDDEN["timing_budget_s"]:  # noqa: F821
    _dg_save(3, tta_predict(_dg_model, _dg_images(__DG_NONCE__)))  # noqa: F821
