"""The seed scenario: all seven outcomes as expected, and the demo notices when one is not."""

from __future__ import annotations

from sovra.demo import run_demo
from sovra.policy import BulkLimits


def test_demo_shows_all_seven_expected_outcomes(dep):
    steps = run_demo(dep, synthetic=20)
    assert [s.number for s in steps] == [1, 2, 3, 4, 5, 6, 7]
    assert [s.outcome for s in steps] == [
        "allow",
        "deny",
        "allow",
        "deny: bulk",
        "deny",
        "verified",
        "verified",
    ]
    assert all(s.ok for s in steps)
    # every access step points at its decision in the log
    assert all(s.log_index is not None for s in steps[:4])


def test_demo_reports_an_unexpected_outcome(dep):
    """With the bulk guard's cap lifted, step 4 is still denied, but not as bulk collection."""
    dep.gateway.decisions.guard.limits = BulkLimits(100_000, 100_000, 3600)
    steps = run_demo(dep, synthetic=20)
    step4 = steps[3]
    assert step4.outcome == "deny"
    assert not step4.ok
    assert "grant" in step4.reason
