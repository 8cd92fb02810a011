"""Where every subject's data lies, and whether the buckets and folders agree.

:func:`residency_report` reads every record's row (its subject's commitment, jurisdiction
and region) and groups them per jurisdiction and region, with the region's storage (its
bucket or folder), its provider and the provider's home jurisdiction; optionally per
subject too. It then checks three things, each a :class:`Problem`:

- ``missing-object``: a record whose blob its region's store does not hold (a deleted
  object or segment, a lost folder);
- ``orphan-object``: a blob in a region's store that no record of that region names;
- ``disallowed-region``: a record in a region its jurisdiction does not allow now (not
  listed, or its provider is at home in a jurisdiction the rules exclude), or in a
  region the configuration no longer has.

A record of a subject with two homes (``sovra._homes``) is counted under each home, per
region (``two_homes`` says how many of a row's records have two), listed under her
commitment in each when per subject, and must lie where *both* homes allow: a region
either home no longer allows is a ``disallowed-region`` naming that home.

The stores are listed, not read: the report costs one listing per region and one pass
over the rows. ``sovra check`` reads every blob and its digest; this answers "where".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sovra.config import Config
from sovra.keys.split import second_home
from sovra.model import RecordHeader
from sovra.placement import Placement
from sovra.store import BlobStore, RecordStore

__all__ = ["Placed", "Problem", "ResidencyReport", "SubjectPlaced", "residency_report"]

_PAGE = 1000
Progress = Callable[[str, int, int | None], None]


@dataclass(frozen=True, slots=True)
class Placed:
    """The records of one jurisdiction in one region."""

    jurisdiction: str
    region: str
    storage: str  # s3://bucket/prefix, or "folder <blobs>/<region>"
    provider: str | None
    provider_home: str | None
    allowed: bool
    records: int
    subjects: int
    two_homes: int = 0  # of its records, those of a subject with two homes

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready values."""
        return {
            "jurisdiction": self.jurisdiction,
            "region": self.region,
            "storage": self.storage,
            "provider": self.provider,
            "provider_home": self.provider_home,
            "allowed": self.allowed,
            "records": self.records,
            "subjects": self.subjects,
            "two_homes": self.two_homes,
        }


@dataclass(frozen=True, slots=True)
class SubjectPlaced:
    """One subject's records in one region (the subject by her commitment)."""

    subject: str
    jurisdiction: str
    region: str
    records: int


@dataclass(frozen=True, slots=True)
class Problem:
    """One disagreement between the rows, the stores and the rules."""

    kind: str  # missing-object | orphan-object | disallowed-region
    region: str
    key: str  # the record id (or the orphan blob's key)
    detail: str

    def to_dict(self) -> dict[str, str]:
        """As JSON-ready values."""
        return {"kind": self.kind, "region": self.region, "key": self.key, "detail": self.detail}


@dataclass
class ResidencyReport:
    """Where the records lie, per jurisdiction and region, and what disagrees."""

    placed: list[Placed] = field(default_factory=list)
    subjects: list[SubjectPlaced] | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return not self.problems

    def counts(self) -> dict[str, int]:
        """Problems by kind."""
        return dict(Counter(p.kind for p in self.problems))

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready values."""
        out: dict[str, Any] = {
            "ok": self.ok,
            "placed": [p.to_dict() for p in self.placed],
            "problems": [p.to_dict() for p in self.problems],
            "problem_counts": self.counts(),
        }
        if self.subjects is not None:
            out["subjects"] = [
                {"subject": s.subject, "jurisdiction": s.jurisdiction, "region": s.region,
                 "records": s.records}
                for s in self.subjects
            ]  # fmt: skip
        return out


def residency_report(
    config: Config,
    store: RecordStore,
    blobs: Mapping[str, BlobStore],
    *,
    by_subject: bool = False,
    progress: Progress | None = None,
) -> ResidencyReport:
    """Group every visible record by jurisdiction and region and check the stores.

    *blobs* holds the store of each configured region. With *by_subject*, the report
    lists each subject's records per region too.

    Raises:
        ConfigError: a store cannot be listed.
        Unavailable: an S3 endpoint cannot be reached.
        IntegrityError: a stored row no longer parses.
    """
    tick: Progress = progress or (lambda _s, _d, _t: None)
    placement = Placement(config)
    stored = {}
    for n, (region, in_region) in enumerate(blobs.items()):
        stored[region] = set(in_region.stored_keys())
        tick("listing", n + 1, len(blobs))
    report = ResidencyReport()
    records: Counter[tuple[str, str]] = Counter()
    subjects: Counter[tuple[str, str, str]] = Counter()
    two_homes: Counter[tuple[str, str]] = Counter()
    named: dict[str, set[str]] = {region: set() for region in blobs}
    total, done, after = store.count_records(), 0, ""
    while page := store.records_page(after, _PAGE):
        after = page[-1].header.record_id
        for meta in page:
            h = meta.header
            named.setdefault(h.region, set()).add(h.record_id)
            if meta.log_index < 0:
                continue  # pending or quarantined: `sovra check` settles those
            done += 1
            other = second_home(h, meta.wrapped_key)
            homes = [(h.jurisdiction, h.subject)]
            if other is not None:
                homes.append((other.jurisdiction, other.subject))
                for jurisdiction, _ in homes:
                    two_homes[jurisdiction, h.region] += 1
            for jurisdiction, subject in homes:
                records[jurisdiction, h.region] += 1
                subjects[subject, jurisdiction, h.region] += 1
            _check_record(
                report,
                h,
                [j for j, _ in homes],
                placement=placement,
                config=config,
                stored=stored,
            )
        tick("records", done, total)
    for region, keys in stored.items():
        for key in sorted(keys - named[region]):
            report.problems.append(
                Problem("orphan-object", region, key, "a blob no record of this region names")
            )
    per_place: Counter[tuple[str, str]] = Counter(
        (jurisdiction, region) for _, jurisdiction, region in subjects
    )
    for (jurisdiction, region), count in sorted(records.items()):
        settings = config.region(region)
        report.placed.append(
            Placed(
                jurisdiction,
                region,
                settings.blobs or f"folder {config.blobs}/{region}",
                settings.provider,
                settings.provider_home,
                _allowed(placement, config, jurisdiction, region),
                count,
                per_place[jurisdiction, region],
                two_homes[jurisdiction, region],
            )
        )
    if by_subject:
        report.subjects = [
            SubjectPlaced(subject, jurisdiction, region, count)
            for (subject, jurisdiction, region), count in sorted(subjects.items())
        ]
    return report


def _allowed(placement: Placement, config: Config, jurisdiction: str, region: str) -> bool:
    return jurisdiction in config.jurisdictions and region in placement.allowed(jurisdiction)


def _check_record(
    report: ResidencyReport,
    header: RecordHeader,
    homes: Sequence[str],
    *,
    placement: Placement,
    config: Config,
    stored: Mapping[str, set[str]],
) -> None:
    """A record's region against the rules of each of its *homes*, and its blob's presence."""
    jurisdiction, region, record_id = header.jurisdiction, header.region, header.record_id
    what = f"a {jurisdiction} record" if len(homes) == 1 else f"a record of {' and '.join(homes)}"
    if region not in stored:
        report.problems.append(
            Problem(
                "disallowed-region",
                region,
                record_id,
                f"{what} in region {region}, which this deployment no longer configures",
            )
        )
        return
    for home in homes:
        if _allowed(placement, config, home, region):
            continue
        allowed = (
            ", ".join(placement.allowed(home))
            if home in config.jurisdictions
            else "none: the jurisdiction is not configured"
        )
        provider = config.region(region).provider_home
        why = f" (its provider is at home in {provider})" if provider else ""
        report.problems.append(
            Problem(
                "disallowed-region",
                region,
                record_id,
                f"{what} in region {region}{why}; {home} allows {allowed}",
            )
        )
    if record_id not in stored[region]:
        report.problems.append(
            Problem("missing-object", region, record_id, f"region {region} holds no blob of it")
        )
