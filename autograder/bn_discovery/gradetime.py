# Grade-time cells for bn_discovery: appended by the grader to its own copy of the submission,
# after every student and locked cell, and never released. `HIDDEN` is spec.toml's [hidden] table,
# loaded by the grader's own first cell from a file stage 1 writes just before it runs, and
# `_dg_inputs` is hidden_inputs.py (spec.toml's hidden_module), which test_bn_forward.py imports
# too: the arrays are built by one code. The first cell calls the student's build_model with a
# hidden width, another than WIDTH, and saves the model (test_architecture.py judges it; an error
# is caught, so bn_forward still counts); the second calls bn_forward on the arrays and saves
# what it returns (test_bn_forward.py judges it). Each
# `# %% calls=name` marker names the student function its cell calls: a failure there is
# reported as that function failing on the grader's inputs, never with its message.

# %% calls=build_model
import os as _dg_os

import numpy as _dg_np

try:
    _dg_built = build_model(HIDDEN["build_width"])  # noqa: F821 (the student's; grader's width)
    _dg_built.save(_dg_os.path.join(ARTIFACT_DIR, "hidden_build.keras"))  # noqa: F821
except Exception as _dg_exc:  # the check reports the missing model without the width
    print("build_model failed with the grader's width:", type(_dg_exc).__name__)

# %% calls=bn_forward
_dg_spec = HIDDEN["bn_forward"]  # noqa: F821 (rendered by the grader)
_dg_x = _dg_inputs.bn_forward_inputs(_dg_spec["seed"], _dg_spec["channels"])  # noqa: F821
_dg_args = [_dg_x["gamma"], _dg_x["beta"], _dg_x["mean"], _dg_x["var"], float(_dg_spec["eps"])]
_dg_np.savez(
    _dg_os.path.join(ARTIFACT_DIR, "bn_forward.npz"),  # noqa: F821
    **{
        key: _dg_np.asarray(bn_forward(_dg_x[key], *_dg_args), dtype=_dg_np.float64)  # noqa: F821
        for key in ("images", "rows")
    },
)
