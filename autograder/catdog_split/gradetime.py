# Grade-time cells for catdog_split: appended by the grader to its own copy of the submission,
# after every student and locked cell, and never released. `HIDDEN` is spec.toml's [hidden] table,
# loaded by the grader's own first cell from a file stage 1 writes just before it runs. They call
# the student's split_cats_dogs on label arrays built from a hidden seed and classify_file on
# hidden image files taken from the grader's test set, and save what those return; the hidden
# checks (stage 2) rebuild the same inputs and judge. An error in the student's function is caught
# per input, so the other inputs still count. Each `# %% calls=name` marker names the student
# function its cell calls: a failure there is reported as that function failing on the grader's
# inputs, never with its message.

# %% calls=split_cats_dogs
import json as _dg_json
import os as _dg_os
import pickle as _dg_pickle
import tempfile as _dg_tempfile

import cv2 as _dg_cv2
import numpy as _dg_np


def _dg_hidden_split_cases(seed):
    """Same code as conftest.hidden_split_cases (a test keeps the two equal)."""
    rng = _dg_np.random.default_rng(seed)
    others = _dg_np.array([0, 1, 2, 4, 6, 7, 8, 9])
    mixed = rng.integers(0, 10, size=120)
    no_cats = rng.choice(_dg_np.append(others, 5), size=40)
    no_cats[:2] = rng.choice(others, size=2)
    no_cats[[5, 17, 30]] = 5
    no_dogs = rng.choice(_dg_np.append(others, 3), size=40).astype(_dg_np.uint8)
    no_dogs[[3, 11, 29]] = 3
    alternating = _dg_np.array([3, 5] * 12)
    alternating[rng.choice(24, size=6, replace=False)] = rng.choice(others, size=6)
    alternating[:2] = [3, 5]
    neither = rng.choice(others, size=20)
    cases = {}
    for name, labels in (
        ("mixed", mixed),
        ("no_cats", no_cats),
        ("no_dogs", no_dogs),
        ("alternating", alternating),
        ("neither", neither),
    ):
        images = rng.integers(0, 256, size=(len(labels), 32, 32, 3), dtype=_dg_np.uint8)
        images[:, 0, 0, 0] = _dg_np.arange(len(labels)) // 256
        images[:, 0, 0, 1] = _dg_np.arange(len(labels)) % 256
        cases[name] = (images, labels)
    return cases


_dg_outputs = {}
for _dg_name, (_dg_x, _dg_y) in _dg_hidden_split_cases(HIDDEN["split_seed"]).items():  # noqa: F821
    try:
        _dg_x2, _dg_y2 = split_cats_dogs(_dg_x.copy(), _dg_y.copy())  # noqa: F821 (student's)
        _dg_outputs["x_" + _dg_name] = _dg_np.asarray(_dg_x2)
        _dg_outputs["y_" + _dg_name] = _dg_np.asarray(_dg_y2)
    except Exception as _dg_exc:  # the check reports the missing case without revealing it
        print("split_cats_dogs failed on a grader's array:", type(_dg_exc).__name__)
_dg_np.savez(_dg_os.path.join(ARTIFACT_DIR, "hidden_split.npz"), **_dg_outputs)  # noqa: F821
print("saved hidden_split.npz")

# %% calls=classify_file
with open(_dg_os.path.join(DATA_DIR, "test_batch"), "rb") as _dg_handle:  # noqa: F821
    _dg_batch = _dg_pickle.load(_dg_handle, encoding="bytes")
_dg_labels = _dg_np.asarray(_dg_batch[b"labels"], dtype=_dg_np.int64)
# Same code as conftest.hidden_classify_indices.
_dg_candidates = _dg_np.flatnonzero((_dg_labels == 5) | (_dg_labels == 3))
_dg_rng = _dg_np.random.default_rng(HIDDEN["classify_seed"])  # noqa: F821
_dg_chosen = _dg_np.sort(
    _dg_rng.choice(
        _dg_candidates,
        size=min(HIDDEN["classify_images"], len(_dg_candidates)),  # noqa: F821
        replace=False,
    )
)
_dg_rows = _dg_np.asarray(_dg_batch[b"data"], dtype=_dg_np.uint8)[_dg_chosen]
_dg_images = _dg_rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
_dg_model_path = _dg_os.path.join(ARTIFACT_DIR, "model.keras")  # noqa: F821
_dg_answers = []
with _dg_tempfile.TemporaryDirectory() as _dg_folder:
    for _dg_index, _dg_image in enumerate(_dg_images):
        _dg_path = _dg_os.path.join(_dg_folder, f"image{_dg_index:03d}.png")
        _dg_cv2.imwrite(_dg_path, _dg_np.ascontiguousarray(_dg_image[:, :, ::-1]))  # BGR file
        try:
            _dg_answer = classify_file(_dg_model_path, _dg_path)  # noqa: F821 (student's)
            _dg_answers.append(_dg_answer if isinstance(_dg_answer, str) else repr(_dg_answer))
        except Exception as _dg_exc:
            print("classify_file failed on a grader's image:", type(_dg_exc).__name__)
            _dg_answers.append(None)
with open(_dg_os.path.join(ARTIFACT_DIR, "hidden_classify.json"), "w") as _dg_handle:  # noqa: F821
    _dg_json.dump(_dg_answers, _dg_handle)
print("saved hidden_classify.json")
