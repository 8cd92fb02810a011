"""Subjects of two countries when a custodian is down: nothing is stored, nothing released.

A two-home record needs both homes' custodians, at ingest (each wraps its share) and at
access (each releases its share). Either one unreachable fails the request precisely:
an ingest stores and logs nothing; an access is a logged refusal of the allow, no share
is joined and no ``key_release`` entry written, and the second custodian is not asked
when the first did not release.
"""

from __future__ import annotations

import pytest
from tests.flows.two_homes import TEXT, TOKEN, Two, ingest, read

from sovra.errors import Denied, Unavailable
from sovra.keys.remote import RemoteCustodian


def _down(two: Two, home: str) -> None:
    gone = RemoteCustodian("http://127.0.0.1:9", home, TOKEN, timeout_s=2.0)
    two.clients.append(gone)
    two.gw.custodians = {**two.gw.custodians, home: gone}


@pytest.mark.parametrize("home", ["PL", "DE"])
def test_an_ingest_with_a_custodian_down_stores_and_logs_nothing(two: Two, home: str) -> None:
    _down(two, home)
    size, rows = two.gw.log.size, two.dep.store.count_records()
    with pytest.raises(Unavailable, match=f"custodian {home} at http://127.0.0.1:9 cannot be"):
        ingest(two)
    assert (two.gw.log.size, two.dep.store.count_records()) == (size, rows)
    assert not two.dep.store.unlogged_records(10)


def test_the_first_custodian_down_releases_nothing_and_the_second_is_not_asked(
    two: Two,
) -> None:
    rid = ingest(two)
    _down(two, "PL")
    de = len(two.served["DE"].journal())
    releases = len(two.entries("key_release"))
    with pytest.raises(Denied, match="custodian PL did not release its share") as info:
        read(two, rid)
    refusal = two.entry(info.value.log_index)
    assert refusal.kind == "decision" and refusal.fields["effect"] == "deny"
    assert "had allowed it" in refusal.fields["reason"]
    assert len(two.entries("key_release")) == releases
    assert len(two.served["DE"].journal()) == de
    assert TEXT not in refusal.to_bytes().decode()
