"""The flows' part for subjects of two countries, kept beside the gateway.

A subject with two home jurisdictions is declared at ingest by the home her commitment is
made in (``jurisdiction``) and one other (``other_homes``). Her record is then placed in a
region both homes allow (refused before any byte leaves if there is none), minimised under
both homes' rules (the stricter action per kind: :func:`sovra.policy.dual.stricter`), and
sealed under a data key split between both homes' custodians (:mod:`sovra.keys.split`).
Its ingest entry names both homes and is indexed under her commitment in each, so each
home's subject report finds it, and under :data:`SECOND_HOME_TAG` with her second-home
commitment, so that naming her by her second home lists it too
(:func:`records_for_subject`; the metadata store keeps one commitment per row, her first
home's). An access to it is decided under both homes' rules
(:mod:`sovra.policy.dual`), both custodians must release their share, and each release
is logged as its own ``key_release`` entry, naming the custodian.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sovra.classify.minimise import Action, Rules, parse_rules
from sovra.config import Config
from sovra.errors import BadRequest
from sovra.keys.split import SecondHome, is_split, second_home, subjects
from sovra.ledger import TransparencyLog
from sovra.model import LogEntry, RecordMeta, check_homes
from sovra.placement import Placement
from sovra.policy import RecordFacts
from sovra.policy.dual import RecordHomes, stricter
from sovra.store import RecordStore

__all__ = [
    "SECOND_HOME_TAG",
    "TwoHomes",
    "check_region",
    "ingest_fields",
    "may_be_second_home",
    "one_home_only",
    "other_commitments",
    "plan",
    "record_homes",
    "records_for_subject",
    "release_groups",
    "tags",
]

SECOND_HOME_TAG = "second-home:"
"""Prefix of the log tag an ingest entry of a record of two homes carries with the
subject's commitment in her second home: the index that lists the record under it."""


@dataclass(frozen=True, slots=True)
class TwoHomes:
    """How an ingest for a subject of two homes goes: her second home, the rule that
    minimises under both, whether either home needs a scan, and the region both allow."""

    second: SecondHome
    rules: Rules
    scan_required: bool
    region: str


def plan(
    config: Config,
    placement: Placement,
    commit: Callable[[str, str], str],
    *,
    jurisdiction: str,
    other_homes: Sequence[str],
    subject_id: str,
    purpose: str | None,
) -> TwoHomes | None:
    """Check the homes an ingest declares; for two, how the record is made. Nothing is
    decided, logged or stored here, so bad input leaves no trace.

    Raises:
        BadRequest: a home named twice, more than two homes, a second home this
            deployment does not serve, a purpose either home does not list, or no
            storage region both homes allow.
    """
    if type(other_homes) in (tuple, list) and not other_homes:
        return None  # one home, the common case: checked as ever by the flow
    homes = check_homes(jurisdiction, other_homes)
    if len(homes) == 1:
        return None
    code = homes[1]
    if code not in config.jurisdictions:
        known = ", ".join(sorted(config.jurisdictions))
        raise BadRequest(
            f"second home {code!r} is not a jurisdiction of this deployment (it serves {known})"
        )
    first, other = config.jurisdiction(jurisdiction), config.jurisdiction(code)
    rules = parse_rules(
        {
            kind: Action(action)
            for kind, action in stricter(first.rules_for(purpose), other.rules_for(purpose)).items()
        }
    )
    scan_required = any(
        a == "refuse" for rules_ in (first, other) for a in rules_.minimisation.values()
    )
    second = SecondHome(code, commit(code, subject_id))
    both = [r for r in placement.allowed(jurisdiction) if r in placement.allowed(code)]
    if not both:
        raise BadRequest(
            f"no storage region is allowed by both {jurisdiction} "
            f"({', '.join(placement.allowed(jurisdiction))}) and {code} "
            f"({', '.join(placement.allowed(code))}); nothing was stored"
        )
    # The first home's preference among the regions both allow; by subject if it spreads.
    first_subject = commit(jurisdiction, subject_id)
    spread = first.placement != "first" and len(both) > 1
    region = both[int(first_subject[:8], 16) % len(both)] if spread else both[0]
    return TwoHomes(second, rules, scan_required, region)


def check_region(placement: Placement, meta: RecordMeta, region: str) -> None:
    """Refuse a record in *region* unless each of its homes allows it there.

    Raises:
        BadRequest: a home of the record does not allow *region*; nothing was stored.
    """
    placement.check(meta.header.jurisdiction, region)
    other = second_home(meta.header, meta.wrapped_key)
    if other is not None:
        placement.check(other.jurisdiction, region)


def one_home_only(metas: Sequence[RecordMeta]) -> None:
    """Refuse records of two homes where only records of one are handled (sealed access).

    Client-side access hands each record's data key, encrypted by its custodian, to the
    client. A record of two homes has no such key: only two shares, one per custodian,
    that the gateway joins after both released theirs (ADR 0025). The request is refused
    as bad input before anything is decided or logged, naming the record but not its homes
    (which jurisdictions claim a record is for a logged decision to tell).

    Raises:
        BadRequest: a record of two homes is among *metas*; nothing was decided or logged.
    """
    split = next((m for m in metas if is_split(m.header)), None)
    if split is not None:
        raise BadRequest(
            f"record {split.header.record_id} has two homes: its key exists only as "
            "two shares, one at each home's custodian, and client-side access releases a "
            "whole key to the client; read it through /v1/access, where both custodians "
            "release their share and each release is logged; nothing was decided or logged"
        )


def ingest_fields(second: SecondHome | None) -> dict[str, Any]:
    """What an ingest entry says beyond a one-home record's: the second home and the
    subject's commitment there (none for a record of one home: its entry is unchanged)."""
    if second is None:
        return {}
    return {"second_home": second.jurisdiction, "second_subject": second.subject}


def tags(meta: RecordMeta) -> list[str]:
    """What a record's ingest entry is indexed under: the subject's commitment in each home
    and, for a record of two homes, :data:`SECOND_HOME_TAG` with her second-home one."""
    found = subjects(meta.header, meta.wrapped_key)
    return found if len(found) == 1 else [*found, SECOND_HOME_TAG + found[1]]


def may_be_second_home(config: Config, placement: Placement, jurisdiction: str) -> bool:
    """Whether *jurisdiction* can be the second home of a record here: it shares an
    allowed region with another jurisdiction (:func:`plan` refuses every other pair)."""
    if jurisdiction not in config.jurisdictions:
        return False
    mine = set(placement.allowed(jurisdiction))
    return any(
        mine.intersection(placement.allowed(other))
        for other in config.jurisdictions
        if other != jurisdiction
    )


def records_for_subject(
    store: RecordStore, log: TransparencyLog, commitment: str, *, second: bool = True
) -> list[RecordMeta]:
    """Every visible record of the subject one home knows by *commitment*: those whose
    first home that is (the store's rows), then, unless *second* is False, those of two
    homes whose second it is, found through their ingest entries and kept only if the row
    says the same.

    *second* False skips the log's tag lookup, which costs about as much as a listing of
    her rows: a caller passes :func:`may_be_second_home` for the home that names her.

    Raises:
        BadRequest: *commitment* is not 64 lower-case hex digits.
        IntegrityError: a stored row no longer parses.
    """
    own = store.records_for_subject(commitment)
    if not second:
        return own
    found = log.find(SECOND_HOME_TAG + commitment)
    if not found:
        return own
    ids = []
    for index in found:
        entry = LogEntry.from_bytes(log.entry(index))
        if entry.kind == "ingest" and entry.fields.get("second_subject") == commitment:
            ids.append(str(entry.fields.get("record")))
    rows = store.get_records(ids)
    seconds = []
    for record_id in dict.fromkeys(ids):
        meta = rows.get(record_id)
        other = None if meta is None else second_home(meta.header, meta.wrapped_key)
        if meta is not None and other is not None and other.subject == commitment:
            seconds.append(meta)
    return own + seconds


def other_commitments(metas: Sequence[RecordMeta], commitment: str) -> list[str]:
    """Her commitments in the other home of her records of two homes among *metas*, one
    home knowing her as *commitment*: an entry about her there belongs in both reports."""
    out: dict[str, None] = {}
    for meta in metas:
        for c in subjects(meta.header, meta.wrapped_key):
            if c != commitment:
                out[c] = None
    return list(out)


def record_homes(meta: RecordMeta) -> RecordHomes:
    """The facts the policy decides a stored record on, with its second home if it has one."""
    other = second_home(meta.header, meta.wrapped_key)
    facts = RecordFacts.of(meta)
    return RecordHomes(facts, None if other is None else (other.jurisdiction, other.subject))


def release_groups(metas: Sequence[RecordMeta]) -> list[tuple[str, list[RecordMeta]]]:
    """Who released what for an allowed access: one group per custodian.

    Without a record of two homes: one group, named ``""`` (the access's one
    ``key_release`` entry, as ever). With: one group per custodian that released a key or
    a share, each logged as its own entry naming that custodian.
    """
    others = [second_home(m.header, m.wrapped_key) for m in metas]
    if all(o is None for o in others):
        return [("", list(metas))]
    groups: dict[str, list[RecordMeta]] = {}
    for m in metas:
        groups.setdefault(m.header.jurisdiction, []).append(m)
    for m, o in zip(metas, others, strict=True):
        if o is not None:
            groups.setdefault(o.jurisdiction, []).append(m)
    return list(groups.items())
