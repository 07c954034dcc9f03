# Grade-time cells for transfer_mobilenet: appended by the grader to its own copy of the
# submission after every student and locked cell, never released. `HIDDEN` is spec.toml's
# [hidden] table and `_dg_inputs` is hidden_inputs.py, both given by the grader's own cells.

# %% calls=preprocess
import os as _dg_os

import numpy as _dg_np

_dg_images = _dg_inputs.images(HIDDEN["preprocess"])  # noqa: F821 (given by the grader)
_dg_np.save(
    _dg_os.path.join(ARTIFACT_DIR, "hidden_preprocessed.npy"),  # noqa: F821
    _dg_np.asarray(preprocess(_dg_images.copy())),  # noqa: F821 (the student's function)
    allow_pickle=False,
)
