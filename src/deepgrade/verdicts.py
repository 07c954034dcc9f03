"""What each verdict means to a student, and what to do about it, in plain words.

The verdict names (`cell_error`, `tampered`) are the gradebook's vocabulary; a student reading
their feedback needs the sentence instead. One table, so the feedback page, the Gradescope
output and the terminal say the same thing.
"""

from __future__ import annotations

from deepgrade.results import Verdict

EXPLAINED: dict[Verdict, tuple[str, str]] = {  # verdict -> (what happened, what to do)
    Verdict.GRADED: (
        "Your notebook ran to the end and every check was run.",
        "Read the checks below that lost points; each says what was expected.",
    ),
    Verdict.CELL_ERROR: (
        "A cell of your notebook raised an error, so the cells after it did not run; checks "
        "that needed their results lost their points.",
        "Run the notebook from the top (Kernel > Restart & Run All) and fix the first error.",
    ),
    Verdict.TIMEOUT: (
        "Your notebook ran longer than the grader allows, and was stopped.",
        "Look for a loop that never ends or training far longer than the exercise asks.",
    ),
    Verdict.OUT_OF_MEMORY: (
        "Your notebook used more memory than the grader allows, and was stopped.",
        "Use the data sizes and batch sizes the exercise gives; do not copy the data set "
        "many times.",
    ),
    Verdict.KERNEL_DIED: (
        "The Python process running your notebook ended unexpectedly.",
        "Do not call exit() or os._exit(); run the notebook from the top to reproduce it.",
    ),
    Verdict.TAMPERED: (
        "A locked cell (one the exercise says not to edit) was changed or removed, so nothing "
        "was graded.",
        "Start again from the released notebook and write only in the solution cells.",
    ),
    Verdict.MISSING_ARTIFACT: (
        "Your notebook ran but did not save a file the grader needs.",
        "Make sure every cell runs, including the locked cells that save your results.",
    ),
    Verdict.INVALID_NOTEBOOK: (
        "The file you submitted is not a notebook the grader can read.",
        "Submit the .ipynb file saved from Jupyter, not a copy edited by hand.",
    ),
    Verdict.REFUSED: (
        "This submission was not run: the grading machine had no sandbox.",
        "Nothing to do on your side; your instructor will grade it again.",
    ),
    Verdict.CHECK_TIMEOUT: (
        "The checks ran out of time on the files your notebook saved.",
        "Save what the exercise asks for (for example the model it names), not something larger.",
    ),
    Verdict.ARTIFACT_REJECTED: (
        "A file your notebook saved could not be read safely (for example a model with custom "
        "code), so the checks that need it lost their points.",
        "Build the model from the layers the exercise uses and save it with the locked cell.",
    ),
    Verdict.RESULTS_REJECTED: (
        "The grader could not trust the results of its checks for this submission.",
        "Nothing to do on your side; your instructor will look at it.",
    ),
    Verdict.GRADER_ERROR: (
        "The grader itself failed on this submission; this is not a grade.",
        "Nothing to do on your side; your instructor will grade it again.",
    ),
}


def explain(verdict: Verdict) -> tuple[str, str]:
    """(what happened, what to do) for `verdict`."""
    return EXPLAINED[verdict]
