"""User-facing errors.

Every error a user can cause (bad input, a missing file, a refused overwrite) is raised as a
:class:`MicroforgeError`. The CLI prints its message as one line and exits non-zero; it never
shows a traceback for these.
"""


class MicroforgeError(Exception):
    """An error caused by input the user gave; its message says what to fix."""
