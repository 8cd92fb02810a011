"""Sensitive-data detection and minimisation: the classify stage of ingest.

:func:`scan` runs every detector family in :mod:`sovra.classify.registry` and returns
value-free :class:`~sovra.model.Finding` spans over the caller's text; :func:`minimise`
applies a jurisdiction's per-kind :class:`Action` to them. :data:`KINDS` is the set of
kinds this version can report.
"""

from __future__ import annotations

from sovra.classify.minimise import (
    Action,
    Minimised,
    ProtectedSpan,
    minimise,
    protected_spans,
    restore,
)
from sovra.classify.registry import KINDS
from sovra.classify.scanner import scan, scan_many

__all__ = [
    "KINDS",
    "Action",
    "Minimised",
    "ProtectedSpan",
    "minimise",
    "protected_spans",
    "restore",
    "scan",
    "scan_many",
]
