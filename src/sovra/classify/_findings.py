"""Findings made in bulk: the helper's answers read back, a batch's findings moved to
their own text's offsets.

A frozen dataclass's ``__init__`` sets each slot through ``object.__setattr__``;
:func:`finding` sets them through their slot descriptors, at half the cost.
"""

from __future__ import annotations

import dataclasses

from sovra.model import Finding

__all__ = ["finding"]

_new = object.__new__
_FIELDS = ("kind", "start", "end", "confidence", "validated")
if tuple(f.name for f in dataclasses.fields(Finding)) != _FIELDS:  # pragma: no cover
    raise ImportError("Finding's fields changed: update sovra.classify._findings.finding")
_SET_KIND, _SET_START, _SET_END, _SET_CONFIDENCE, _SET_VALIDATED = (
    Finding.__dict__[name].__set__ for name in _FIELDS
)


def finding(kind: str, start: int, end: int, confidence: float, validated: bool) -> Finding:
    """``Finding(kind, start, end, confidence, validated)``, made without ``__init__``."""
    made = _new(Finding)
    _SET_KIND(made, kind)
    _SET_START(made, start)
    _SET_END(made, end)
    _SET_CONFIDENCE(made, confidence)
    _SET_VALIDATED(made, validated)
    return made
