# Grade-time cells for tta_resnet1: appended by the grader to its own copy of the submission,
# after every student and locked cell, and never released. `HIDDEN` is rendered by the grader
# from spec.toml's [hidden] table. They call the student's preprocess and tta_predict on hidden
# images and save what those return; the hidden checks (stage 2) rebuild the same images with
# conftest.hidden_images and judge the saved artifacts. Every call gets its own cell, so one
# failing function costs only its own checks.

# %%
import json as _dg_json
import os as _dg_os
import pickle as _dg_pickle
import time as _dg_time

import keras as _dg_keras
import numpy as _dg_np


def _dg_hidden_images():
    """Test images picked and perturbed from HIDDEN: uint8, never shown to the student.

    Must stay identical to conftest.hidden_images (tests/test_tta_resnet1_checks.py checks it).
    """
    spec = HIDDEN["images"]  # noqa: F821 (rendered by the grader)
    with open(_dg_os.path.join(DATA_DIR, "test_batch"), "rb") as handle:  # noqa: F821
        rows = _dg_pickle.load(handle, encoding="bytes")[b"data"]
    images = _dg_np.asarray(rows, dtype=_dg_np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    rng = _dg_np.random.default_rng(spec["seed"])
    chosen = images[rng.choice(len(images), size=min(spec["n_images"], len(images)), replace=False)]
    noise = rng.integers(-spec["noise"], spec["noise"] + 1, size=chosen.shape)
    return _dg_np.clip(chosen.astype(_dg_np.int16) + noise, 0, 255).astype(_dg_np.uint8)


_dg_hidden_uint8 = _dg_hidden_images()
# The grader's own scaling and its own copy of the network: the TTA checks do not depend on the
# student's preprocess, nor on what the student's cells did to `model`.
_dg_x = _dg_hidden_uint8.astype(_dg_np.float32) / 255.0 - 0.5
_dg_model = _dg_keras.saving.load_model(_dg_os.path.join(DATA_DIR, "resnet1.keras"))  # noqa: F821
_dg_artifact = lambda name: _dg_os.path.join(ARTIFACT_DIR, name)  # noqa: E731, F821

# %% calls=preprocess
_dg_np.save(
    _dg_artifact("hidden_preprocessed.npy"),
    _dg_np.asarray(preprocess(_dg_hidden_uint8.copy())),  # noqa: F821 (student's function)
    allow_pickle=False,
)

# %% calls=tta_predict
# Also tta_predict's warm-up for the timing cell below.
_dg_np.save(
    _dg_artifact("hidden_tta.npy"),
    _dg_np.asarray(tta_predict(_dg_model, _dg_x.copy())),  # noqa: F821 (student's function)
    allow_pickle=False,
)


# %% calls=tta_predict
class _DgCountingModel:
    """Forwards to the network and counts the calls and the images it is asked to predict."""

    def __init__(self, model):
        self._dg_model = model
        self.calls = 0
        self.images = 0

    def _dg_count(self, x):
        self.calls += 1
        self.images += len(x)

    def predict(self, x, *args, **kwargs):
        self._dg_count(x)
        return self._dg_model.predict(x, *args, **kwargs)

    def predict_on_batch(self, x, *args, **kwargs):
        self._dg_count(x)
        return self._dg_model.predict_on_batch(x, *args, **kwargs)

    def __call__(self, x, *args, **kwargs):
        self._dg_count(x)
        return self._dg_model(x, *args, **kwargs)

    def __getattr__(self, name):
        if name.startswith("_dg_"):
            raise AttributeError(name)
        return getattr(self._dg_model, name)


_dg_counter = _DgCountingModel(_dg_model)
tta_predict(_dg_counter, _dg_x.copy())  # noqa: F821 (student's function)
with open(_dg_artifact("tta_calls.json"), "w", encoding="utf-8") as _dg_handle:
    _dg_json.dump(
        {"n": len(_dg_x), "calls": _dg_counter.calls, "images": _dg_counter.images}, _dg_handle
    )


# %% calls=tta_predict
# Interleaved rounds, each timed twice: wall-clock time and the process's CPU time over all its
# threads. The check uses wall time where the network runs on an accelerator (CPU time misses
# the device's work) and CPU time on a CPU (on a shared CPU, wall time measures the neighbours'
# load). Warm-ups done above and here; a slow function gets fewer rounds, so it cannot push the
# cell past its time limit.
def _dg_accelerator():
    """Whether Keras' backend computes on a GPU/TPU here (grader code: backend APIs allowed)."""
    backend = _dg_keras.config.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as _dg_tf

            return bool(_dg_tf.config.list_logical_devices("GPU"))
        if backend == "jax":
            import jax as _dg_jax

            return _dg_jax.default_backend() != "cpu"
        if backend == "torch":
            import torch as _dg_torch

            return bool(_dg_torch.cuda.is_available())
    except Exception:  # no device query: time it as a CPU
        return False
    return False


_dg_timing = {
    "n": len(_dg_x),
    "accelerator": _dg_accelerator(),
    "plain_s": [],
    "tta_s": [],
    "plain_cpu_s": [],
    "tta_cpu_s": [],
}
_dg_model.predict(_dg_x, verbose=0)
for _dg_round in range(HIDDEN["timing_rounds"]):  # noqa: F821
    for _dg_key, _dg_call in (
        ("plain", lambda: _dg_model.predict(_dg_x, verbose=0)),
        ("tta", lambda: tta_predict(_dg_model, _dg_x.copy())),  # noqa: F821 (student's)
    ):
        _dg_wall, _dg_cpu = _dg_time.perf_counter(), _dg_time.process_time()
        _dg_call()
        _dg_timing[f"{_dg_key}_s"].append(_dg_time.perf_counter() - _dg_wall)
        _dg_timing[f"{_dg_key}_cpu_s"].append(_dg_time.process_time() - _dg_cpu)
    if sum(_dg_timing["tta_s"]) > HIDDEN["timing_budget_s"]:  # noqa: F821
        break
with open(_dg_artifact("tta_timing.json"), "w", encoding="utf-8") as _dg_handle:
    _dg_json.dump(_dg_timing, _dg_handle)
