"""The public surface of sovra.classify, pinned: a change here is an API change."""

from __future__ import annotations

import importlib
import inspect

import pytest

from sovra.classify import minimise, scan, scan_many

PUBLIC = {
    "sovra.classify": [
        "KINDS",
        "Action",
        "Minimised",
        "ProtectedSpan",
        "minimise",
        "protected_spans",
        "restore",
        "scan",
        "scan_many",
    ],
    "sovra.classify.contact": [
        "KINDS",
        "PHONE_CONTEXT",
        "REGIONS",
        "detect",
        "detect_emails",
        "detect_phones",
    ],
    "sovra.classify.finance": [
        "KINDS",
        "detect",
        "detect_bic",
        "detect_cards",
        "detect_iban",
        "detect_vat",
    ],
    "sovra.classify.ids": ["CONTEXT", "CONTEXT_WINDOW", "KINDS", "detect", "detect_pesel"],
    "sovra.classify.network": ["KINDS", "detect", "detect_ip"],
    "sovra.classify.location": ["KINDS", "detect", "detect_coordinates"],
    "sovra.classify.personal": [
        "BIRTH_WORDS",
        "CONTEXT_WINDOW",
        "KINDS",
        "detect",
        "detect_birth_dates",
    ],
    "sovra.classify.special": [
        "CONTEXT_AFTER",
        "CONTEXT_BEFORE",
        "KINDS",
        "LANGUAGES",
        "detect",
        "detect_special",
    ],
    "sovra.classify.minimise": [
        "Action",
        "Minimised",
        "Prepared",
        "Protect",
        "ProtectedSpan",
        "Rules",
        "canonical",
        "finish",
        "minimise",
        "parse_rules",
        "prepare",
        "protected_spans",
        "restore",
    ],
    "sovra.classify.registry": ["FAMILIES", "KINDS", "Detector", "Family", "LanguageDetector"],
    "sovra.classify.scanner": [
        "DEFAULT_MAX_CHARS",
        "DEFAULT_MAX_NUMBERS",
        "LANGUAGES",
        "Scanned",
        "scan",
        "scan_many",
    ],
}


@pytest.mark.parametrize(("name", "exported"), PUBLIC.items(), ids=PUBLIC.keys())
def test_all_is_pinned(name: str, exported: list[str]) -> None:
    module = importlib.import_module(name)
    assert module.__all__ == exported
    for attr in exported:
        assert hasattr(module, attr), attr


@pytest.mark.parametrize("name", list(PUBLIC))
def test_every_public_function_and_class_is_exported(name: str) -> None:
    module = importlib.import_module(name)
    defined_here = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == name
    }
    assert defined_here <= set(module.__all__)


def test_scan_signature() -> None:
    assert str(inspect.signature(scan)) == (
        "(text: 'str', *, lang: 'str | None' = None, max_chars: 'int' = 10000000, "
        "max_numbers: 'int' = 10000) -> 'list[Finding]'"
    )
    assert str(inspect.signature(scan_many)) == (
        "(texts: 'Sequence[object]', *, lang: 'str | None' = None, "
        "max_chars: 'int' = 10000000, max_numbers: 'int' = 10000) -> 'list[Scanned]'"
    )
    assert str(inspect.signature(minimise)) == (
        "(text: 'str', findings: 'Iterable[Finding]', rules: 'Mapping[str, Action]', *, "
        "default: 'Action' = <Action.KEEP: 'keep'>, protect: 'Protect | None' = None) "
        "-> 'Minimised'"
    )
