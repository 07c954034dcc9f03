"""The errors deepgrade raises for bad input: each names the file and what is wrong."""

from __future__ import annotations

from pathlib import Path


class DeepgradeError(Exception):
    """Base of every error the CLI reports as a one-line message instead of a traceback."""


class InputError(DeepgradeError):
    """A file given to deepgrade is missing or malformed."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class SandboxUnavailable(DeepgradeError):
    """bubblewrap is missing or not permitted here, and --unsafe was not given."""


class Cancelled(BaseException):
    """The batch was interrupted (Ctrl-C, SIGTERM) while this submission was being graded.

    A BaseException, like asyncio.CancelledError and KeyboardInterrupt, so that no
    `except Exception` on the way up turns a stopped submission into a grade or a grader error.
    """


class LimitsUnavailable(DeepgradeError):
    """Memory or process limits cannot be enforced here, and --allow-unlimited was not given."""
