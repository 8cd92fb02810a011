"""The custodian's cache of verified batch promises: a hit accepts nothing the full check refuses.

Receipts come from a real :class:`~sovra.ledger.TransparencyLog` (one signature per batch, a
path per receipt). The Ed25519 checks are counted by a key that forwards to the real one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sovra.errors import ConfigError, Denied, VerificationError
from sovra.keys import LocalCustodian
from sovra.keys import custodian as custodian_module
from sovra.keys.remote import RemoteCustodian
from sovra.ledger import MemoryLogStorage, NoteSigner, TransparencyLog
from sovra.model import (
    Decision,
    LogReceipt,
    RecordHeader,
    ReleaseAuthorization,
    WrappedKey,
    subject_commitment,
)
from sovra.server.background import running
from sovra.server.custodian import create_custodian_app

ORIGIN = "sovra.test/log"
NOW = 1_750_000_000_000
REQUESTER = "svc-support"
ALICE = subject_commitment(b"c" * 32, "PL", "alice")
TOKEN = b"t" * 32


class CountingKey(Ed25519PublicKey):
    """The log's real public key, counting the signatures it is asked to check."""

    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key
        self._lock = threading.Lock()
        self.checks = 0

    def verify(self, signature: bytes, data: bytes) -> None:
        with self._lock:
            self.checks += 1
        self._key.verify(signature, data)

    def public_bytes(self, encoding: Encoding, format: PublicFormat) -> bytes:
        return self._key.public_bytes(encoding, format)

    def public_bytes_raw(self) -> bytes:
        return self._key.public_bytes_raw()

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, CountingKey) and other.public_bytes_raw() == self.public_bytes_raw()
        )

    def __hash__(self) -> int:
        return hash(self.public_bytes_raw())

    def __copy__(self) -> CountingKey:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> CountingKey:
        return self


def new_log(key: Ed25519PrivateKey, origin: str = ORIGIN) -> TransparencyLog:
    return TransparencyLog(MemoryLogStorage(), NoteSigner(origin, key), origin, clock=lambda: NOW)


def header(record_id: str) -> RecordHeader:
    return RecordHeader(record_id, ALICE, "PL", "eu-central", 1)


def decision_entry(record_id: str, decision_id: str = "d") -> bytes:
    return (
        Decision(
            decision_id=f"{decision_id}-{record_id}",
            allow=True,
            reason="customer asked for a copy",
            principal=REQUESTER,
            purpose="customer-support",
            records=(record_id,),
            subjects=(ALICE,),
        )
        .to_entry(NOW)
        .to_bytes()
    )


@dataclass(frozen=True)
class Release:
    """One record's wrapped key and the logged allow (one decision per key) releasing it."""

    wrapped: WrappedKey
    header: RecordHeader
    authorization: ReleaseAuthorization
    data_key: bytes


@dataclass
class Setup:
    custodian: LocalCustodian
    key: CountingKey
    log_key: Ed25519PrivateKey
    log: TransparencyLog

    def batch(self, size: int, prefix: str) -> list[Release]:
        """*size* records, each with its own decision, the decisions logged in one batch."""
        headers = [header(f"{prefix}-{n}") for n in range(size)]
        keys = [bytes([n % 256]) * 32 for n in range(size)]
        wrapped = [self.custodian.wrap(k, h) for k, h in zip(keys, headers, strict=True)]
        entries = [decision_entry(h.record_id) for h in headers]
        receipts = self.log.append_many([(e, ()) for e in entries])
        return [
            Release(w, h, ReleaseAuthorization(e, r), k)
            for w, h, e, r, k in zip(wrapped, headers, entries, receipts, keys, strict=True)
        ]

    def release(
        self, item: Release, receipt: LogReceipt | None = None, entry: bytes = b""
    ) -> bytes:
        authorization = ReleaseAuthorization(
            entry or item.authorization.entry, receipt or item.authorization.receipt
        )
        return self.custodian.unwrap(item.wrapped, item.header, authorization, REQUESTER)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    log_key = Ed25519PrivateKey.generate()
    key = CountingKey(log_key.public_key())
    custodian = LocalCustodian.create(tmp_path / "PL.key", "PL", key, clock=lambda: NOW)
    try:
        yield Setup(custodian, key, log_key, new_log(log_key))
    finally:
        custodian.close()


def _flip(data: bytes, at: int = 0) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


def test_one_signature_check_per_batch(setup: Setup) -> None:
    first = setup.batch(8, "a")
    for item in first:
        assert setup.release(item) == item.data_key
    assert setup.key.checks == 1
    second = setup.batch(5, "b")
    for item in second + first:
        assert setup.release(item) == item.data_key
    assert setup.key.checks == 2
    assert len(setup.custodian._promises) == 2


def test_promises_about_one_entry_are_checked_every_time(setup: Setup) -> None:
    (alone,) = setup.batch(1, "solo")
    for _ in range(3):
        setup.release(alone)
    assert setup.key.checks == 3
    assert len(setup.custodian._promises) == 0


def _other_key_same_bytes(s: Setup, r: LogReceipt, _: list[Release]) -> LogReceipt:
    return replace(r, signature=Ed25519PrivateKey.generate().sign(r.signed_bytes()))


# Each case changes a receipt of a batch whose promise the custodian has just verified.
FORGERIES = {
    "flipped signature, same root": lambda s, r, b: replace(r, signature=_flip(r.signature)),
    "another key's signature over the same bytes": _other_key_same_bytes,
    "altered path hash": lambda s, r, b: replace(
        r, batch_path=(_flip(r.batch_path[0], 31), *r.batch_path[1:])
    ),
    "another receipt's path": lambda s, r, b: replace(
        r, batch_path=b[1].authorization.receipt.batch_path
    ),
    "shortened path": lambda s, r, b: replace(r, batch_path=r.batch_path[:-1]),
    "lengthened path": lambda s, r, b: replace(r, batch_path=(*r.batch_path, r.batch_path[0])),
    "another index": lambda s, r, b: replace(r, index=r.index + 1),
    "another batch start": lambda s, r, b: replace(r, batch_start=r.batch_start + 1),
    "another batch size": lambda s, r, b: replace(r, batch_size=r.batch_size + 1),
    "another time": lambda s, r, b: replace(r, time_ms=r.time_ms + 1),
    "another origin": lambda s, r, b: replace(r, origin="sovra.test/other-log"),
    "another leaf hash": lambda s, r, b: replace(r, leaf_hash=_flip(r.leaf_hash)),
}


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
def test_a_cache_hit_never_accepts_a_forged_receipt(setup: Setup, forge: Any) -> None:
    batch = setup.batch(6, "f")
    target = batch[0]
    setup.release(target)  # the batch's promise is now in the cache
    cached = len(setup.custodian._promises)
    forged = forge(setup, target.authorization.receipt, batch)
    assert forged != target.authorization.receipt
    # The full check refuses it too: the cache must agree with it.
    with pytest.raises(VerificationError):
        forged.verify(setup.log_key.public_key(), target.authorization.entry)
    with pytest.raises(Denied, match="log receipt does not verify"):
        setup.release(target, receipt=forged)
    assert len(setup.custodian._promises) == cached  # nothing cached on failure
    assert setup.release(target) == target.data_key  # the genuine receipt still works


def test_a_cache_hit_never_accepts_an_altered_entry(setup: Setup) -> None:
    batch = setup.batch(4, "e")
    target = batch[0]
    setup.release(target)
    checks = setup.key.checks
    # Another decision for the same record, presented with the genuine receipt.
    altered = decision_entry(target.header.record_id, decision_id="other")
    with pytest.raises(Denied, match="leaf hash differs"):
        setup.release(target, entry=altered)
    # Another entry of the same batch, presented with this record's receipt.
    with pytest.raises(Denied, match="leaf hash differs"):
        setup.release(target, entry=batch[1].authorization.entry)
    assert setup.key.checks == checks


def test_a_batch_signed_by_another_log_key_is_refused(setup: Setup) -> None:
    impostor_key = Ed25519PrivateKey.generate()
    genuine = setup.batch(4, "k")
    # The impostor logs the same entries under the same origin at the same time, so its
    # promise covers byte-for-byte the same signed message as the genuine one.
    impostor = new_log(impostor_key).append_many([(i.authorization.entry, ()) for i in genuine])
    for real, fake in zip(genuine, impostor, strict=True):
        assert fake.signed_bytes() == real.authorization.receipt.signed_bytes()
        assert fake.signature != real.authorization.receipt.signature
    setup.release(genuine[0])
    for real, fake in zip(genuine, impostor, strict=True):
        with pytest.raises(Denied, match="signature is not the log's"):
            setup.release(real, receipt=fake)
    # The impostor's receipts are good for a custodian that trusts the impostor's key.
    promises = custodian_module._VerifiedPromises(impostor_key.public_key())
    for real, fake in zip(genuine, impostor, strict=True):
        promises.verify(fake, real.authorization.entry)
    assert len(promises) == 1


def test_eviction_is_least_recently_used_and_evicted_promises_are_checked_again(
    setup: Setup,
) -> None:
    promises = custodian_module._VerifiedPromises(setup.key, size=2)
    b1, b2, b3 = (setup.batch(3, name) for name in ("x", "y", "z"))

    def check(batch: list[Release], n: int = 0) -> None:
        promises.verify(batch[n].authorization.receipt, batch[n].authorization.entry)

    check(b1)
    check(b2)
    assert setup.key.checks == 2
    check(b1, 1)  # a hit; b1 is now the most recently used
    assert setup.key.checks == 2
    check(b3)  # evicts b2
    assert (setup.key.checks, len(promises)) == (3, 2)
    check(b2, 2)  # checked in full again, and accepted
    assert setup.key.checks == 4
    check(b3, 1)  # still held
    assert setup.key.checks == 4
    check(b1, 2)  # evicted by b2
    assert (setup.key.checks, len(promises)) == (5, 2)
    forged = replace(
        b1[0].authorization.receipt, signature=_flip(b1[0].authorization.receipt.signature)
    )
    with pytest.raises(VerificationError):
        promises.verify(forged, b1[0].authorization.entry)


def test_a_cache_of_no_size_is_a_config_error(setup: Setup) -> None:
    with pytest.raises(ConfigError):
        custodian_module._VerifiedPromises(setup.key, size=0)


def test_shared_between_threads(setup: Setup) -> None:
    batches = [setup.batch(24, f"t{n}") for n in range(4)]
    items = [item for batch in batches for item in batch]
    forged = [
        replace(i.authorization.receipt, signature=_flip(i.authorization.receipt.signature, 5))
        for i in items
    ]
    workers = 8
    barrier = threading.Barrier(workers)
    failures: list[str] = []

    def work(w: int) -> None:
        barrier.wait()
        for n in range(w, len(items), workers):
            item = items[n]
            try:
                if setup.release(item) != item.data_key:
                    failures.append(f"{n}: wrong key")
            except Exception as exc:
                failures.append(f"{n}: genuine receipt refused: {exc}")
            try:
                setup.release(item, receipt=forged[n])
                failures.append(f"{n}: forged receipt accepted")
            except Denied:
                pass

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert len(setup.custodian._promises) == len(batches)
    # Every forged receipt was checked in full; threads racing on one new batch may each
    # check its promise once, no more.
    genuine_checks = setup.key.checks - len(items)
    assert len(batches) <= genuine_checks <= len(batches) * workers


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.integers(2, 40), st.data())
def test_cache_and_full_check_agree_on_any_changed_byte(
    setup: Setup, size: int, data: st.DataObject
) -> None:
    log_key = setup.log_key.public_key()
    promises = custodian_module._VerifiedPromises(log_key)
    receipts = new_log(setup.log_key).append_many([(b'{"n":%d}' % i, ()) for i in range(size)])
    n = data.draw(st.integers(0, size - 1))
    promises.verify(receipts[0], b'{"n":0}')  # the batch's promise is cached
    r = receipts[n]
    fields = ["origin", "leaf_hash", "signature", "path", "index", "start", "size", "time"]
    which = data.draw(st.sampled_from([*fields, "entry", "none"]))
    entry = b'{"n":%d}' % n
    if which == "origin":
        r = replace(r, origin=r.origin + data.draw(st.sampled_from(["x", "/", "\n"])))
    elif which in {"leaf_hash", "signature"}:
        value = getattr(r, which)
        r = replace(r, **{which: _flip(value, data.draw(st.integers(0, len(value) - 1)))})
    elif which == "path" and r.batch_path:
        k = data.draw(st.integers(0, len(r.batch_path) - 1))
        at = data.draw(st.integers(0, 31))
        r = replace(
            r, batch_path=(*r.batch_path[:k], _flip(r.batch_path[k], at), *r.batch_path[k + 1 :])
        )
    elif which in {"index", "start", "size", "time"}:
        name = {"index": "index", "start": "batch_start", "size": "batch_size", "time": "time_ms"}
        delta = data.draw(st.sampled_from([-1, 1, 2]))
        r = replace(r, **{name[which]: getattr(r, name[which]) + delta})
    elif which == "entry":
        entry = data.draw(st.binary(min_size=1, max_size=16))
    full_error = cached_error = None
    try:
        r.verify(log_key, entry)
    except VerificationError as exc:
        full_error = exc.message
    try:
        promises.verify(r, entry)
    except VerificationError as exc:
        cached_error = exc.message
    assert cached_error == full_error


def test_the_custodian_service_checks_one_signature_per_batch(setup: Setup) -> None:
    batch = setup.batch(10, "svc")
    app = create_custodian_app(setup.custodian, token=TOKEN)
    with running(app) as url, RemoteCustodian(url, "PL", TOKEN) as remote:
        for item in batch:
            released = remote.unwrap(item.wrapped, item.header, item.authorization, REQUESTER)
            assert released == item.data_key
        assert setup.key.checks == 1
        # A path that does not lead to the verified root gets (and fails) the full check.
        forged = replace(
            batch[3].authorization.receipt,
            batch_path=batch[4].authorization.receipt.batch_path,
        )
        with pytest.raises(Denied, match="does not verify"):
            remote.unwrap(
                batch[3].wrapped,
                batch[3].header,
                ReleaseAuthorization(batch[3].authorization.entry, forged),
                REQUESTER,
            )
    assert setup.key.checks == 2
