# Grade-time cells for signs_cnn: appended by the grader to its own copy of the submission, after
# every student and locked cell, and never released. `HIDDEN` is spec.toml's [hidden] table, loaded
# by the grader's own first cell from a file stage 1 writes just before it runs. They only call the
# student's functions and save what those return; the hidden checks (stage 2) judge the saved
# artifacts. Each `# %% calls=name` marker names the student function its cell calls: a failure
# there is reported as that function failing on the grader's inputs, never with its message.

# %% calls=build_model
import os as _dg_os

_dg_hidden_model = build_model(*HIDDEN["build_model_n"])  # noqa: F821 (student's function)
_dg_hidden_model.save(_dg_os.path.join(ARTIFACT_DIR, "hidden_model.keras"))  # noqa: F821
