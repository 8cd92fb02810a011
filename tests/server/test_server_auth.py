"""The token check against a real SQLite store shared by two authenticators, as two worker
processes share one: each remembers principals, yet a change committed by either (a new
key, a new role) decides the very next request of both, and a nonce is spent once across
them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sovra.auth import Authenticator, make_token
from sovra.errors import BadRequest, Unauthenticated
from sovra.model import Principal, Role
from sovra.store.sqlite import SQLiteMetadataStore

BODY = b'{"subject_id":"s-1","jurisdiction":"PL","content":"x"}'
PATH = "/v1/records"


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteMetadataStore]:
    with SQLiteMetadataStore(tmp_path / "metadata.db") as s:
        yield s


@pytest.fixture
def other(store: SQLiteMetadataStore) -> Iterator[SQLiteMetadataStore]:
    # A second connection to the same file, as a second worker process has.
    with SQLiteMetadataStore(store.path) as s:
        yield s


def _workers(
    store: SQLiteMetadataStore, other: SQLiteMetadataStore
) -> tuple[Authenticator, Authenticator]:
    return (
        Authenticator(store.get_principal, store.spend_nonces, max_age_s=300, clock=time.time),
        Authenticator(other.get_principal, other.spend_nonces, max_age_s=300, clock=time.time),
    )


def _token(key: Ed25519PrivateKey, sub: str = "svc-pl") -> str:
    return make_token(key, sub, "POST", PATH, BODY, now_s=int(time.time()))


def test_a_rotated_key_is_refused_by_a_worker_that_remembered_it(
    store: SQLiteMetadataStore, other: SQLiteMetadataStore
) -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    store.put_principal(Principal("svc-pl", "PL", Role.SERVICE, _raw(old)))
    a, b = _workers(store, other)
    for worker in (a, b):  # both remember the old key
        assert worker.authenticate(_token(old), "POST", PATH, BODY).public_key == _raw(old)
    store.put_principal(Principal("svc-pl", "PL", Role.SERVICE, _raw(new)))
    for worker in (a, b):
        with pytest.raises(Unauthenticated, match="forged or corrupted"):
            worker.authenticate(_token(old), "POST", PATH, BODY)
        assert worker.authenticate(_token(new), "POST", PATH, BODY).public_key == _raw(new)


def test_a_role_change_takes_effect_on_the_next_request(
    store: SQLiteMetadataStore, other: SQLiteMetadataStore
) -> None:
    key = Ed25519PrivateKey.generate()
    store.put_principal(Principal("svc-pl", "PL", Role.SERVICE, _raw(key)))
    a, _ = _workers(store, other)
    assert a.authenticate(_token(key), "POST", PATH, BODY).role == Role.SERVICE
    store.put_principal(Principal("svc-pl", "PL", Role.ANALYST, _raw(key)))
    assert a.authenticate(_token(key), "POST", PATH, BODY).role == Role.ANALYST


def test_a_token_is_spent_once_across_workers(
    store: SQLiteMetadataStore, other: SQLiteMetadataStore
) -> None:
    key = Ed25519PrivateKey.generate()
    store.put_principal(Principal("svc-pl", "PL", Role.SERVICE, _raw(key)))
    a, b = _workers(store, other)
    token = _token(key)
    a.authenticate(token, "POST", PATH, BODY)
    for worker in (a, b):
        with pytest.raises(Unauthenticated, match="replayed"):
            worker.authenticate(token, "POST", PATH, BODY)


def test_an_unknown_principal_is_refused_and_spends_nothing(
    store: SQLiteMetadataStore, other: SQLiteMetadataStore
) -> None:
    key = Ed25519PrivateKey.generate()
    a, _ = _workers(store, other)
    token = _token(key, "nobody")
    with pytest.raises(Unauthenticated, match="unknown principal"):
        a.authenticate(token, "POST", PATH, BODY)
    # Registered now: the same token was never spent, so it is accepted once.
    store.put_principal(Principal("nobody", "PL", Role.SERVICE, _raw(key)))
    assert a.authenticate(token, "POST", PATH, BODY).id == "nobody"


def test_nonces_spent_together_are_judged_each_on_its_own(
    store: SQLiteMetadataStore, other: SQLiteMetadataStore
) -> None:
    key = Ed25519PrivateKey.generate()
    store.put_principal(Principal("svc-pl", "PL", Role.SERVICE, _raw(key)))
    now = 1_000
    first, again, malformed, unknown = store.spend_nonces(
        [
            ("svc-pl", "n-1", now + 60_000, now),
            ("svc-pl", "n-1", now + 60_000, now),  # the same nonce twice in one batch
            ("svc-pl", "n-2", now, now),  # already expired
            ("nobody", "n-3", now + 60_000, now),
        ]
    )
    assert isinstance(first, Principal) and first.id == "svc-pl"
    assert isinstance(again, Unauthenticated) and "replayed" in again.message
    assert isinstance(malformed, BadRequest)
    assert unknown is None
    # Spent for every connection to the store, as for every worker.
    (replayed,) = other.spend_nonces([("svc-pl", "n-1", now + 60_000, now + 1)])
    assert isinstance(replayed, Unauthenticated)
    (fresh,) = other.spend_nonces([("svc-pl", "n-2", now + 60_000, now)])
    assert isinstance(fresh, Principal)
