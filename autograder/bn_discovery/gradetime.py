# Grade-time cells for bn_discovery: appended by the grader to its own copy of the submission,
# after every student and locked cell, and never released. `HIDDEN` is spec.toml's [hidden] table,
# loaded by the grader's own first cell from a file stage 1 writes just before it runs. The cell
# calls the student's bn_forward on arrays made from the hidden seed (the recipe is
# conftest.hidden_bn_inputs, repeated here because stage 1 cannot import the grader's code) and
# saves what it returns; test_bn_forward.py judges it. Each `# %% calls=name` marker names the
# student function its cell calls: a failure there is reported as that function failing on the
# grader's inputs, never with its message.

# %% calls=bn_forward
import os as _dg_os

import numpy as _dg_np

_dg_spec = HIDDEN["bn_forward"]  # noqa: F821 (rendered by the grader)
_dg_rng = _dg_np.random.default_rng(_dg_spec["seed"])
_dg_c = int(_dg_spec["channels"])
_dg_images = _dg_rng.normal(0.5, 0.3, size=(6, 4, 4, _dg_c))
_dg_rows = _dg_rng.normal(0.0, 1.0, size=(7, _dg_c))
_dg_gamma = _dg_rng.uniform(0.5, 1.5, size=_dg_c)
_dg_beta = _dg_rng.uniform(-0.5, 0.5, size=_dg_c)
_dg_mean = _dg_rng.uniform(0.2, 0.8, size=_dg_c)
_dg_var = _dg_rng.uniform(0.01, 0.1, size=_dg_c)
_dg_eps = float(_dg_spec["eps"])
_dg_np.savez(
    _dg_os.path.join(ARTIFACT_DIR, "bn_forward.npz"),  # noqa: F821
    images=_dg_np.asarray(
        bn_forward(_dg_images, _dg_gamma, _dg_beta, _dg_mean, _dg_var, _dg_eps),  # noqa: F821
        dtype=_dg_np.float64,
    ),
    rows=_dg_np.asarray(
        bn_forward(_dg_rows, _dg_gamma, _dg_beta, _dg_mean, _dg_var, _dg_eps),  # noqa: F821
        dtype=_dg_np.float64,
    ),
)
