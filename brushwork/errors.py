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


#: Seeds are 63-bit: torch's generators take no more, and engines add small offsets to a seed.
MAX_SEED = 2**63 - 1


def seed_check(seed: object) -> tuple[bool, str]:
    """A check (for :func:`require`) that ``seed`` is a whole number 0..MAX_SEED."""
    ok = isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= MAX_SEED
    return ok, f"seed must be a whole number 0..{MAX_SEED} (63 bits), not {seed}"


def finite_weights(weights: Iterable[float] | None, what: str) -> None:
    """Refuse weights that are not finite, negative, or all zero (they would paint garbage)."""
    if weights is None:
        return
    weights = list(weights)
    if not all(isinstance(w, (int, float)) and math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
        raise BrushworkError(f"{what} must be finite numbers >= 0, not all zero, not {weights}")
