"""The scanner's compiled passes, when they were built.

``_native.c`` is compiled at install where a C compiler is found. :data:`NATIVE` is that
module, or None; each pass it speeds up (``_fold.fold``, ``_runs.windows``,
``_runs.segments``, ``_words.occurrences``) is also written in Python, which stays the
reference and the fallback (tests compare the two).
"""

from __future__ import annotations

from types import ModuleType

__all__ = ["NATIVE"]


def _load() -> ModuleType | None:
    try:
        from sovra.classify import _native
    except ImportError:  # not built: the Python passes
        return None
    return _native


NATIVE = _load()
