"""What a record of two homes costs to read, beside a record of one home.

    .venv/bin/python bench/two_homes.py [--quick] [--records N] [--rounds R]

A deployment made by ``sovra init --custodians in-process`` in which PL also allows the
region eu-central-de, so that a subject of PL and DE can be placed. One subject principal
(Anna, of PL) owns ``--records`` records of one home (PL) and as many of two homes (PL
and DE: split key, both homes' rules, two custodians, two key-release entries). She reads
them back by id, alternating the two kinds round by round (A/B in the same minute):

- ``batch``: ``Gateway.access_many`` with one request of one record per item;
- ``single``: ``Gateway.access`` called one after another (one thread).

Figures are the CPU this process spent per access (``getrusage``, user + system, in µs),
and the ratio two-home / one-home. The machine may be shared: compare CPU, not rates.

The listing of a subject's records by one home's commitment (what a request naming
``subjects`` does per subject) is timed the same way over ``--subjects`` subjects of PL
and DE, each with one record of each kind: ``listing_rows_cpu_us`` is the store's own
lookup alone (the listing before two homes), ``listing_first_home_cpu_us`` the listing by
her PL commitment (the rows, plus one lookup of the second-home tag, which finds
nothing), ``listing_second_home_cpu_us`` by her DE commitment (her DE rows, plus the
two-home record found through its ingest entry). A request naming her by a home that
shares no region with another jurisdiction (no second home can be there) skips the tag
lookup and costs ``listing_rows_cpu_us``.
``--quick``: 200 records, 3 rounds, 100 subjects. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sovra import _homes
from sovra.deployment import Deployment
from sovra.gateway import AccessRequest, IngestItem
from sovra.model import Role

SUBJECT = "anna@example.eu"
TEXT = "Anna Kowalska asked about invoice {i}; call her on +48 601 234 567."


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _configure(root: Path) -> None:
    """PL allows eu-central-de too: the one region a PL and DE subject can live in."""
    toml = root / "sovra.toml"
    lines = toml.read_text().splitlines()
    section = ""
    for n, line in enumerate(lines):
        if line.startswith("["):
            section = line
        elif section == "[jurisdictions.PL]" and line.startswith("regions ="):
            lines[n] = 'regions = ["eu-central-pl", "eu-central-de"]'
    toml.write_text("\n".join(lines) + "\n")


def _ingest(dep: Deployment, n: int, other_homes: list[str]) -> list[str]:
    svc = dep.store.get_principal("svc-pl")
    items = [IngestItem(SUBJECT, "PL", TEXT.format(i=i), None, other_homes) for i in range(n)]
    out = []
    for start in range(0, n, 500):
        for got in dep.gateway.ingest_many(svc, items[start : start + 500]):
            assert not isinstance(got, Exception), got
            out.append(got.record_id)
    return out


def _listings(dep: Deployment, people: int, rounds: int, samples: dict[str, list[float]]) -> None:
    """CPU per listing of one subject's records, by each home's commitment (A/B per round)."""
    svc, gw = dep.store.get_principal("svc-pl"), dep.gateway
    names = [f"person{n}@example.eu" for n in range(people)]
    items = [IngestItem(s, "PL", TEXT.format(i=n), None, []) for n, s in enumerate(names)]
    items += [IngestItem(s, "PL", TEXT.format(i=n), None, ["DE"]) for n, s in enumerate(names)]
    for got in gw.ingest_many(svc, items):
        assert not isinstance(got, Exception), got
    first = [gw.commitment("PL", s) for s in names]
    second = [gw.commitment("DE", s) for s in names]

    def run(lookup: Callable[[str], list[Any]], commitments: list[str], want: int) -> int:
        for c in commitments:
            assert len(lookup(c)) == want
        return len(commitments)

    listed = functools.partial(_homes.records_for_subject, dep.store, gw.log)
    for _ in range(rounds):
        for key, lookup, commitments, want in (
            ("listing_rows_cpu_us", dep.store.records_for_subject, first, 2),
            ("listing_first_home_cpu_us", listed, first, 2),
            ("listing_second_home_cpu_us", listed, second, 1),
        ):
            samples.setdefault(key, []).append(
                _per_access(functools.partial(run, lookup, commitments, want))
            )


def _per_access(run: Callable[[], int]) -> float:
    start = _cpu()
    count = run()
    return (_cpu() - start) / count * 1e6


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--subjects", type=int, default=500)
    args = parser.parse_args(argv)
    records, rounds = (200, 3) if args.quick else (args.records, args.rounds)
    people = 100 if args.quick else args.subjects
    with tempfile.TemporaryDirectory(prefix="sovra-two-homes-") as tmp:
        root = Path(tmp) / "deployment"
        Deployment.init(root, origin="bench/two-homes", custodians="in-process")
        _configure(root)
        dep = Deployment.open(root)
        try:
            anna = dep.gateway.commitment("PL", SUBJECT)
            dep.register("subject-anna", "PL", Role.SUBJECT, subject=anna)
            me = dep.store.get_principal("subject-anna")
            ids = {
                "one_home": _ingest(dep, records, []),
                "two_homes": _ingest(dep, records, ["DE"]),
            }
            gw = dep.gateway

            def batch(kind: str) -> Callable[[], int]:
                def run() -> int:
                    requests = [
                        AccessRequest("subject-access", [r], justification="subject-request")
                        for r in ids[kind]
                    ]
                    for got in gw.access_many(me, requests):
                        assert not isinstance(got, Exception), got
                    return len(requests)

                return run

            def single(kind: str) -> Callable[[], int]:
                def run() -> int:
                    for r in ids[kind]:
                        gw.access(
                            me,
                            purpose="subject-access",
                            record_ids=[r],
                            justification="subject-request",
                        )
                    return len(ids[kind])

                return run

            samples: dict[str, list[float]] = {}
            for _ in range(rounds):
                for mode, make in (("batch", batch), ("single", single)):
                    for kind in ("one_home", "two_homes"):
                        samples.setdefault(f"{mode}_{kind}_cpu_us", []).append(
                            _per_access(make(kind))
                        )
            _listings(dep, people, rounds, samples)
        finally:
            dep.close()
    result: dict[str, Any] = {"records": records, "rounds": rounds}
    for key, values in samples.items():
        result[key] = round(statistics.median(values), 1)
    for mode in ("batch", "single"):
        two, one = result[f"{mode}_two_homes_cpu_us"], result[f"{mode}_one_home_cpu_us"]
        result[f"{mode}_ratio"] = round(two / one, 2)
    for key, value in result.items():
        print(f"{key:>28}: {value}", file=sys.stderr)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
