"""``sovra demo`` as a user runs it: the installed console script, in a child process."""

from __future__ import annotations

import json
import re

from sovra.deployment import Deployment

STEP = re.compile(r"^│ (\d) │", re.MULTILINE)


def _steps(table: str) -> list[int]:
    """The step numbers in the demo's table, in order (a row's first line holds its #)."""
    return [int(n) for n in STEP.findall(table)]


def test_demo_shows_the_seven_outcomes_in_a_fresh_deployment(sovra_script, tmp_path):
    ran = sovra_script("demo", "--synthetic", "20", env={"TMPDIR": str(tmp_path), "COLUMNS": ""})
    assert ran.code == 0, ran.err
    assert _steps(ran.out) == [1, 2, 3, 4, 5, 6, 7]
    # Into a pipe, a row is not folded to 80 columns: step 4's reason is whole on its line.
    bulk = next(line for line in ran.out.splitlines() if line.startswith("│ 4 │"))
    assert "more distinct subjects than the bulk-collection limit allows" in bulk, ran.out
    assert "sovra demo: the seed scenario" in ran.out
    assert ran.out.rstrip().endswith("all seven outcomes as expected")
    assert "unexpected outcome" not in ran.err
    # The temporary deployment is removed once the table is printed.
    assert list(tmp_path.iterdir()) == []


def test_demo_uses_the_deployment_it_is_given(sovra_script, tmp_path):
    root = tmp_path / "dep"
    assert sovra_script("init", root, "--custodians", "in-process").code == 0
    ran = sovra_script("demo", "--synthetic", "20", "--deployment", root)
    assert ran.code == 0, ran.err
    assert _steps(ran.out) == [1, 2, 3, 4, 5, 6, 7]
    assert "all seven outcomes as expected" in ran.out

    step1 = re.search(r"^│ 1 │.*│ (\d+) +│$", ran.out, re.MULTILINE)
    assert step1 is not None, ran.out
    dep = Deployment.open(root)
    try:
        anna = dep.gateway.commitment("PL", "anna.kowalska@example.pl")
        assert len(dep.store.records_for_subject(anna)) == 2
        assert dep.store.count_records() >= 23  # Anna's 2, Lan's 1, at least 20 synthetic
        assert dep.store.get_principal("subject-anna") is not None
        # The log index the table shows for step 1 is that allow, in this directory's log.
        entry = json.loads(dep.gateway.log.entry(int(step1.group(1))))
        assert (entry["principal"], entry["effect"]) == ("svc-pl", "allow")
    finally:
        dep.close()


def test_demo_runs_again_on_the_same_deployment(sovra_script, tmp_path):
    root = tmp_path / "dep"
    assert sovra_script("init", root, "--custodians", "in-process").code == 0
    assert sovra_script("demo", "--synthetic", "4", "--deployment", root).code == 0
    ran = sovra_script("demo", "--synthetic", "4", "--deployment", root)
    assert ran.code == 0, ran.err
