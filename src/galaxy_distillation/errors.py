"""The one error type for user-facing failures.

Every error a user can fix (a bad parameter, a missing or malformed input file, a full disk,
a checkpoint from another configuration...) derives from :class:`UserError`. Its message is
one or two lines naming the input, the cause and the fix. The command line
(:mod:`galaxy_distillation.cli`) catches it once, prints the message and exits non-zero,
without a traceback unless ``--verbose`` / ``GD_VERBOSE=1`` is given. Anything else that
escapes is a bug and keeps its full traceback.
"""

from __future__ import annotations

__all__ = ["UserError", "ParameterError"]


class UserError(Exception):
    """A failure caused by the input or the environment, with a one- or two-line message."""

    #: Exit status of the command line for this kind of failure.
    exit_code: int = 1


class ParameterError(UserError, ValueError):
    """An invalid parameter; the message names it and what is allowed."""

    exit_code = 2
