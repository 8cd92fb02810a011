"""Calling python-stdnum validators on untrusted candidates without letting them crash.

stdnum's ``is_valid`` functions are meant to return False for anything invalid, but some
raise on odd input (``stdnum.cn.ric`` raises KeyError for a region code its database
lists without counties). A scanner reads attacker-chosen text, so every call goes
through :func:`passes`, which turns such an exception into "not valid".
"""

from __future__ import annotations

from collections.abc import Callable

from stdnum.exceptions import ValidationError

__all__ = ["passes"]


def passes(validator: Callable[[str], object], number: str) -> bool:
    """True when *validator* accepts *number*; False when it rejects it or raises.

    Args:
        validator: a stdnum ``is_valid`` (or ``validate``) function.
        number: the candidate.

    Returns:
        Whether the candidate is valid.
    """
    try:
        return bool(validator(number))
    except (ValidationError, KeyError, IndexError, ValueError, TypeError):
        return False
