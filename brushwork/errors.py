"""The one exception type users see: a clear message and exit code 2, never a traceback."""


class BrushworkError(Exception):
    """A problem with the user's input or environment, worded for the user."""

    exit_code = 2
