"""The one exception type users see: a clear message and exit code 2, never a traceback."""

import math
from collections.abc import Iterable


class BrushworkError(Exception):
    """A problem with the user's input or environment, worded for the user."""

    exit_code = 2


def require(checks: Iterable[tuple[bool, str]]) -> None:
    """Raise the message of the first check that failed."""
    for ok, message in checks:
        if not ok:
            raise BrushworkError(message)


def non_negative(settings: object, names: Iterable[str]) -> list[tuple[bool, str]]:
    """Checks that each named number of ``settings`` is finite and >= 0 (for :func:`require`)."""
    checks = []
    for name in names:
        value = getattr(settings, name)
        checks.append(
            (math.isfinite(value) and value >= 0, f"{name.replace('_', ' ')} must be a finite number >= 0, not {value}")
        )
    return checks
