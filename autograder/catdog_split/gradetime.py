# Grade-time cells for catdog_split: appended by the grader to its own copy of the submission,
# after every student and locked cell, and never released. `HIDDEN` is spec.toml's [hidden] table,
# loaded by the grader's own first cell from a file stage 1 writes just before it runs, and
# `_dg_inputs` is hidden_inputs.py (spec.toml's hidden_module), which the checks import too: the
# inputs are built by one code. They call the student's split_cats_dogs on label arrays built from
# a hidden seed and classify_file on hidden image files taken from the grader's test set (read
# here, in the student's sandbox, as the notebook's locked cell reads it), and save what those
# return; the hidden checks (stage 2) rebuild the same inputs and judge. An error in the student's
# function is caught per input, so the other inputs still count. Each `# %% calls=name` marker
# names the student function its cell calls: a failure there is reported as that function
# failing on the grader's inputs, never with its message.

# %% calls=split_cats_dogs
import json as _dg_json
import os as _dg_os
import pickle as _dg_pickle
import tempfile as _dg_tempfile

import cv2 as _dg_cv2
import numpy as _dg_np

_dg_outputs = {}
for _dg_name, (_dg_x, _dg_y) in _dg_inputs.split_cases(HIDDEN["split_seed"]).items():  # noqa: F821
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
_dg_chosen = _dg_inputs.classify_indices(  # noqa: F821
    _dg_labels,
    HIDDEN["classify_seed"],  # noqa: F821
    HIDDEN["classify_images"],  # noqa: F821
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
