"""The scanner's compiled passes, when they were built.

``_native.c`` is compiled at install where a C compiler is found. :data:`NATIVE` is that
module, or None; each pass it speeds up (``_fold.fold``, ``_runs.windows``,
``_runs.segments``, ``_words.occurrences``, the identity-number checks of ``ids``, the
Luhn sum of ``finance``) is also written in Python, which stays the reference and the
fallback (tests compare the two), and the two shape tests that let ``ids`` and
``finance`` skip a search (tests check they never miss what the search finds).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["NATIVE", "native"]


def _load() -> ModuleType | None:
    try:
        from sovra.classify import _native
    except ImportError:  # not built: the Python passes
        return None
    return _native


NATIVE = _load()


def native(name: str) -> Callable[..., Any] | None:
    """The compiled function *name*, or None where the module is not built or was built
    from an older ``_native.c`` without it (the caller then uses its Python version)."""
    found: Callable[..., Any] | None = getattr(NATIVE, name, None)
    return found
