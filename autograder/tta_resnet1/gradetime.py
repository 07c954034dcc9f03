# Grade-time cells for tta_resnet1: appended by the grader to its own copy of the submission,
# after every student and locked cell, and never released. `HIDDEN` is spec.toml's [hidden]
# table, loaded by the grader's own first cell from a file stage 1 writes just before it runs.
# They call the student's preprocess and tta_predict on hidden images and save what those
# return; the hidden checks (stage 2) rebuild the same images with conftest.hidden_images and
# judge the saved artifacts. Every call gets its own cell, so one failing function costs only
# its own checks; each `# %% calls=name` marker names the student function its cell calls (a
# failure there is reported as that function failing on the grader's inputs, never with its
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
import pickle as _dg_pickle
import time as _dg_time

import keras as _dg_keras
import numpy as _dg_np


def _dg_pick(images, seed):
    """Test images picked and perturbed with `seed`: uint8, never shown to the student.

    Must stay identical to conftest.hidden_images (tests/test_tta_resnet1_checks.py checks it).
    """
    spec = HIDDEN["images"]  # noqa: F821 (loaded by the grader)
    rng = _dg_np.random.default_rng(seed)
    chosen = images[rng.choice(len(images), size=min(spec["n_images"], len(images)), replace=False)]
    noise = rng.integers(-spec["noise"], spec["noise"] + 1, size=chosen.shape)
    return _dg_np.clip(chosen.astype(_dg_np.int16) + noise, 0, 255).astype(_dg_np.uint8)


def _dg_scale(images):
    """The grader's own scaling: the TTA checks do not depend on the student's preprocess."""
    return images.astype(_dg_np.float32) / 255.0 - 0.5


with open(_dg_os.path.join(DATA_DIR, "test_batch"), "rb") as _dg_handle:  # noqa: F821
    _dg_rows = _dg_pickle.load(_dg_handle, encoding="bytes")[b"data"]
_dg_test_uint8 = (
    _dg_np.asarray(_dg_rows, dtype=_dg_np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
)
_dg_hidden_uint8 = _dg_pick(_dg_test_uint8, HIDDEN["images"]["seed"])  # noqa: F821
_dg_x = _dg_scale(_dg_hidden_uint8)
# The grader's own copy of the network: not what the student's cells did to `model`.
_dg_model = _dg_keras.saving.load_model(_dg_os.path.join(DATA_DIR, "resnet1.keras"))  # noqa: F821
_dg_artifact = lambda name: _dg_os.path.join(ARTIFACT_DIR, name)  # noqa: E731, F821

# %% calls=preprocess
_dg_np.save(
    _dg_artifact("hidden_preprocessed.npy"),
    _dg_np.asarray(preprocess(_dg_hidden_uint8.copy())),  # noqa: F821 (student's function)
    allow_pickle=False,
)

# %% calls=tta_predict
# Warm-up (first calls trace the network): as many images as the measured calls, not judged.
tta_predict(_dg_model, _dg_x.copy())  # noqa: F821 (student's function)
_dg_started = _dg_time.perf_counter()  # only decides whether the later rounds run

# %% calls=tta_predict
# deepgrade-measure: tta_1
_dg_np.save(
    _dg_artifact("hidden_tta_1.npy"),
    _dg_np.array(
        tta_predict(_dg_model, _dg_scale(_dg_pick(_dg_test_uint8, __DG_NONCE__))),  # noqa: F821
        dtype=_dg_np.float64,  # a plain array now: no work left for later, outside the measure
    ),
    allow_pickle=False,
)

# %% calls=tta_predict
# deepgrade-measure: tta_2
# Two more rounds (the checks take the cheapest), unless the first was slow.
if _dg_time.perf_counter() - _dg_started < HIDDEN["timing_budget_s"]:  # noqa: F821
    _dg_np.save(
        _dg_artifact("hidden_tta_2.npy"),
        _dg_np.array(
            tta_predict(_dg_model, _dg_scale(_dg_pick(_dg_test_uint8, __DG_NONCE__))),  # noqa: F821
            dtype=_dg_np.float64,
        ),
        allow_pickle=False,
    )

# %% calls=tta_predict
# deepgrade-measure: tta_3
if _dg_time.perf_counter() - _dg_started < HIDDEN["timing_budget_s"]:  # noqa: F821
    _dg_np.save(
        _dg_artifact("hidden_tta_3.npy"),
        _dg_np.array(
            tta_predict(_dg_model, _dg_scale(_dg_pick(_dg_test_uint8, __DG_NONCE__))),  # noqa: F821
            dtype=_dg_np.float64,
        ),
        allow_pickle=False,
    )
