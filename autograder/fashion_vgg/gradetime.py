# Grade-time cells for fashion_vgg: appended by the grader to its own copy of the submission, after
# every student and locked cell, and never released. `HIDDEN` is spec.toml's [hidden] table, loaded
# by the grader's own first cell from a file stage 1 writes just before it runs, and `_dg_inputs`
# is hidden_inputs.py, which makes the hidden inputs from it (the checks import the same module).
# They only call the student's functions and save what those return; the hidden checks (stage 2)
# judge the saved artifacts. Each `# %% calls=name` marker names the student function its cell
# calls: a failure there is reported as that function failing on the grader's inputs, never with
# its message.

# %% calls=pad_images
import os as _dg_os

import numpy as _dg_np

_dg_images = _dg_inputs.images(HIDDEN["pad_seed"], HIDDEN["pad_count"])  # noqa: F821
_dg_padded = _dg_np.asarray(pad_images(_dg_images.copy()))  # noqa: F821 (student's function)
_dg_np.save(_dg_os.path.join(ARTIFACT_DIR, "hidden_padded.npy"), _dg_padded, allow_pickle=False)  # noqa: F821

# %% calls=build_vgg
_dg_path = _dg_os.path.join(ARTIFACT_DIR, "hidden_vgg.keras")  # noqa: F821
build_vgg(HIDDEN["width"]).save(_dg_path)  # noqa: F821 (student's function)
