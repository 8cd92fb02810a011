"""Key custodians: each jurisdiction's holder of key-encryption keys (KEKs).

A custodian wraps record data keys under its current KEK and releases a data key only
against a logged allow: a decision entry from the transparency log, with the log's signed
receipt, that names the record, its subject and the requester, and is fresh. There is no
other path from a wrapped key to a data key.

:class:`BaseCustodian` does every check in its public methods and leaves exactly the
cryptography to two private methods, :meth:`~BaseCustodian._wrap_with` and
:meth:`~BaseCustodian._unwrap_with`, so an in-process custodian
(:class:`LocalCustodian`) and a remote one plug in the same way and cannot skip a check.

Local key file, format 1 (JSON, UTF-8, at most 1 MiB, mode 0600)::

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

import abc
import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sovra.errors import BadRequest, ConfigError, Denied, IntegrityError, VerificationError
from sovra.keys import _aead
from sovra.keys.files import StrPath, read_secret, write_secret
from sovra.model import (
    MAX_ENTRY_BYTES,
    LogEntry,
    RecordHeader,
    ReleaseAuthorization,
    WrappedKey,
    check_id,
    check_jurisdiction,
)

__all__ = [
    "DEFAULT_JOURNAL_SIZE",
    "DEFAULT_MAX_AUTHORIZATION_AGE_MS",
    "KEY_FILE_FORMAT",
    "MAX_WRAPPED_BYTES",
    "BaseCustodian",
    "Clock",
    "Custodian",
    "JournalEntry",
    "LocalCustodian",
    "system_clock_ms",
]

_log = logging.getLogger(__name__)

Clock = Callable[[], int]
"""Returns the current UNIX time in milliseconds."""

DEFAULT_MAX_AUTHORIZATION_AGE_MS = 300_000
DEFAULT_JOURNAL_SIZE = 10_000
MAX_WRAPPED_BYTES = 4096
"""A wrapped 32-byte key is far smaller; anything larger is refused before any work."""
KEY_FILE_FORMAT = 1
_KEY_FILE_TYPE = "sovra-custodian-keys"
_MAX_KEY_FILE_BYTES = 1024 * 1024
_MAX_KEKS = 4096
_HEX_KEY = re.compile(r"[0-9a-f]{64}")
_HEX_CHECK = re.compile(r"[0-9a-f]{32}")
_WRAP_TAG = b"sovra-wrap/v1\n"
_JOURNAL_REQUESTER_CHARS = 128


def system_clock_ms() -> int:
    """The wall clock, in UNIX milliseconds."""
    return time.time_ns() // 1_000_000


def _wrap_aad(jurisdiction: str, kek_version: int, header: RecordHeader) -> bytes:
    # Jurisdiction and version are newline-terminated so no two (jurisdiction, version,
    # header) triples share an encoding.
    return _WRAP_TAG + f"{jurisdiction}\n{kek_version}\n".encode() + header.to_bytes()


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One request a custodian received, and what became of it.

    ``reason`` explains a refusal or denial; for an integrity failure it is only
    ``"integrity"``, since the cause goes to the log and nowhere else.
    """

    time_ms: int
    operation: Literal["wrap", "unwrap"]
    requester: str | None
    record_id: str
    outcome: Literal["wrapped", "released", "refused", "denied", "failed"]
    reason: str = ""


@runtime_checkable
class Custodian(Protocol):
    """What the gateway needs from a jurisdiction's custodian.

    Implementations MUST refuse headers of another jurisdiction, MUST bind each wrapped
    key to its jurisdiction, KEK version and record header, MUST NOT release a data key
    without verifying a fresh logged allow for that record, subject and requester, and
    MUST raise one opaque :class:`IntegrityError` for every cryptographic failure.
    """

    @property
    def jurisdiction(self) -> str:
        """The jurisdiction whose residents' keys this custodian holds."""
        ...

    @property
    def current_kek_version(self) -> int:
        """The KEK version new wraps use; headers of new records MUST carry it."""
        ...

    def wrap(self, data_key: bytes, header: RecordHeader) -> WrappedKey:
        """Wrap *data_key* for the record described by *header*."""
        ...

    def unwrap(
        self,
        wrapped: WrappedKey,
        header: RecordHeader,
        authorization: ReleaseAuthorization | None,
        requester: str,
    ) -> bytes:
        """Release the data key of *header*'s record to *requester* under *authorization*."""
        ...


class BaseCustodian(abc.ABC):
    """Every check of :class:`Custodian`, around two private methods implementers write.

    Subclasses provide :attr:`current_kek_version`, :meth:`_wrap_with` and
    :meth:`_unwrap_with`; they MUST NOT override :meth:`wrap` or :meth:`unwrap`.
    """

    def __init__(
        self,
        jurisdiction: str,
        log_key: Ed25519PublicKey,
        *,
        clock: Clock = system_clock_ms,
        max_authorization_age_ms: int = DEFAULT_MAX_AUTHORIZATION_AGE_MS,
        journal_size: int = DEFAULT_JOURNAL_SIZE,
    ) -> None:
        """Set up the checks.

        Args:
            jurisdiction: two-letter code of the jurisdiction served.
            log_key: the transparency log's public key; receipts must be signed by it.
            clock: the current time in UNIX milliseconds.
            max_authorization_age_ms: how far a logged allow's time may be from now.
            journal_size: how many requests :meth:`journal` remembers.

        Raises:
            BadRequest: *jurisdiction* is not a two-letter code.
            ConfigError: *max_authorization_age_ms* or *journal_size* is not positive.
        """
        self._jurisdiction = check_jurisdiction(jurisdiction)
        if max_authorization_age_ms <= 0:
            raise ConfigError("max_authorization_age_ms must be a positive number of ms")
        if journal_size <= 0:
            raise ConfigError("journal_size must be positive")
        self._log_key = log_key
        self._clock = clock
        self._max_age_ms = max_authorization_age_ms
        self._journal: deque[JournalEntry] = deque(maxlen=journal_size)
        self._journal_lock = threading.Lock()

    @property
    def jurisdiction(self) -> str:
        """The jurisdiction whose residents' keys this custodian holds."""
        return self._jurisdiction

    @property
    @abc.abstractmethod
    def current_kek_version(self) -> int:
        """The KEK version new wraps use."""

    @abc.abstractmethod
    def _wrap_with(self, kek_version: int, data_key: bytes, aad: bytes) -> bytes:
        """Seal *data_key* under KEK *kek_version* with associated data *aad*.

        Called only after every check has passed. MUST authenticate *aad*.
        """

    @abc.abstractmethod
    def _unwrap_with(self, kek_version: int, blob: bytes, aad: bytes) -> bytes:
        """Open *blob* under KEK *kek_version* with associated data *aad*.

        Called only after the authorization has been verified. MUST raise
        :class:`IntegrityError` (any message; it is logged, never shown) when the KEK
        version is unknown or *blob* does not authenticate.
        """

    def journal(self) -> tuple[JournalEntry, ...]:
        """The most recent wrap and unwrap requests, oldest first."""
        with self._journal_lock:
            return tuple(self._journal)

    def _record(self, entry: JournalEntry) -> None:
        if entry.requester is not None and len(entry.requester) > _JOURNAL_REQUESTER_CHARS:
            # The journal is bounded in entries; bound each entry too.
            entry = replace(entry, requester=entry.requester[:_JOURNAL_REQUESTER_CHARS])
        with self._journal_lock:
            self._journal.append(entry)

    def _check_header(self, header: RecordHeader) -> None:
        if header.jurisdiction != self._jurisdiction:
            raise BadRequest(
                f"record {header.record_id} belongs to jurisdiction {header.jurisdiction}; "
                f"custodian {self._jurisdiction} holds keys only for {self._jurisdiction}"
            )

    def wrap(self, data_key: bytes, header: RecordHeader) -> WrappedKey:
        """Wrap *data_key* under the current KEK, bound to this jurisdiction and *header*.

        Args:
            data_key: the record's 32-byte data key.
            header: the record header; its ``kek_version`` MUST be
                :attr:`current_kek_version`.

        Returns:
            The wrapped key, safe to store next to the blob.

        Raises:
            BadRequest: *header* is of another jurisdiction or names another KEK version,
                or *data_key* is not 32 bytes.
            IntegrityError: the implementation produced an empty or oversized wrap.
        """
        now = self._clock()
        record_id = header.record_id
        try:
            version = self._check_wrap(data_key, header)
        except BadRequest as exc:
            self._record(JournalEntry(now, "wrap", None, record_id, "refused", exc.message))
            raise
        try:
            blob = self._wrap_checked(version, data_key, header)
        except Exception:
            self._record(JournalEntry(now, "wrap", None, record_id, "failed", "wrap failed"))
            raise
        self._record(JournalEntry(now, "wrap", None, record_id, "wrapped"))
        return WrappedKey(jurisdiction=self._jurisdiction, kek_version=version, blob=blob)

    def _check_wrap(self, data_key: bytes, header: RecordHeader) -> int:
        self._check_header(header)
        if len(data_key) != _aead.KEY_SIZE:
            raise BadRequest(f"a data key is {_aead.KEY_SIZE} bytes, got {len(data_key)}")
        version = self.current_kek_version
        if header.kek_version != version:
            raise BadRequest(
                f"record {header.record_id} names KEK version {header.kek_version}, but "
                f"custodian {self._jurisdiction} wraps new keys under version {version}"
            )
        return version

    def _wrap_checked(self, version: int, data_key: bytes, header: RecordHeader) -> bytes:
        blob = self._wrap_with(version, data_key, _wrap_aad(self._jurisdiction, version, header))
        if not 0 < len(blob) <= MAX_WRAPPED_BYTES:
            raise IntegrityError(f"custodian produced a wrapped key of {len(blob)} bytes")
        return blob

    def unwrap(
        self,
        wrapped: WrappedKey,
        header: RecordHeader,
        authorization: ReleaseAuthorization | None,
        requester: str,
    ) -> bytes:
        """Release a record's data key against a logged, fresh allow.

        Args:
            wrapped: the record's wrapped key.
            header: the record's header.
            authorization: the logged decision entry and the log's receipt for it.
            requester: the principal id asking; the allow MUST have been issued to it.

        Returns:
            The 32-byte data key.

        Raises:
            BadRequest: *header* is of another jurisdiction or *requester* is not an id.
            Denied: no authorization, a receipt that does not verify against the log key
                or does not cover the entry, an entry that is not an allow decision, that
                does not name this record, subject or requester, or that is not fresh.
            IntegrityError: the wrapped key does not open for this jurisdiction, version
                and header; one message whatever the cause.
        """
        now = self._clock()
        record_id = header.record_id
        try:
            check_id(requester, "requester")
            self._check_header(header)
        except BadRequest as exc:
            self._record(JournalEntry(now, "unwrap", requester, record_id, "refused", exc.message))
            raise
        try:
            self._check_authorization(header, authorization, requester, now)
        except Denied as exc:
            self._record(JournalEntry(now, "unwrap", requester, record_id, "denied", exc.message))
            raise
        try:
            data_key = self._open_detailed(wrapped, header)
        except IntegrityError as exc:
            self._record(JournalEntry(now, "unwrap", requester, record_id, "failed", "integrity"))
            _log.warning(
                "custodian %s: wrapped key of record %s failed authentication: %s",
                self._jurisdiction,
                record_id,
                exc.message,
            )
            raise IntegrityError(
                f"wrapped key of record {record_id} failed authentication"
            ) from None
        self._record(JournalEntry(now, "unwrap", requester, record_id, "released"))
        return data_key

    def _deny(self, record_id: str, reason: str) -> Denied:
        return Denied(
            f"custodian {self._jurisdiction} refuses to release the key of record "
            f"{record_id}: {reason}"
        )

    def _check_authorization(
        self,
        header: RecordHeader,
        authorization: ReleaseAuthorization | None,
        requester: str,
        now: int,
    ) -> None:
        rid = header.record_id
        if authorization is None:
            raise Denied(
                f"custodian {self._jurisdiction} releases keys only against a logged allow; "
                "none was presented"
            )
        raw = authorization.entry
        if len(raw) > MAX_ENTRY_BYTES:
            raise self._deny(rid, f"the presented entry is over {MAX_ENTRY_BYTES} bytes")
        try:
            authorization.receipt.verify(self._log_key, raw)
        except VerificationError as exc:
            raise self._deny(rid, f"the log receipt does not verify: {exc.message}") from None
        try:
            entry = LogEntry.from_bytes(raw)
        except BadRequest as exc:
            # The log signed it, so this is a log bug; refuse rather than guess.
            raise self._deny(rid, f"the logged entry does not parse: {exc}") from None
        if entry.kind != "decision":
            raise self._deny(rid, f"the logged entry is a {entry.kind} entry, not a decision")
        effect = entry.fields.get("effect")
        if effect != "allow":
            raise self._deny(rid, f"the logged decision's effect is {effect!r}, not 'allow'")
        if rid not in _str_list(entry.fields, "records"):
            raise self._deny(rid, "the logged allow does not cover this record")
        if header.subject not in _str_list(entry.fields, "subjects"):
            raise self._deny(rid, "the logged allow does not cover this record's subject")
        if entry.principal != requester:
            raise self._deny(
                rid, f"the logged allow was issued to {entry.principal!r}, not {requester!r}"
            )
        age = now - entry.time_ms
        if age > self._max_age_ms:
            raise self._deny(
                rid, f"the logged allow is {age} ms old, over the {self._max_age_ms} ms limit"
            )
        if -age > self._max_age_ms:
            raise self._deny(
                rid,
                f"the logged allow is dated {-age} ms in the future, "
                f"over the {self._max_age_ms} ms limit",
            )

    def _open_detailed(self, wrapped: WrappedKey, header: RecordHeader) -> bytes:
        # The messages raised here name the cause; unwrap keeps them for the log only.
        if wrapped.jurisdiction != self._jurisdiction:
            raise IntegrityError(f"wrapped key is labelled {wrapped.jurisdiction!r}")
        version = wrapped.kek_version
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise IntegrityError(f"wrapped key has KEK version {version!r}")
        if not 0 < len(wrapped.blob) <= MAX_WRAPPED_BYTES:
            raise IntegrityError(f"wrapped key is {len(wrapped.blob)} bytes")
        aad = _wrap_aad(self._jurisdiction, version, header)
        try:
            data_key = self._unwrap_with(version, wrapped.blob, aad)
        except InvalidTag:
            raise IntegrityError("tag does not verify") from None
        if len(data_key) != _aead.KEY_SIZE:
            raise IntegrityError(f"unwrapped key is {len(data_key)} bytes")
        return data_key


def _str_list(fields: Mapping[str, Any], name: str) -> list[str]:
    value = fields.get(name)
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str)]


def _kek_check(key: bytes, jurisdiction: str, version: int) -> str:
    label = f"sovra-kek-check/v1\n{jurisdiction}\n{version}".encode()
    return hmac.new(key, label, hashlib.sha256).digest()[:16].hex()


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate field {key!r}")
        obj[key] = value
    return obj


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
        missing = fields - obj.keys()
        unknown = obj.keys() - fields
        if missing:
            raise self._refuse(f"{what} is missing {', '.join(sorted(missing))}")
        if unknown:
            raise self._refuse(f"{what} has unknown field(s) {', '.join(sorted(unknown))}")

    def parse(self, data: bytes) -> dict[int, bytes]:
        try:
            obj = json.loads(
                data.decode("utf-8"),
                object_pairs_hook=_refuse_duplicates,
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


def _serialize_key_file(jurisdiction: str, keks: Mapping[int, bytes]) -> bytes:
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


class LocalCustodian(BaseCustodian):
    """An in-process custodian whose KEKs live in one 0600 key file.

    Build one with :meth:`create` (new key file) or :meth:`open` (existing file).
    """

    def __init__(
        self,
        path: StrPath,
        jurisdiction: str,
        log_key: Ed25519PublicKey,
        keks: Mapping[int, bytes],
        *,
        clock: Clock = system_clock_ms,
        max_authorization_age_ms: int = DEFAULT_MAX_AUTHORIZATION_AGE_MS,
        journal_size: int = DEFAULT_JOURNAL_SIZE,
    ) -> None:
        """Wrap already-loaded KEKs; prefer :meth:`create` and :meth:`open`.

        Raises:
            BadRequest: *jurisdiction* is not a two-letter code.
            ConfigError: no KEKs, a KEK that is not 32 bytes, a version below 1, or a
                non-positive age limit or journal size.
        """
        super().__init__(
            jurisdiction,
            log_key,
            clock=clock,
            max_authorization_age_ms=max_authorization_age_ms,
            journal_size=journal_size,
        )
        if not keks:
            raise ConfigError(f"custodian {jurisdiction} has no KEK")
        for version, key in keks.items():
            if version < 1 or len(key) != _aead.KEY_SIZE:
                raise ConfigError(f"custodian {jurisdiction} KEK version {version} is invalid")
        self._path = Path(path)
        self._keks = dict(keks)
        self._rotate_lock = threading.Lock()

    @classmethod
    def create(
        cls,
        path: StrPath,
        jurisdiction: str,
        log_key: Ed25519PublicKey,
        *,
        clock: Clock = system_clock_ms,
        max_authorization_age_ms: int = DEFAULT_MAX_AUTHORIZATION_AGE_MS,
        journal_size: int = DEFAULT_JOURNAL_SIZE,
    ) -> LocalCustodian:
        """Generate KEK version 1 and write a new key file (mode 0600) at *path*.

        Raises:
            BadRequest: *jurisdiction* is not a two-letter code.
            ConfigError: *path* already exists or cannot be written.
        """
        check_jurisdiction(jurisdiction)
        keks = {1: _aead.new_key()}
        write_secret(path, _serialize_key_file(jurisdiction, keks))
        return cls(
            path,
            jurisdiction,
            log_key,
            keks,
            clock=clock,
            max_authorization_age_ms=max_authorization_age_ms,
            journal_size=journal_size,
        )

    @classmethod
    def open(
        cls,
        path: StrPath,
        jurisdiction: str,
        log_key: Ed25519PublicKey,
        *,
        clock: Clock = system_clock_ms,
        max_authorization_age_ms: int = DEFAULT_MAX_AUTHORIZATION_AGE_MS,
        journal_size: int = DEFAULT_JOURNAL_SIZE,
    ) -> LocalCustodian:
        """Load the custodian of *jurisdiction* from its key file.

        Raises:
            BadRequest: *jurisdiction* is not a two-letter code.
            ConfigError: the file is missing, open to group or others, oversized,
                malformed, of another jurisdiction, or a KEK fails its check value.
        """
        check_jurisdiction(jurisdiction)
        data = read_secret(path, max_len=_MAX_KEY_FILE_BYTES)
        keks = _KeyFileParser(path, jurisdiction).parse(data)
        return cls(
            path,
            jurisdiction,
            log_key,
            keks,
            clock=clock,
            max_authorization_age_ms=max_authorization_age_ms,
            journal_size=journal_size,
        )

    @property
    def current_kek_version(self) -> int:
        """The highest KEK version; new wraps use it."""
        return max(self._keks)

    def rotate(self) -> int:
        """Add a new KEK version, make it current, and rewrite the key file atomically.

        Existing wrapped keys still open under their own versions.

        Returns:
            The new current KEK version.

        Raises:
            ConfigError: the key file cannot be rewritten; nothing changes in memory.
        """
        with self._rotate_lock:
            keks = {**self._keks, self.current_kek_version + 1: _aead.new_key()}
            write_secret(self._path, _serialize_key_file(self._jurisdiction, keks), overwrite=True)
            self._keks = keks
            return max(keks)

    def _wrap_with(self, kek_version: int, data_key: bytes, aad: bytes) -> bytes:
        return _aead.seal(self._keks[kek_version], data_key, aad)

    def _unwrap_with(self, kek_version: int, blob: bytes, aad: bytes) -> bytes:
        kek = self._keks.get(kek_version)
        if kek is None:
            raise IntegrityError(f"no KEK version {kek_version}")
        return _aead.open_sealed(kek, blob, aad)
