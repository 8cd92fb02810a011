"""Data keys split between the custodians of a subject's two homes.

A record of a subject with two home jurisdictions (``SPLIT_KEY_FORMAT`` in its header) is
sealed under a data key ``K`` like any other. ``K`` is never wrapped whole: it is cut
into two shares, ``K = s1 XOR s2`` with ``s1`` fresh and uniformly random, so each share
alone is uniformly random and says nothing of ``K`` (a 2-of-2 secret sharing). The first
home's custodian wraps ``s1`` under the subject's key there, bound to the record header;
the second home's custodian wraps ``s2`` under the key of the subject's commitment in
that home, bound to the *share header* (the record header with the second home's
jurisdiction, commitment and KEK version). Both wraps are stored as one wrapped key:

```
second home (2 ASCII) | second KEK version (u32 BE) | second commitment (32)
| first wrap length (u16 BE) | first wrap | second wrap
```

labelled with the first home and its KEK version. Opening needs both custodians to
release their share against the same logged allow, each checking on its own that the
allow names the record and the subject as that home knows her. One that refuses, or
cannot be reached, fails the request whole as a :class:`~sovra.errors.Denied` that the
gateway logs; the other share is dropped unused. Erasure by either home (a crypto-shred
of the subject's key at either custodian) leaves a share that no longer opens, so the
record never opens again. Custodians need no change: to each, a share is a data key.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from sovra.errors import Denied, IntegrityError, SovraError
from sovra.keys.envelope import DATA_KEY_SIZE
from sovra.keys.protocol import Custodian
from sovra.model import (
    SPLIT_KEY_FORMAT,
    RecordHeader,
    ReleaseAuthorization,
    WrappedKey,
    check_jurisdiction,
)

__all__ = [
    "SecondHome",
    "is_split",
    "join",
    "second_header",
    "second_home",
    "split",
    "subjects",
    "unwrap_batches",
    "wrap_many",
    "wraps_of",
]

_PREFIX = struct.Struct(">2sI32sH")
"""Second home, its KEK version, the subject's commitment there, the first wrap's length."""

UnwrapRequest = tuple[Sequence[tuple[WrappedKey, RecordHeader]], ReleaseAuthorization, str]
"""What ``Custodian.unwrap_batches`` takes per request: keys, the logged allow, requester."""


@dataclass(frozen=True, slots=True)
class SecondHome:
    """A two-home record's second home: its jurisdiction and the subject's commitment there."""

    jurisdiction: str
    subject: str  # 64 hex digits


def is_split(header: RecordHeader) -> bool:
    """Whether *header* is a two-home record's, whose data key is split in two shares."""
    return header.format == SPLIT_KEY_FORMAT


def split(data_key: bytes) -> tuple[bytes, bytes]:
    """Two shares of *data_key*, each alone uniformly random: ``data_key = s1 XOR s2``."""
    if len(data_key) != DATA_KEY_SIZE:
        raise IntegrityError(f"a data key is {DATA_KEY_SIZE} bytes, got {len(data_key)}")
    first = os.urandom(DATA_KEY_SIZE)
    return first, _xor(data_key, first)


def join(first: bytes, second: bytes) -> bytes:
    """The data key of two shares.

    Raises:
        IntegrityError: a share is not the size of a data key.
    """
    if len(first) != DATA_KEY_SIZE or len(second) != DATA_KEY_SIZE:
        raise IntegrityError("a share of a split data key is not the size of a data key")
    return _xor(first, second)


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a) ^ int.from_bytes(b)).to_bytes(DATA_KEY_SIZE)


def second_header(header: RecordHeader, second: SecondHome, kek_version: int) -> RecordHeader:
    """The header the second home's custodian binds its share to."""
    return replace(
        header, jurisdiction=second.jurisdiction, subject=second.subject, kek_version=kek_version
    )


def _encode(first: WrappedKey, second: WrappedKey, subject: str) -> WrappedKey:
    prefix = _PREFIX.pack(
        second.jurisdiction.encode("ascii"),
        second.kek_version,
        bytes.fromhex(subject),
        len(first.blob),
    )
    return WrappedKey(first.jurisdiction, first.kek_version, prefix + first.blob + second.blob)


def wraps_of(wrapped: WrappedKey) -> tuple[WrappedKey, WrappedKey, str]:
    """The first home's wrap, the second's, and the subject's commitment in the second.

    Raises:
        IntegrityError: the stored wrapped key is not a split one.
    """
    blob = wrapped.blob
    try:
        code, version, subject, length = _PREFIX.unpack_from(blob)
        jurisdiction = check_jurisdiction(code.decode("ascii"))
    except (struct.error, UnicodeDecodeError, SovraError):
        raise IntegrityError("the wrapped key of a two-home record does not parse") from None
    start = _PREFIX.size
    if version < 1 or not 0 < length < len(blob) - start:
        raise IntegrityError("the wrapped key of a two-home record does not parse")
    first = WrappedKey(wrapped.jurisdiction, wrapped.kek_version, blob[start : start + length])
    second = WrappedKey(jurisdiction, version, blob[start + length :])
    return first, second, subject.hex()


def second_home(header: RecordHeader, wrapped: WrappedKey) -> SecondHome | None:
    """A record's second home, or None for a record of one home.

    Raises:
        IntegrityError: a two-home record whose wrapped key does not parse.
    """
    if not is_split(header):
        return None
    _, second, subject = wraps_of(wrapped)
    return SecondHome(second.jurisdiction, subject)


def subjects(header: RecordHeader, wrapped: WrappedKey) -> list[str]:
    """The commitments a record's subject has: one per home, the first home's first."""
    other = second_home(header, wrapped)
    return [header.subject] if other is None else [header.subject, other.subject]


# -- wrapping and unwrapping through both custodians ----------------------------------------


def wrap_many(
    custodians: Mapping[str, Custodian],
    code: str,
    items: Sequence[tuple[bytes, RecordHeader, SecondHome | None]],
) -> list[WrappedKey]:
    """Wrap the data keys of records whose first home is *code*, all or none.

    A record of one home goes to its custodian as before. A record of two homes has its
    key split: the first share goes to *code*'s custodian in the same call, the second to
    the second home's custodian (one call per second home).

    Raises:
        SovraError: as ``Custodian.wrap_many``, from either custodian.
    """
    shares = [split(key) if second is not None else (key, b"") for key, _, second in items]
    firsts = custodians[code].wrap_many(
        [(share, header) for (share, _), (_, header, _) in zip(shares, items, strict=True)]
    )
    seconds: dict[int, WrappedKey] = {}
    by_home: dict[str, list[int]] = {}
    for n, (_, _, second) in enumerate(items):
        if second is not None:
            by_home.setdefault(second.jurisdiction, []).append(n)
    for home, positions in by_home.items():
        custodian = custodians[home]
        version = custodian.current_kek_version
        wraps = custodian.wrap_many(
            [
                (shares[n][1], second_header(items[n][1], _second(items[n]), version))
                for n in positions
            ]
        )
        seconds.update(zip(positions, wraps, strict=True))
    return [
        first if item[2] is None else _encode(first, seconds[n], item[2].subject)
        for n, (first, item) in enumerate(zip(firsts, items, strict=True))
    ]


def _second(item: tuple[bytes, RecordHeader, SecondHome | None]) -> SecondHome:
    assert item[2] is not None
    return item[2]


def unwrap_batches(
    custodians: Mapping[str, Custodian], code: str, requests: Sequence[UnwrapRequest]
) -> list[list[bytes] | SovraError]:
    """``Custodian.unwrap_batches`` at *code*'s custodian, for records whose first home is
    *code*; the second shares of two-home records from their second homes' custodians.

    A request without a two-home record is passed on as it is. For one with, a refusal
    or failure of either custodian is the request's :class:`~sovra.errors.Denied` (which
    the gateway logs, naming the allow it refused), and no key of it is returned. The
    second homes are asked only for the requests the first custodian released.

    Raises:
        SovraError: a call with no two-home record failed whole, as ``unwrap_batches``.
    """
    splits = [[n for n, (_, h) in enumerate(items) if is_split(h)] for items, _, _ in requests]
    if not any(splits):
        return list(custodians[code].unwrap_batches(requests))
    parts = [[wraps_of(w) if is_split(h) else None for w, h in items] for items, _, _ in requests]
    firsts = _call(
        custodians[code],
        [
            ([(w if p is None else p[0], h) for (w, h), p in zip(items, ps, strict=True)], a, r)
            for (items, a, r), ps in zip(requests, parts, strict=True)
        ],
    )
    asked = [q for q, got in enumerate(firsts) if splits[q] and not isinstance(got, SovraError)]
    seconds, failed = _second_shares(custodians, requests, parts, asked)
    out: list[list[bytes] | SovraError] = []
    for q, got in enumerate(firsts):
        if not splits[q]:
            out.append(got)
        elif isinstance(got, SovraError):
            out.append(_refusal(code, got))
        elif q in failed:
            out.append(_refusal(*failed[q]))
        else:
            out.append(
                [join(k, seconds[q, n]) if (q, n) in seconds else k for n, k in enumerate(got)]
            )
    return out


_Parts = Sequence[Sequence[tuple[WrappedKey, WrappedKey, str] | None]]


def _second_shares(
    custodians: Mapping[str, Custodian],
    requests: Sequence[UnwrapRequest],
    parts: _Parts,
    asked: Sequence[int],
) -> tuple[dict[tuple[int, int], bytes], dict[int, tuple[str, SovraError]]]:
    """The second shares of the requests *asked*, one call per second home: the shares by
    (request, position), and each request's first refusal with the home that refused."""
    wanted: dict[str, dict[int, list[int]]] = {}
    for q in asked:
        for n, part in enumerate(parts[q]):
            if part is not None:
                wanted.setdefault(part[1].jurisdiction, {}).setdefault(q, []).append(n)
    seconds: dict[tuple[int, int], bytes] = {}
    failed: dict[int, tuple[str, SovraError]] = {}
    for home, held in wanted.items():
        calls: list[UnwrapRequest] = []
        for q, positions in held.items():
            items, authorization, requester = requests[q]
            shares = []
            for n in positions:
                part = parts[q][n]
                assert part is not None
                _, second, subject = part
                header = second_header(items[n][1], SecondHome(home, subject), second.kek_version)
                shares.append((second, header))
            calls.append((shares, authorization, requester))
        for (q, positions), got in zip(held.items(), _call(custodians[home], calls), strict=True):
            if isinstance(got, SovraError):
                failed.setdefault(q, (home, got))
            else:
                seconds.update(((q, n), key) for n, key in zip(positions, got, strict=True))
    return seconds, failed


def _call(
    custodian: Custodian, requests: Sequence[UnwrapRequest]
) -> list[list[bytes] | SovraError]:
    try:
        return list(custodian.unwrap_batches(requests))
    except SovraError as exc:
        return [exc] * len(requests)


def _refusal(home: str, error: SovraError) -> Denied:
    """One custodian's refusal or failure, as the refusal of a two-home request."""
    return Denied(
        f"custodian {home} did not release its share: {error.message}; a record of two homes "
        "opens only with both custodians' shares, so no key was released"
    )
