"""The local custodian's key file: its format, a strict reader and the writer.

Format 1 (JSON, UTF-8, at most 1 MiB, mode 0600)::

    {
      "type": "sovra-custodian-keys",
      "format": 1,
      "jurisdiction": "PL",
      "keks": [
        {"version": 1, "key": "<64 lower-case hex>", "check": "<32 lower-case hex>"},
        ...
      ]
    }

``keks`` lists versions in strictly increasing order; the highest is current. ``check``
is the first 16 bytes of HMAC-SHA256(key, "sovra-kek-check/v1\\n" + jurisdiction + "\\n" +
version), which catches a corrupted key, an edited jurisdiction or version, and a file
copied to the wrong custodian. It is not a defence against someone who can write the
file: they hold the keys already; file permissions are that defence.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

from sovra.errors import (
    ConfigError,
)
from sovra.keys.files import StrPath, no_duplicate_fields, read_secret
from sovra.keys.sealing import Sealer, Unlock, is_sealed, unseal_key_file
from sovra.model import (
    field_problem,
)

__all__ = ["KEY_FILE_FORMAT", "load_keks", "serialize_key_file"]

KEY_FILE_FORMAT = 1
_KEY_FILE_TYPE = "sovra-custodian-keys"
_MAX_KEY_FILE_BYTES = 1024 * 1024
_MAX_KEKS = 4096
_HEX_KEY = re.compile(r"[0-9a-f]{64}")
_HEX_CHECK = re.compile(r"[0-9a-f]{32}")


def _kek_check(key: bytes, jurisdiction: str, version: int) -> str:
    label = f"sovra-kek-check/v1\n{jurisdiction}\n{version}".encode()
    return hmac.new(key, label, hashlib.sha256).digest()[:16].hex()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _KeyFileParser:
    """Strict reader of key file format 1; every refusal names the file and the fault."""

    def __init__(self, path: StrPath, jurisdiction: str) -> None:
        self._path = path
        self._jurisdiction = jurisdiction

    def _refuse(self, reason: str) -> ConfigError:
        return ConfigError(f"custodian key file {self._path} is refused: {reason}")

    def _exact_fields(self, obj: Mapping[str, Any], fields: set[str], what: str) -> None:
        problem = field_problem(obj, fields, frozenset(), what)
        if problem is not None:
            raise self._refuse(problem)

    def parse(self, data: bytes) -> dict[int, bytes]:
        try:
            obj = json.loads(
                data.decode("utf-8"),
                object_pairs_hook=no_duplicate_fields,
                parse_constant=_refuse_constant,
            )
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise self._refuse(f"not valid JSON ({exc})") from None
        if not isinstance(obj, dict):
            raise self._refuse("not a JSON object")
        self._exact_fields(obj, {"type", "format", "jurisdiction", "keks"}, "the file")
        if obj["type"] != _KEY_FILE_TYPE:
            raise self._refuse(f"type is {obj['type']!r}, not {_KEY_FILE_TYPE!r}")
        if not _is_int(obj["format"]) or obj["format"] != KEY_FILE_FORMAT:
            raise self._refuse(f"format {obj['format']!r} is not {KEY_FILE_FORMAT}")
        if obj["jurisdiction"] != self._jurisdiction:
            raise self._refuse(
                f"it holds keys of jurisdiction {obj['jurisdiction']!r}, not {self._jurisdiction!r}"
            )
        keks = obj["keks"]
        if not isinstance(keks, list) or not 0 < len(keks) <= _MAX_KEKS:
            raise self._refuse(f"keks must be a list of 1..{_MAX_KEKS} entries")
        parsed: dict[int, bytes] = {}
        previous = 0
        for position, item in enumerate(keks):
            version, key = self._kek(position, item, previous)
            parsed[version] = key
            previous = version
        return parsed

    def _kek(self, position: int, item: object, previous: int) -> tuple[int, bytes]:
        if not isinstance(item, dict):
            raise self._refuse(f"keks[{position}] is not an object")
        self._exact_fields(item, {"version", "key", "check"}, f"keks[{position}]")
        version, key_hex, check = item["version"], item["key"], item["check"]
        if not _is_int(version) or version <= previous:
            raise self._refuse(f"keks[{position}] version must be an integer above {previous}")
        if not isinstance(key_hex, str) or not _HEX_KEY.fullmatch(key_hex):
            raise self._refuse(f"KEK version {version} is not 64 lower-case hex digits")
        if not isinstance(check, str) or not _HEX_CHECK.fullmatch(check):
            raise self._refuse(f"KEK version {version} check is not 32 lower-case hex digits")
        key = bytes.fromhex(key_hex)
        if not hmac.compare_digest(_kek_check(key, self._jurisdiction, version), check):
            raise self._refuse(
                f"KEK version {version} does not match its check value; the file is corrupt "
                "or was edited, restore it from a backup"
            )
        return version, key


def serialize_key_file(jurisdiction: str, keks: Mapping[int, bytes]) -> bytes:
    """Key file format 1 holding *keks* (version -> key), each with its check value."""
    body = {
        "type": _KEY_FILE_TYPE,
        "format": KEY_FILE_FORMAT,
        "jurisdiction": jurisdiction,
        "keks": [
            {"version": v, "key": keks[v].hex(), "check": _kek_check(keks[v], jurisdiction, v)}
            for v in sorted(keks)
        ],
    }
    return (json.dumps(body, indent=2) + "\n").encode()


def load_keks(
    path: StrPath, jurisdiction: str, unlock: Unlock | None
) -> tuple[dict[int, bytes], Sealer | None]:
    """The KEKs of the key file at *path* (unsealed with *unlock* if it is sealed) and the
    sealer that reseals it, or None for a plain file.

    Raises:
        ConfigError: unreadable, sealed or plain against what was given, or any fault of
            the format, named with the file.
    """
    data = read_secret(path, max_len=_MAX_KEY_FILE_BYTES)
    sealer = None
    if is_sealed(data):
        data, sealer = unseal_key_file(data, jurisdiction, unlock)
    elif unlock is not None:
        raise ConfigError(
            f"custodian key file {path} is not sealed, yet a passphrase or key file was "
            "given; seal it first (sovra custodian seal) or give none"
        )
    return _KeyFileParser(path, jurisdiction).parse(data), sealer
