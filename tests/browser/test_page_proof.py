"""Proofs that travel, checked in the page: a C2SP tlog-proof that ``sovra log export-proof``
wrote, dropped, picked or pasted into the log view, is checked in the browser (the entry's
leaf hash, its inclusion proof up to the checkpoint's root, the checkpoint's signature by
the log key the page shows, the cosignatures against the quorum the log states), and each
tampered part fails its own check with its own words. Cosignatures are tested with a real
witness in test_page_witness.py."""

from __future__ import annotations

import json
from typing import Any

from tests.browser.tlog_proofs import (
    check_in_page,
    export,
    read_verdict,
    with_entry_byte_changed,
    with_proof_hash_changed,
    with_signature_changed,
)
from tests.ledger.test_ledger_policy_and_proof import NAMES, spec_policy

STEPS = ["entry", "inclusion", "read", "signature", "witnesses"]


def _decision(served: Any, effect: str) -> tuple[int, dict[str, Any]]:
    """The first decision of *effect* in the demo's log."""
    return next(
        (i, e)
        for i, e in enumerate(served.entries())
        if e["kind"] == "decision" and e["effect"] == effect
    )


def _open_log(page: Any) -> None:
    page.goto("/page/#/log")
    page.wait_for_selector("main[data-ready=yes]")


def test_an_exported_proof_is_verified_in_the_browser(page, served, shoot, tmp_path):
    index, decision = _decision(served, "deny")
    proof = export(served.url, served.root, index)
    _open_log(page)
    # Picked as a file, as a person would pick the file the command wrote.
    path = tmp_path / "decision.tlog-proof"
    path.write_text(proof)
    page.set_input_files("#proof-file", str(path))
    got = read_verdict(page)
    assert got["status"] == "ok", got
    assert sorted(got["steps"]) == STEPS and got["failed"] == []
    assert f"entry {index} is in the log {served.json('/v1/info')['origin']}" in got["words"]
    # What was proven, in words: the entry's kind, index and the decision it records.
    assert got["shown"]["entry"] == str(index)
    assert got["shown"]["kind"] == "decision"
    assert got["shown"]["decision"] == "deny" == decision["effect"]
    assert got["shown"]["purpose"] == decision["purpose"]
    assert got["shown"]["decision id"] == decision["decision_id"]
    assert "no witness quorum" in got["steps"]["witnesses"][1]
    assert got["hint"] is None
    shoot(page, "log-proof")


def test_a_proof_of_a_key_release_and_of_a_receipt_are_verified(page, served):
    entries = served.entries()
    release = next(i for i, e in enumerate(entries) if e["kind"] == "key_release")
    ingest = next(i for i, e in enumerate(entries) if e["kind"] == "ingest")
    got = check_in_page(page, export(served.url, served.root, release))
    assert got["status"] == "ok", got
    assert got["shown"]["kind"] == "key_release"
    decision = entries[release]["decision_index"]
    assert got["shown"]["released under the decision at"] == str(decision)
    got = check_in_page(page, export(served.url, served.root, ingest))
    assert got["status"] == "ok", got
    assert (got["shown"]["kind"], got["shown"]["record"]) == ("ingest", entries[ingest]["record"])


def test_a_proof_dropped_on_the_checker_is_verified(page, served):
    index, _ = _decision(served, "allow")
    proof = export(served.url, served.root, index)
    _open_log(page)
    page.evaluate(
        """(text) => {
          const data = new DataTransfer();
          data.items.add(new File([text], "allow.tlog-proof", { type: "text/plain" }));
          document.getElementById("proof-check").dispatchEvent(
            new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
        }""",
        proof,
    )
    got = read_verdict(page)
    assert got["status"] == "ok", got
    assert (got["shown"]["entry"], got["shown"]["decision"]) == (str(index), "allow")


def test_a_changed_entry_byte_fails_inclusion_and_is_named(page, served):
    index, _ = _decision(served, "deny")
    proof = export(served.url, served.root, index)
    forged = with_entry_byte_changed(proof, b'"effect":"deny"', b'"effect":"denY"')
    got = check_in_page(page, forged)
    assert got["status"] == "fail"
    assert got["failed"] == ["inclusion"]
    assert "does not reach the root of the checkpoint" in got["steps"]["inclusion"][1]
    assert "not the one logged at index" in got["hint"]
    assert "What the proof claims (not verified)" in page.inner_text("#proof-what")


def test_a_changed_proof_hash_fails_inclusion_and_is_named(page, served):
    index, _ = _decision(served, "allow")
    proof = export(served.url, served.root, index)
    got = check_in_page(page, with_proof_hash_changed(proof, 2))
    assert got["status"] == "fail"
    assert got["failed"] == ["inclusion"]
    assert "inclusion proof hash 2 of" in got["hint"]
    assert "the entry is the one logged" in got["hint"]


def test_a_changed_checkpoint_signature_fails_the_signature(page, served):
    index, _ = _decision(served, "allow")
    origin = served.json("/v1/info")["origin"]
    proof = export(served.url, served.root, index)
    got = check_in_page(page, with_signature_changed(proof, origin))
    assert got["status"] == "fail"
    assert got["failed"] == ["signature"]
    assert "the log's signature does not verify" in got["steps"]["signature"][1]
    assert got["hint"] is None  # the inclusion holds: nothing to compare


def test_a_proof_of_another_log_or_no_proof_at_all_is_refused(page, served):
    index, _ = _decision(served, "allow")
    proof = export(served.url, served.root, index)
    origin = served.json("/v1/info")["origin"]
    other = proof.replace(f"\n\n{origin}\n", "\n\nexample.org/another-log\n", 1)
    got = check_in_page(page, other)
    assert got["failed"] == ["signature"]
    refused = got["steps"]["signature"][1]
    assert f"origin example.org/another-log is not the key's {origin}" in refused
    got = check_in_page(page, "c2sp.org/tlog-proof@v2\nindex 0\n\nx\n")
    assert got["status"] == "fail" and got["failed"] == ["read"]
    assert "starts with the line c2sp.org/tlog-proof@v1" in got["steps"]["read"][1]
    got = check_in_page(page, proof.replace(f"index {index}\n", f"index {index}x\n"))
    assert got["failed"] == ["read"] and "is not an index line" in got["steps"]["read"][1]
    # Beyond the checkpoint: entry N of a checkpoint of N entries.
    size = int(proof.split("\n\n", 1)[1].splitlines()[1])
    beyond = proof.replace(f"index {index}\n", f"index {size}\n")
    got = check_in_page(page, beyond)
    assert got["failed"] == ["inclusion"]
    assert (
        f"entry {size} is not in the checkpoint, which covers {size} entries"
        in (got["steps"]["inclusion"][1])
    )
    assert json.dumps(got)  # every outcome is plain words


def test_the_page_reads_the_specs_policy_as_sovra_verify_does(page, served):
    """The C2SP tlog-policy example (nested groups, k of n): for every set of witnesses the
    page's policy.js and sovra_verify's WitnessPolicy agree on whether the quorum is met."""
    policy = spec_policy()
    text = policy.to_text()
    sets = [[], ["X1", "Y1"], ["X1", "X2", "Y1"], ["X1", "X3", "Y3"], ["X1", "X2", "X3"]]
    sets += [["Y1", "Y2", "Y3"], NAMES, ["X2", "X3", "Y2"]]
    page.goto("/page/")
    got = page.evaluate(
        """async ([text, sets]) => {
          const p = await import("/page/js/policy.js");
          const policy = await p.parsePolicy(text);
          return { quorum: p.describeQuorum(policy), met: sets.map((s) => p.quorumMet(policy, s)),
                   names: policy.witnesses.map((w) => w.name) };
        }""",
        [text, sets],
    )
    assert got["met"] == [policy.satisfied_by(s) for s in sets]
    assert True in got["met"] and False in got["met"]
    assert got["quorum"] == policy._describe(policy.quorum)  # as its refusals word it
    assert got["names"] == [w.name for w in policy.witnesses]
