"""Core types shared by every stage: who asks, about whom, for what, and what was decided.

This module does no I/O. Constructors validate (parse, don't validate later); every
``from_bytes`` bounds its input. The byte encodings defined here (record headers, log
entries, grants, log receipts) are what signatures and AEAD tags cover, so they are
canonical: sorted keys, no whitespace, UTF-8, one encoding per value.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import hmac
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sovra.errors import BadRequest, VerificationError
from sovra_verify._merkle import leaf_hash, root_from_leaf_hashes
from sovra_verify.receipt import batch_promise, promise_bytes

__all__ = [
    "ENTRY_KINDS",
    "KIND_NAME",
    "MAX_ENTRY_BYTES",
    "MAX_HOMES",
    "MAX_JSON_DEPTH",
    "MAX_LISTED_IDS",
    "RECORD_FORMAT",
    "SPLIT_KEY_FORMAT",
    "Decision",
    "Finding",
    "Grant",
    "LogEntry",
    "LogReceipt",
    "Principal",
    "RecordHeader",
    "RecordMeta",
    "ReleaseAuthorization",
    "Role",
    "WrappedKey",
    "batch_promise",
    "canonical_json",
    "check_homes",
    "check_id",
    "check_jurisdiction",
    "check_purpose",
    "check_unicode",
    "field_problem",
    "id_count",
    "id_fields",
    "named_ids",
    "parse_json",
    "subject_commitment",
]

KIND_NAME = r"[a-z][a-z0-9_]{0,63}"
"""The grammar of a finding kind's name (``pl_pesel``, ``email``), as a regex fragment."""
_JURISDICTION = re.compile(r"[A-Z]{2}")
_PURPOSE = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
_COMMITMENT = re.compile(r"[0-9a-f]{64}")
MAX_ENTRY_BYTES = 64 * 1024
MAX_LISTED_IDS = 64
"""A log entry lists at most this many record ids, or subjects; more it names by root."""
_MAX_HEADER_BYTES = 4 * 1024
_MAX_GRANT_BYTES = 256 * 1024


# One encoder for every call: json.dumps with these options builds a new one each time,
# which is a quarter of the cost of encoding a record header (once per wrap and unwrap).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
# The string escaping of the encoder above (ensure_ascii=False), on its own.
_ENCODE_STR: Callable[[str], str] = json.encoder.encode_basestring


_HEADER_JSON = (
    'sovra-record\n{"content_type":%s,"format":%d,"jurisdiction":"%s","kek_version":%d,'
    '"record_id":"%s","region":"%s","subject":"%s"}'
)


# orjson writes the same bytes as the encoder above (sorted by code point, the same
# escapes, UTF-8) in a fifth of the time, for every value but two: a float may come out
# in another spelling (1e-07 against 1e-7), and a key that is a str subclass or no str
# at all, or an integer over 64 bits, it refuses. So a float anywhere sends the value to
# the encoder above, as does a refusal: the bytes are the stdlib's, pinned by tests.
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
)
# Where a number starts in canonical JSON (after ':', ',' or '['), digits then '.' or 'e'
# are a float. Text inside strings may look the same: that only costs the slower encoder.
_FLOAT = re.compile(rb"[:,\[]-?[0-9]+[.eE]")


def canonical_json(value: Any) -> bytes:
    """Encode *value* as canonical JSON: sorted keys, no whitespace, UTF-8.

    The bytes are those of ``json.dumps(value, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False).encode()``, which signatures, Merkle leaves and AEAD tags cover.
    Only a non-finite float, which no sovra document holds (:func:`parse_json` refuses
    it), differs: it is written ``null``, not as the invalid JSON ``NaN``.
    """
    if type(value) is dict:
        try:
            data = orjson.dumps(value, option=_ORJSON_OPTIONS)
        except TypeError:  # orjson.JSONEncodeError: see above
            pass
        else:
            if _FLOAT.search(data) is None:
                return data
    return _CANONICAL.encode(value).encode()


MAX_JSON_DEPTH = 32
"""How deeply untrusted JSON may nest: every sovra document needs fewer than 8 levels."""
# A string token (skipped whole, so brackets inside strings do not count) or a bracket.
_JSON_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: a number JSON allows, no float can hold
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers may keep different copies of a field named twice (a signature checked
    # over one, a value read from the other), so a duplicate is refused, never resolved.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        twice = next(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
        raise ValueError(f"duplicate field {twice!r}")
    return obj


_STRICT = json.JSONDecoder(
    object_pairs_hook=_no_duplicates, parse_constant=_no_constant, parse_float=_finite
)
"""Made once: ``json.loads`` with these arguments builds a decoder on every call."""


def parse_json(data: bytes | str, *, limit: int, what: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse untrusted JSON with every dimension bounded.

    At most *limit* bytes, strict UTF-8 (no BOM, no other encoding guessed), at most
    *max_depth* levels of nesting (checked before parsing, so no recursion limit is ever
    reached), no field named twice, no ``NaN``, ``Infinity`` or number too large for a
    float (``1e999``), no integer over 4300 digits, no lone surrogate in any string or
    field name.

    Raises:
        BadRequest: any of those, or not JSON at all.
    """
    if len(data) > limit:
        raise BadRequest(f"{what} is {len(data)} bytes, over the {limit}-byte limit")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise BadRequest(f"{what} is not valid UTF-8 (byte {exc.start})") from None
    # No deeper than it has brackets: only a text with more than the budget is walked.
    if text.count("[") + text.count("{") > max_depth:
        depth = 0
        for token in _JSON_TOKENS.finditer(text):
            bracket = token.group()
            if bracket in "[{":
                depth += 1
                if depth > max_depth:
                    raise BadRequest(f"{what} nests deeper than {max_depth} levels")
            elif bracket in "]}":
                depth -= 1
    try:
        if text.startswith("\ufeff"):  # as json.loads refuses it
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value = _STRICT.decode(text)
    except ValueError as exc:  # JSONDecodeError, a duplicate, NaN, an over-long integer
        raise BadRequest(f"{what} is not valid JSON: {exc}") from None
    # Strict UTF-8 holds no surrogate: from bytes, only an escape \uD800 to \uDFFF can make
    # a lone one (text that merely looks like one, after an escaped backslash, is checked
    # all the same: a wasted check, never a missed one).
    if not isinstance(data, bytes) or _SURROGATE_ESCAPE.search(text) is not None:
        check_unicode(value, what)
    return value


def check_unicode(value: Any, what: str) -> None:
    """Check that *value* (parsed JSON) holds only valid Unicode, in values and field names.

    A lone surrogate (``"\\ud800"`` in JSON) is a Python string no UTF-8 byte string can
    carry: refused here, it never reaches an encoder deep inside a flow.

    Raises:
        BadRequest: a lone surrogate anywhere in *value*, or *value* is not JSON data.
    """
    # One C-speed pass: the canonical encoder keeps lone surrogates, UTF-8 refuses them.
    try:
        _CANONICAL.encode(value).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{what} holds a lone surrogate, which is not valid Unicode") from None
    except (TypeError, ValueError, RecursionError):
        raise BadRequest(f"{what} is not a JSON document") from None


def _parse_json_object(data: bytes, limit: int, what: str) -> dict[str, Any]:
    value = parse_json(data, limit=limit, what=what)
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return value


def _loads(data: bytes) -> Any:
    return json.loads(data, parse_constant=_no_constant)


def _canonical_object(data: bytes, limit: int) -> dict[str, Any] | None:
    """*data* as a JSON object if it is exactly that object's canonical JSON, else None.

    Every log entry and record header is canonical (:meth:`LogEntry.to_bytes`,
    :meth:`RecordHeader.to_bytes`), and reading them is on the path of every key release,
    so their parsers try the short way first. What it accepts,
    :func:`parse_json` accepts as the same object: at most *limit* bytes, no more brackets
    than :data:`MAX_JSON_DEPTH` in all (so no deeper nesting), no ``NaN`` or
    ``Infinity``, and re-encoding gives back the very bytes, which a field named twice, a
    number no float holds, a lone surrogate or any other encoding than UTF-8 cannot do.
    Anything else returns None, for :func:`parse_json` to refuse with its precise message.
    """
    if len(data) > limit or data.count(b"{") + data.count(b"[") > MAX_JSON_DEPTH:
        return None
    try:
        # orjson reads fast, but keeps the last of a field named twice and reads integers
        # over 64 bits as floats: the re-encoding then differs from *data*, and the
        # stdlib parser has the last word.
        for loads in (orjson.loads, _loads):
            try:
                value = loads(data)
            except orjson.JSONDecodeError:
                continue
            if type(value) is dict and canonical_json(value) == data:
                return value
    except (ValueError, RecursionError):  # UnicodeError is a ValueError
        pass
    return None


def field_problem(
    obj: Mapping[str, Any],
    required: AbstractSet[str],
    optional: AbstractSet[str] = frozenset(),
    what: str = "object",
    *,
    noun: str = "field",
) -> str | None:
    """What is wrong with *obj*'s keys, worded for an error, or None: a missing required
    key is named before an unknown one (every parser of the project refuses unknown keys,
    so a misspelt option fails loudly instead of being ignored). The caller raises the
    error of its layer (:class:`BadRequest`, ``ConfigError``, a custodian's refusal)."""
    missing = required - obj.keys()
    if missing:
        return f"{what} is missing {', '.join(sorted(missing))}"
    unknown = obj.keys() - required - optional
    if unknown:
        return f"{what} has unknown {noun}(s) {', '.join(sorted(unknown))}"
    return None


def _exact_keys(obj: Mapping[str, Any], required: set[str], optional: set[str], what: str) -> None:
    problem = field_problem(obj, required, optional, what)
    if problem is not None:
        raise BadRequest(problem)


def check_jurisdiction(code: object) -> str:
    """Return *code* if it is a two-letter upper-case jurisdiction code.

    Raises:
        BadRequest: it is not.
    """
    if not isinstance(code, str) or not _JURISDICTION.fullmatch(code):
        raise BadRequest(f"jurisdiction must be two upper-case letters (ISO 3166-1), got {code!r}")
    return code


def check_purpose(purpose: object) -> str:
    """Return *purpose* if it is a lower-case token such as ``customer-support``.

    Raises:
        BadRequest: it is not.
    """
    if not isinstance(purpose, str) or not _PURPOSE.fullmatch(purpose):
        raise BadRequest(f"purpose must match {_PURPOSE.pattern}, got {purpose!r}")
    return purpose


def check_id(value: object, what: str) -> str:
    """Return *value* if it is a safe identifier (letters, digits, ``._:@-``, <= 128 chars).

    Raises:
        BadRequest: it is not.
    """
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise BadRequest(f"{what} must match {_ID.pattern}, got {value!r}")
    return value


def subject_commitment(secret: bytes, jurisdiction: str, subject_id: str) -> str:
    """The keyed commitment that stands for a subject in headers and the public log.

    HMAC-SHA256 under the deployment's commitment secret, so the log reveals nothing
    about who the subject is to anyone without the secret.
    """
    return hmac.digest(secret, f"{jurisdiction}\x00{subject_id}".encode(), "sha256").hex()


class Role(enum.StrEnum):
    """What a principal is. Whether it is *foreign* depends on the subject, not the role."""

    SERVICE = "service"
    AUTHORITY = "authority"
    ANALYST = "analyst"
    OPERATOR = "operator"
    SUBJECT = "subject"
    AUDITOR = "auditor"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller with a home jurisdiction and a role."""

    id: str
    jurisdiction: str
    role: Role
    public_key: bytes = field(repr=False)
    # For role SUBJECT: the commitment of the subject this principal is; empty otherwise.
    subject: str = ""

    def __post_init__(self) -> None:
        check_id(self.id, "principal id")
        check_jurisdiction(self.jurisdiction)
        if len(self.public_key) != 32:
            raise BadRequest("a principal's public key is a raw 32-byte Ed25519 key")
        if (self.role is Role.SUBJECT) != bool(self.subject):
            raise BadRequest("a subject principal, and only one, carries a subject commitment")


@dataclass(frozen=True, slots=True)
class Finding:
    """One piece of sensitive data found in a text: what, where, how sure."""

    kind: str
    start: int
    end: int
    confidence: float
    validated: bool

    def to_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``sovra scan`` (never includes the value)."""
        return {
            "kind": self.kind,
            "start": self.start,
            "end": self.end,
            "confidence": round(self.confidence, 3),
            "validated": self.validated,
        }


RECORD_FORMAT = 1
"""A record of one home: its data key is wrapped by that home's custodian."""

SPLIT_KEY_FORMAT = 2
"""A record of a subject with two homes: its data key is split in two shares, each
wrapped by one home's custodian (``sovra.keys.split``); both must release. The header is
the first home's; its format is bound into every AEAD tag, so such a record never opens
as a record of one home."""

MAX_HOMES = 2
"""The most home jurisdictions one subject's records may have."""


def check_homes(first: str, others: Sequence[str]) -> tuple[str, ...]:
    """A subject's home jurisdictions: *first* (whose commitment names her) and *others*.

    Raises:
        BadRequest: a code is malformed, a home is named twice, or more than
            :data:`MAX_HOMES` homes are named.
    """
    if isinstance(others, str) or not isinstance(others, Sequence):
        raise BadRequest(f"other homes must be a list of jurisdiction codes, not {others!r}")
    homes = (check_jurisdiction(first), *(check_jurisdiction(j) for j in others))
    twice = next((j for n, j in enumerate(homes) if j in homes[:n]), None)
    if twice is not None:
        raise BadRequest(f"home jurisdiction {twice} is named twice; name each home once")
    if len(homes) > MAX_HOMES:
        raise BadRequest(
            f"a subject has at most {MAX_HOMES} home jurisdictions, got {len(homes)}: "
            f"{', '.join(homes)}"
        )
    return homes


@dataclass(frozen=True, slots=True)
class RecordHeader:
    """What a record's ciphertext is bound to (its AEAD associated data).

    A ciphertext or wrapped key moved to another record, subject, jurisdiction or key
    version no longer opens.
    """

    record_id: str
    subject: str  # subject commitment, hex
    jurisdiction: str
    region: str
    kek_version: int
    content_type: str = "text/plain; charset=utf-8"
    format: int = RECORD_FORMAT

    def __post_init__(self) -> None:
        check_id(self.record_id, "record id")
        check_jurisdiction(self.jurisdiction)
        check_id(self.region, "region")
        if not _COMMITMENT.fullmatch(self.subject):
            raise BadRequest("record subject must be a 64-hex-digit commitment")
        if self.kek_version < 1:
            raise BadRequest("kek_version starts at 1")

    def to_bytes(self) -> bytes:
        """Canonical encoding, used as associated data."""
        content_type, version, form = self.content_type, self.kek_version, self.format
        if type(content_type) is str and type(version) is int and type(form) is int:
            # The canonical JSON spelt out: the same bytes (pinned by a test) in a fraction
            # of the time, paid on every seal, open, wrap and unwrap. The other fields were
            # checked in __post_init__ to hold only characters JSON does not escape.
            return (
                _HEADER_JSON
                % (
                    _ENCODE_STR(content_type),
                    form,
                    self.jurisdiction,
                    version,
                    self.record_id,
                    self.region,
                    self.subject,
                )
            ).encode()
        return b"sovra-record\n" + canonical_json(
            {
                "content_type": self.content_type,
                "format": self.format,
                "jurisdiction": self.jurisdiction,
                "kek_version": self.kek_version,
                "record_id": self.record_id,
                "region": self.region,
                "subject": self.subject,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> RecordHeader:
        """Parse :meth:`to_bytes` output.

        Raises:
            BadRequest: malformed, oversized or with unknown fields.
        """
        prefix = b"sovra-record\n"
        if not data.startswith(prefix):
            raise BadRequest("record header does not start with the sovra-record tag")
        body = data[len(prefix) :]
        obj = _canonical_object(body, _MAX_HEADER_BYTES)
        if obj is None:
            obj = _parse_json_object(body, _MAX_HEADER_BYTES, "record header")
        keys = {"content_type", "format", "jurisdiction", "kek_version", "record_id", "region"}
        _exact_keys(obj, keys | {"subject"}, set(), "record header")
        return cls(**obj)


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A data key sealed by a jurisdiction custodian's key-encryption key."""

    jurisdiction: str
    kek_version: int
    blob: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Grant:
    """A legal-assistance grant: the software form of a mutual-legal-assistance request.

    Signed by the approving (home) jurisdiction's authority key over :meth:`signed_bytes`.
    Times are UNIX seconds.
    """

    grant_id: str
    grantee: str  # principal id of the requesting authority
    grantee_jurisdiction: str
    approver: str  # jurisdiction whose authority signs; the subjects' home
    subjects: tuple[str, ...]  # subject ids, as the approving authority names them
    purpose: str
    legal_basis: str
    not_before: int
    not_after: int
    signature: bytes = field(default=b"", repr=False)
    # Optional scope, signed when set: data categories (kinds of data found at ingest, or
    # "plain" for records with none) and a cap on records per request (0: no cap).
    categories: tuple[str, ...] = ()
    max_records: int = 0
    # Co-signatures by further authorities over the same signed bytes (bulk scope).
    cosignatures: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        check_id(self.grant_id, "grant id")
        check_id(self.grantee, "grantee")
        check_jurisdiction(self.grantee_jurisdiction)
        check_jurisdiction(self.approver)
        check_purpose(self.purpose)
        if not self.subjects:
            raise BadRequest("a grant must name at least one subject")
        for s in self.subjects:
            check_id(s, "grant subject")
        if not (0 < len(self.legal_basis) <= 512):
            raise BadRequest("a grant needs a legal basis of 1..512 characters")
        if self.not_after <= self.not_before:
            raise BadRequest("a grant's not_after must be later than its not_before")
        for c in self.categories:
            check_purpose(c)
        if self.max_records < 0:
            raise BadRequest("a grant's max_records is 0 (no cap) or positive")
        for j, _ in self.cosignatures:
            check_jurisdiction(j)

    def body(self) -> dict[str, Any]:
        """Every field but the signatures (optional scope fields only when set)."""
        optional: dict[str, Any] = {}
        if self.categories:
            optional["categories"] = list(self.categories)
        if self.max_records:
            optional["max_records"] = self.max_records
        return optional | {
            "approver": self.approver,
            "grant_id": self.grant_id,
            "grantee": self.grantee,
            "grantee_jurisdiction": self.grantee_jurisdiction,
            "legal_basis": self.legal_basis,
            "not_after": self.not_after,
            "not_before": self.not_before,
            "purpose": self.purpose,
            "subjects": list(self.subjects),
        }

    def signed_bytes(self) -> bytes:
        """The exact bytes the approving authority signs."""
        return b"sovra-grant/v1\n" + canonical_json(self.body())

    def digest(self) -> str:
        """SHA-256 of the signed bytes, hex: how the log names a grant."""
        return hashlib.sha256(self.signed_bytes()).hexdigest()

    def to_json(self) -> bytes:
        """Grant with its signature(s), for storage and transport."""
        extra: dict[str, Any] = {}
        if self.cosignatures:
            extra["cosignatures"] = {j: sig.hex() for j, sig in self.cosignatures}
        return canonical_json({**self.body(), "signature": self.signature.hex(), **extra})

    @classmethod
    def from_json(cls, data: bytes | Mapping[str, Any]) -> Grant:
        """Parse :meth:`to_json` output.

        Raises:
            BadRequest: malformed, oversized, unknown fields or bad values.
        """
        if isinstance(data, Mapping):
            obj = dict(data)
            check_unicode(obj, "grant")
        else:
            obj = _parse_json_object(data, _MAX_GRANT_BYTES, "grant")
        fields_ = {
            "approver",
            "grant_id",
            "grantee",
            "grantee_jurisdiction",
            "legal_basis",
            "not_after",
            "not_before",
            "purpose",
            "subjects",
        }
        _exact_keys(
            obj, fields_, {"signature", "categories", "max_records", "cosignatures"}, "grant"
        )
        if not isinstance(obj["subjects"], list) or len(obj["subjects"]) > 10_000:
            raise BadRequest("grant subjects must be a list of at most 10000 ids")
        for k in ("not_before", "not_after"):
            if not isinstance(obj[k], int) or isinstance(obj[k], bool):
                raise BadRequest(f"grant {k} must be an integer UNIX time")
        for k in ("legal_basis", "grant_id", "grantee", "purpose"):
            if not isinstance(obj[k], str):
                raise BadRequest(f"grant {k} must be a string")
        try:
            signature = bytes.fromhex(obj.pop("signature", "") or "")
        except (TypeError, ValueError):
            raise BadRequest("grant signature must be hex") from None
        obj["subjects"] = tuple(obj["subjects"])
        if not isinstance(obj.get("categories", []), list) or len(obj.get("categories", [])) > 64:
            raise BadRequest("grant categories must be a list of at most 64 names")
        obj["categories"] = tuple(obj.get("categories", ()))
        max_records = obj.get("max_records", 0)
        if not isinstance(max_records, int) or isinstance(max_records, bool):
            raise BadRequest("grant max_records must be an integer")
        cosigned = obj.pop("cosignatures", {})
        if not isinstance(cosigned, dict) or len(cosigned) > 64:
            raise BadRequest("grant cosignatures must map at most 64 jurisdictions to hex")
        try:
            cosignatures = tuple(sorted((str(j), bytes.fromhex(h)) for j, h in cosigned.items()))
        except (TypeError, ValueError):
            raise BadRequest("grant cosignatures must be hex") from None
        return cls(**obj, signature=signature, cosignatures=cosignatures)


def id_fields(name: str, ids: Sequence[str]) -> dict[str, Any]:
    """How a log entry names a list of ids (``records``, ``subjects``).

    Up to :data:`MAX_LISTED_IDS`, the list itself, under *name*. Over it, the entry commits
    to the list instead of holding it: ``<name>_root`` is the RFC 9162 root (the log's own
    hashing) over the ids in order, each id's UTF-8 bytes one leaf, and ``<name>_count``
    their number. An entry then stays small however many records a decision covers
    (10,000 record ids would be over :data:`MAX_ENTRY_BYTES`), and whoever is handed the
    list beside the entry checks it against the root (:func:`named_ids`).
    """
    if len(ids) <= MAX_LISTED_IDS:
        return {name: list(ids)}
    return {f"{name}_count": len(ids), f"{name}_root": _ids_root(tuple(ids)).hex()}


@functools.lru_cache(maxsize=16)
def _ids_root(ids: tuple[str, ...]) -> bytes:
    # Remembered: the gateway hands a custodian the same lists for each of its batches of
    # at most 1,000 keys, and 10,000 ids take tens of milliseconds to hash.
    return root_from_leaf_hashes([leaf_hash(i.encode()) for i in ids])


def id_count(fields: Mapping[str, Any], name: str) -> int:
    """How many ids an entry's *fields* name under *name*, listed or by root.

    Raises:
        BadRequest: they name neither a list nor a count.
    """
    listed, count = fields.get(name), fields.get(f"{name}_count")
    if isinstance(listed, list):
        return len(listed)
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        return count
    raise BadRequest(f"the entry names no {name}")


def named_ids(fields: Mapping[str, Any], name: str, beside: Sequence[str]) -> tuple[str, ...]:
    """The ids an entry's *fields* name under *name*: its own list, or *beside* once checked.

    An entry that names them by root (:func:`id_fields`) is only as good as the list
    handed over with it: *beside* must have the entry's count and hash to its root.

    Raises:
        VerificationError: the entry names the ids by root and *beside* is not that list,
            or it names them in neither way.
    """
    listed = fields.get(name)
    if isinstance(listed, list):
        return tuple(i for i in listed if isinstance(i, str))
    count, root = fields.get(f"{name}_count"), fields.get(f"{name}_root")
    if not isinstance(count, int) or not isinstance(root, str):
        raise VerificationError(f"the entry names no {name}, neither listed nor by root")
    if len(beside) != count:
        raise VerificationError(
            f"the entry names {count} {name} by root; {len(beside)} were handed with it"
        )
    if _ids_root(tuple(beside)).hex() != root:
        raise VerificationError(f"the {name} handed with the entry are not the ones its root names")
    return tuple(beside)


ENTRY_KINDS = frozenset(
    {
        "ingest",
        "decision",
        "key_release",
        "grant",
        "grant_revoked",
        "policy_activation",
        "shred",
        "principal",
    }
)


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One entry of the transparency log. Public: subjects appear only as commitments.

    ``fields`` holds the kind-specific members (for a decision: ``effect``, ``reason``,
    ``records``, ``subjects``, ``purpose``, ``policies``, ``grant``; over
    :data:`MAX_LISTED_IDS` records or subjects, their root and count: :func:`id_fields`).
    """

    kind: str
    time_ms: int
    principal: str
    fields: Mapping[str, Any]

    def __post_init__(self) -> None:
        if self.kind not in ENTRY_KINDS:
            raise BadRequest(f"unknown log entry kind {self.kind!r}")
        reserved = {"v", "kind", "time_ms", "principal"} & self.fields.keys()
        if reserved:
            raise BadRequest(f"entry fields may not reuse {sorted(reserved)}")

    def to_bytes(self) -> bytes:
        """Canonical encoding; the Merkle leaf is this, hashed with the 0x00 prefix."""
        data = canonical_json(
            {
                **self.fields,
                "kind": self.kind,
                "principal": self.principal,
                "time_ms": self.time_ms,
                "v": 1,
            }
        )
        if len(data) > MAX_ENTRY_BYTES:
            raise BadRequest(f"log entry of {len(data)} bytes is over {MAX_ENTRY_BYTES}")
        return data

    @classmethod
    def from_bytes(cls, data: bytes) -> LogEntry:
        """Parse :meth:`to_bytes` output.

        Raises:
            BadRequest: malformed, oversized, wrong version or unknown kind.
        """
        obj = _canonical_object(data, MAX_ENTRY_BYTES)
        if obj is None:
            obj = _parse_json_object(data, MAX_ENTRY_BYTES, "log entry")
        if obj.pop("v", None) != 1:
            raise BadRequest("log entry version must be 1")
        try:
            kind, time_ms, principal = obj.pop("kind"), obj.pop("time_ms"), obj.pop("principal")
        except KeyError as exc:
            raise BadRequest(f"log entry is missing {exc.args[0]}") from None
        if not isinstance(kind, str) or not isinstance(principal, str):
            raise BadRequest("log entry kind and principal must be strings")
        if not isinstance(time_ms, int) or isinstance(time_ms, bool):
            raise BadRequest("log entry time_ms must be an integer")
        return cls(kind=kind, time_ms=time_ms, principal=principal, fields=obj)


@dataclass(frozen=True, slots=True)
class LogReceipt:
    """The log's signed promise: this entry hash is at this index (like a CT SCT).

    Signed by the log key over :meth:`signed_bytes`; the entry is included in the tree at
    the next checkpoint. A batch promise (``batch_size > 0``) is one signature over the
    RFC 9162 root of the leaf hashes ``[batch_start, batch_start + batch_size)``; the
    receipt carries its entry's path to that root in ``batch_path``.
    """

    origin: str
    index: int
    leaf_hash: bytes
    time_ms: int
    signature: bytes = field(default=b"", repr=False)
    batch_start: int = 0
    batch_size: int = 0
    batch_path: tuple[bytes, ...] = field(default=(), repr=False)

    def signed_bytes(self) -> bytes:
        """The exact bytes the log key signs.

        Raises:
            VerificationError: a batch promise whose path does not fit its batch.
        """
        batch = (self.batch_start, self.batch_size, self.batch_path)
        return promise_bytes(self.origin, self.index, self.leaf_hash, self.time_ms, batch)

    def verify(self, log_key: Ed25519PublicKey, entry: bytes) -> None:
        """Check that this receipt is the log's and that it covers *entry*.

        Raises:
            VerificationError: wrong signature, or the entry does not hash to leaf_hash.
        """
        if leaf_hash(entry) != self.leaf_hash:
            raise VerificationError("receipt does not cover this entry (leaf hash differs)")
        try:
            log_key.verify(self.signature, self.signed_bytes())
        except InvalidSignature:
            raise VerificationError("receipt signature is not the log's") from None

    def to_dict(self) -> dict[str, Any]:
        """JSON form for responses."""
        return {
            "origin": self.origin,
            "index": self.index,
            "leaf_hash": self.leaf_hash.hex(),
            "time_ms": self.time_ms,
            "signature": self.signature.hex(),
        } | (
            {
                "batch": {
                    "start": self.batch_start,
                    "size": self.batch_size,
                    "path": [h.hex() for h in self.batch_path],
                }
            }
            if self.batch_size
            else {}
        )

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> LogReceipt:
        """Parse :meth:`to_dict` output.

        Raises:
            BadRequest: malformed.
        """
        _exact_keys(
            obj, {"origin", "index", "leaf_hash", "time_ms", "signature"}, {"batch"}, "receipt"
        )
        batch = obj.get("batch", {"start": 0, "size": 0, "path": []})
        if not isinstance(batch, Mapping) or not isinstance(batch.get("path"), list):
            raise BadRequest("malformed receipt: batch must be an object with a path list")
        _exact_keys(batch, {"start", "size", "path"}, set(), "receipt batch")
        if len(batch["path"]) > 64:
            raise BadRequest("malformed receipt: batch path over 64 hashes")
        try:
            return cls(
                origin=str(obj["origin"]),
                index=int(obj["index"]),
                leaf_hash=bytes.fromhex(obj["leaf_hash"]),
                time_ms=int(obj["time_ms"]),
                signature=bytes.fromhex(obj["signature"]),
                batch_start=int(batch["start"]),
                batch_size=int(batch["size"]),
                batch_path=tuple(bytes.fromhex(h) for h in batch["path"]),
            )
        except (TypeError, ValueError, OverflowError) as exc:  # Overflow: int(1e999)
            raise BadRequest(f"malformed receipt: {exc}") from None


@dataclass(frozen=True, slots=True)
class ReleaseAuthorization:
    """What a custodian needs before it unwraps: a logged decision entry and its receipt.

    The only way to plaintext is Decision -> LogReceipt -> DataKey. A decision over more
    than :data:`MAX_LISTED_IDS` records or subjects names them by root; the lists travel
    here, beside the entry, and the custodian checks them against it (:func:`named_ids`):
    a record not under the logged root is refused.
    """

    entry: bytes
    receipt: LogReceipt
    records: tuple[str, ...] = field(default=(), repr=False)
    subjects: tuple[str, ...] = field(default=(), repr=False)
    # The entry's C2SP tlog-proof against a witness-cosigned checkpoint, for custodians
    # that release only what their witnesses saw (sovra.keys.witnessed); "" when none.
    proof: str = field(default="", repr=False)

    @classmethod
    def of(cls, decision: Decision, entry: bytes, receipt: LogReceipt) -> ReleaseAuthorization:
        """The authorization of *decision*, logged as *entry*: the lists its entry names by
        root go with it."""
        return cls(
            entry,
            receipt,
            decision.records if len(decision.records) > MAX_LISTED_IDS else (),
            decision.subjects if len(decision.subjects) > MAX_LISTED_IDS else (),
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of the decision point for one access request.

    Its log entry lists the records and subjects, or names them by root when there are
    more than :data:`MAX_LISTED_IDS` (:func:`id_fields`).
    """

    decision_id: str
    allow: bool
    reason: str
    principal: str
    purpose: str
    records: tuple[str, ...]
    subjects: tuple[str, ...]  # commitments
    policies: tuple[str, ...] = ()
    grant: str | None = None  # grant digest
    action: str = "read"
    justification: str = ""  # the access justification code it was decided under
    review: str = ""  # the review queue it was sent to ("legal", ...), if any
    # client-side access: the hex X25519 key the released keys may be encrypted to
    recipient: str = ""
    # the jurisdictions whose rules decided it, when a record of two homes is among its
    # records (each such record is decided under both homes' rules); empty otherwise
    homes: tuple[str, ...] = ()

    def to_entry(self, time_ms: int) -> LogEntry:
        """The log entry that records this decision, allow and deny alike."""
        optional: dict[str, Any] = {}
        if self.recipient:
            optional["recipient"] = self.recipient
        if self.justification:
            optional["justification"] = self.justification
        if self.review:
            optional["review"] = self.review
        if self.homes:
            optional["homes"] = list(self.homes)
        return LogEntry(
            kind="decision",
            time_ms=time_ms,
            principal=self.principal,
            fields={
                "action": self.action,
                "decision_id": self.decision_id,
                "effect": "allow" if self.allow else "deny",
                "grant": self.grant,
                "policies": list(self.policies),
                "purpose": self.purpose,
                "reason": self.reason,
                **id_fields("records", self.records),
                **id_fields("subjects", self.subjects),
                **optional,
            },
        )


@dataclass(frozen=True, slots=True)
class RecordMeta:
    """What the metadata store keeps about a record: never the plaintext, never a data key.

    ``findings`` counts the kinds of sensitive data found at ingest (never the values);
    ``actions`` says what minimisation did per kind.
    """

    header: RecordHeader
    wrapped_key: WrappedKey
    blob_size: int
    created_ms: int
    findings: Mapping[str, int] = field(default_factory=dict)
    actions: Mapping[str, str] = field(default_factory=dict)
    log_index: int = -1
