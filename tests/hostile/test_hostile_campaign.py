"""The whole hostile-input campaign against a real server: no 5xx, no hang, nothing left behind.

The cases are the table in :mod:`campaign` (named, by class). After the campaign the log
still verifies from its tiles with the ``sovra`` command, and the store holds exactly the
records whose ingest was accepted: a refused request added nothing.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

from campaign import WHO, Ctx, all_cases, run_campaign

SOVRA = Path(sys.executable).parent / "sovra"


def test_the_case_table_is_named_and_large():
    cases = all_cases()
    names = [(c.klass, c.name) for c in cases]
    assert len(set(names)) == len(names), "every case has its own name"
    by_class = Counter(c.klass for c in cases)
    assert sum(by_class.values()) >= 300
    assert all(n >= 10 for n in by_class.values()), by_class


def test_hostile_campaign_gets_no_5xx_no_hang_and_changes_nothing_it_refused(served):
    dep, url = served
    ctx = Ctx(dep.principal_key(WHO), dep.config.max_body_bytes)
    report = run_campaign(url, ctx, dep.config.max_record_bytes)
    assert report.server_errors == []
    assert report.hangs == []
    assert report.unexpected == []
    assert dep.store.count_records() == report.ingested
    verify = subprocess.run(
        [str(SOVRA), "log", "verify", "--url", url, "--vkey", dep.gateway.log.verifier_key],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
