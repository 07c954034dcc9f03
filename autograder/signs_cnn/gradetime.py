# Grade-time cells for signs_cnn: appended by the grader to its own copy of the submission,
# after every student and locked cell, and never released. `HIDDEN` is rendered by the grader
# from spec.toml's [hidden] table. They only call the student's functions and save what those
# return; the hidden checks (stage 2) judge the saved artifacts.

# %%
import os as _dg_os

_dg_hidden_model = build_model(*HIDDEN["build_model_n"])  # noqa: F821 (student's function)
_dg_hidden_model.save(_dg_os.path.join(ARTIFACT_DIR, "hidden_model.keras"))  # noqa: F821
