"""The public surface of sovra.keys is exactly what ``__all__`` says."""

from __future__ import annotations

import inspect
from types import ModuleType

import pytest

import sovra.keys
from sovra.keys import (
    _aead,
    _stream,
    custodian,
    envelope,
    files,
    remote,
    sealing,
    subjects,
    transport,
)
from sovra.server import custodian as custodian_service

MODULES = [
    sovra.keys,
    _aead,
    _stream,
    custodian,
    envelope,
    files,
    remote,
    sealing,
    subjects,
    transport,
    custodian_service,
]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_all_names_exist_once(module: ModuleType) -> None:
    for name in module.__all__:
        assert hasattr(module, name), f"{module.__name__}.__all__ names missing {name}"
    assert len(set(module.__all__)) == len(module.__all__)


@pytest.mark.parametrize("module", MODULES[1:], ids=lambda m: m.__name__)
def test_every_public_definition_is_exported(module: ModuleType) -> None:
    defined = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == module.__name__
    }
    assert defined <= set(module.__all__)


def test_package_exports() -> None:
    assert set(sovra.keys.__all__) == {
        "DATA_KEY_SIZE",
        "BaseCustodian",
        "Clock",
        "Custodian",
        "CustodianStatus",
        "JournalEntry",
        "LocalCustodian",
        "generate_ed25519",
        "load_ed25519",
        "open_blob",
        "open_into",
        "open_range",
        "open_stream",
        "public_bytes",
        "read_secret",
        "seal",
        "seal_into",
        "seal_stream",
        "sealed_size",
        "system_clock_ms",
        "write_secret",
    }
