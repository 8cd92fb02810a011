"""C2SP tlog-policy (witness groups, k of n) and tlog-proof (proofs that travel).

The specification's examples come from tests/vectors/tlog_witness_examples.json
(C2SP/C2SP ``tlog-policy.md`` and ``tlog-proof.md`` at the commit recorded there). The
policy example elides its keys as ``<vkey>``: the tests put generated keys in their
places. The proof example elides its signatures with ``[...]``: it parses, writes
back byte for byte, and fails to verify with a precise error.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.errors import BadRequest, VerificationError
from sovra.ledger import MemoryLogStorage, NoteSigner, TransparencyLog
from sovra_verify.cosignature import CosignatureSigner
from sovra_verify.policy import PolicyWitness, WitnessPolicy
from sovra_verify.proof import TlogProof

EXAMPLES = json.loads(
    (Path(__file__).parent.parent / "vectors" / "tlog_witness_examples.json").read_text()
)
ORIGIN = "proofs.sovra.example/log"
LOG = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
NAMES = ["X1", "X2", "X3", "Y1", "Y2", "Y3"]
COSIGNERS = {
    name: CosignatureSigner(f"{name.lower()}.witness.example", Ed25519PrivateKey.generate())
    for name in NAMES
}


def spec_policy() -> WitnessPolicy:
    """The spec's example with our log key and six witness keys in place of ``<vkey>``."""
    text = EXAMPLES["c2sp_tlog_policy_example"]["text"]
    keys = iter([LOG.vkey, *(COSIGNERS[n].vkey for n in NAMES)])
    while "<vkey>" in text:
        text = text.replace("<vkey>", next(keys), 1)
    return WitnessPolicy.parse(text)


def cosigned(note: str, names: list[str]) -> str:
    for name in names:
        note = COSIGNERS[name].cosign(note)
    return note


def new_log(entries: int) -> TransparencyLog:
    log = TransparencyLog(MemoryLogStorage(), LOG, ORIGIN)
    log.append_many([(b'{"kind":"decision","n":%d}' % i, ()) for i in range(entries)])
    return log


# -- tlog-policy ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("witnessed", "satisfied"),
    [
        (["X1", "X2", "Y1"], True),
        (["X1", "X3", "Y3"], True),
        (["X1", "X2", "X3", "Y1", "Y2", "Y3"], True),
        (["X1", "Y1"], False),  # one X is not 2 of the X group
        (["X1", "X2", "X3"], False),  # no Y
        (["Y1", "Y2", "Y3"], False),
        ([], False),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, list) else str(v),
)
def test_the_specs_example_policy(witnessed: list[str], satisfied: bool) -> None:
    policy = spec_policy()
    assert policy.satisfied_by(witnessed) is satisfied
    assert policy.minimum() == 3
    note = cosigned(new_log(3).checkpoint(), witnessed)
    if satisfied:
        check = policy.check(note)
        assert sorted(check.witnesses) == sorted(witnessed)
        assert check.checkpoint.size == 3 and check.log == LOG.vkey
    else:
        with pytest.raises(VerificationError, match=r"below the witness quorum 2 of \(2 of"):
            policy.check(note)
    # The policy written back reads as the same rules.
    again = WitnessPolicy.parse(policy.to_text())
    assert again.satisfied_by(witnessed) is satisfied


def test_policy_check_refuses_forged_and_foreign_signatures() -> None:
    policy = spec_policy()
    log = new_log(4)
    note = log.checkpoint()
    # A line by an unknown key is ignored; it does not count towards the quorum.
    stranger = CosignatureSigner("stranger.example", Ed25519PrivateKey.generate())
    with pytest.raises(VerificationError, match="cosigned by X1, X2"):
        policy.check(stranger.cosign(cosigned(note, ["X1", "X2"])))
    # A known witness's cosignature over another checkpoint condemns the note.
    other = new_log(5).checkpoint()
    moved = COSIGNERS["Y1"].cosign(other)[len(other) :]
    with pytest.raises(VerificationError, match="does not verify"):
        policy.check(cosigned(note, ["X1", "X2"]) + moved)
    # A checkpoint signed by a key the policy does not list for the origin.
    impostor = TransparencyLog(
        MemoryLogStorage(), NoteSigner(ORIGIN, Ed25519PrivateKey.generate()), ORIGIN
    )
    impostor.append_many([(b"x", ())])
    with pytest.raises(VerificationError, match="no accepted log key"):
        policy.check(cosigned(impostor.checkpoint(), ["X1", "X2", "Y1"]))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no quorum line"),
        ("quorum none\nquorum none\n", "exactly one quorum"),
        ("quorum W\n", "not a witness or group defined before"),
        ("quorum W\nwitness W {w1}\n", "not a witness or group defined before"),
        ("witness W {w1}\nwitness W {w2}\nquorum W\n", "defined twice"),
        ("witness A {w1}\nwitness B {w1}\nquorum A\n", "key of another witness"),
        ("log {log}\nlog {log}\nquorum none\n", "listed twice"),
        ("witness A {w1}\ngroup G 2 A\nquorum G\n", "k must be in 1..1"),
        ("witness A {w1}\ngroup G 0 A\nquorum G\n", "not all, any or a decimal"),
        ("witness A {w1}\ngroup G any B\nquorum G\n", "no earlier line defines"),
        ("witness A {w1}\ngroup G any A A\nquorum G\n", "member twice"),
        (
            "witness A {w1}\ngroup G any A\ngroup H any A\nquorum H\n",
            "member twice",
        ),
        ("witness none {w1}\nquorum none\n", "predefined"),
        ("witness A {w1}\ngroup G any none\nquorum G\n", "cannot be a group member"),
        ("witness A {log}\nquorum A\n", "type 0x04"),
        ("log {w1}\nquorum none\n", r"Ed25519 \(type 0x01\)"),
        ("witnesses A {w1}\nquorum A\n", "unknown keyword"),
        ("witness A {w1} http://a http://b\nquorum A\n", "at most a key and a URL"),
        ("witness A {w1}\x0b\nquorum A\n", "control character"),
    ],
    ids=lambda v: v if len(v) < 30 else v[:30],
)
def test_malformed_policies_are_refused_with_the_line(text: str, message: str) -> None:
    filled = text.format(log=LOG.vkey, w1=COSIGNERS["X1"].vkey, w2=COSIGNERS["X2"].vkey)
    with pytest.raises(BadRequest, match=message):
        WitnessPolicy.parse(filled)


def test_policy_syntax_details() -> None:
    text = (
        "  # a comment\n"
        f"log\t{LOG.vkey}  https://log.example/\n"
        "\n"
        f" witness A {COSIGNERS['X1'].vkey} https://a.example/\t\n"
        f"witness B {COSIGNERS['X2'].vkey}\n"
        "group G all A B\n"
        "quorum G   \n"
    )
    policy = WitnessPolicy.parse(text.encode())
    assert [w.url for w in policy.witnesses] == ["https://a.example/", None]
    assert policy.minimum() == 2 and policy.quorum == "G"
    assert WitnessPolicy.parse("quorum none\n").satisfied_by([])
    with pytest.raises(BadRequest, match="UTF-8"):
        WitnessPolicy.parse(b"quorum \xff\n")
    with pytest.raises(BadRequest, match="at most"):
        WitnessPolicy.parse(b"#" * (64 * 1024 + 1))


def test_k_of_n_is_the_flat_policy() -> None:
    keys = [COSIGNERS[n].vkey for n in ("X1", "X2", "X3")]
    policy = WitnessPolicy.k_of_n(keys, 2, logs=[LOG.vkey])
    note = new_log(2).checkpoint()
    assert policy.check(cosigned(note, ["X2", "X3"])).witnesses == ("w2", "w3")
    with pytest.raises(VerificationError, match="2 of"):
        policy.check(cosigned(note, ["X1"]))
    assert WitnessPolicy.k_of_n([]).quorum == "none"
    for k in (0, 4):
        with pytest.raises(BadRequest, match="not possible"):
            WitnessPolicy.k_of_n(keys, k)
    with pytest.raises(BadRequest, match="at least one witness"):
        WitnessPolicy.k_of_n([], 1)
    with pytest.raises(BadRequest, match="k must be in"):
        WitnessPolicy([], [PolicyWitness("A", COSIGNERS["X1"].verifier)], [("G", 2, ["A"])], "G")


# -- tlog-proof ----------------------------------------------------------------------------


def test_the_specs_example_proof_parses_and_writes_back() -> None:
    example = EXAMPLES["c2sp_tlog_proof_example"]
    proof = TlogProof.parse(example["text"])
    assert proof.index == example["index"]
    assert len(proof.proof) == example["proof_lines"]
    assert proof.extra is not None and proof.extra.startswith(b"age-v1.2.1-darwin-arm64.tar.gz")
    assert proof.checkpoint.startswith("example.com/fancylog\n109482\n")
    assert proof.to_text() == example["text"]
    # Its signatures are elided ("[...]") in the spec: verifying says so, precisely.
    with pytest.raises(BadRequest, match="signature line 1 is not valid base64"):
        proof.verify(WitnessPolicy.parse("quorum none\n"), log_vkey=LOG.vkey)


def test_a_proof_travels_and_verifies_offline() -> None:
    log = new_log(11)
    note = cosigned(log.checkpoint(), ["X1", "X3", "Y2"])
    entry = log.entry(6)
    proof = TlogProof(6, tuple(log.inclusion_proof(6, 11)), note, entry)
    text = proof.to_text()
    assert text.startswith(
        f"c2sp.org/tlog-proof@v1\nextra {base64.b64encode(entry).decode()}\nindex 6\n"
    )
    parsed = TlogProof.parse(text.encode())
    assert parsed == proof
    checked = parsed.verify(spec_policy())
    assert (checked.index, checked.entry) == (6, entry)
    assert sorted(checked.policy.witnesses) == ["X1", "X3", "Y2"]
    assert all(t > 0 for t in checked.policy.timestamps.values())
    # The same proof with the entry given, and with no witness required.
    parsed.verify(WitnessPolicy.parse(f"log {LOG.vkey}\nquorum none\n"), entry=entry)


def test_bad_proofs_fail_precisely() -> None:
    log = new_log(11)
    policy = spec_policy()
    note = cosigned(log.checkpoint(), ["X1", "X2", "Y1"])
    path = tuple(log.inclusion_proof(6, 11))
    entry = log.entry(6)
    good = TlogProof(6, path, note, entry)
    good.verify(policy)
    cases = [
        (TlogProof(6, path, note, b"another entry"), "does not reach the root"),
        (TlogProof(5, path, note, entry), "does not reach the root"),
        (TlogProof(6, path[:-1], note, entry), "does not reach the root"),
        (TlogProof(11, (), note, entry), "not in the checkpoint"),
        (TlogProof(6, path, cosigned(log.checkpoint(), ["X1", "Y1"]), entry), "below the"),
    ]
    for proof, message in cases:
        with pytest.raises(VerificationError, match=message):
            proof.verify(policy)
    with pytest.raises(VerificationError, match="another entry"):
        good.verify(policy, entry=b"not this one")
    with pytest.raises(BadRequest, match="carries no entry"):
        TlogProof(6, path, note).verify(policy)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("c2sp.org/tlog-proof@v2\nindex 0\n\n{note}", "starts with the line"),
        ("c2sp.org/tlog-proof@v1\nindex 01\n\n{note}", "not an index line"),
        ("c2sp.org/tlog-proof@v1\nindex -1\n\n{note}", "not an index line"),
        ("c2sp.org/tlog-proof@v1\nextra !!\nindex 0\n\n{note}", "extra line"),
        ("c2sp.org/tlog-proof@v1\nextra AA==\n\n{note}", "no index line"),
        ("c2sp.org/tlog-proof@v1\nindex 0\nAAAA\n\n{note}", "base64 of 32 bytes"),
        ("c2sp.org/tlog-proof@v1\nindex 0\n" + "A" * 43 + "=\n" * 64 + "\n{note}", "at most 63"),
        ("c2sp.org/tlog-proof@v1\nindex 0\n", "empty line and a checkpoint"),
        ("c2sp.org/tlog-proof@v1\nindex 0\n\nno signatures\n", "signed note"),
    ],
    ids=[
        "version",
        "leading-zero",
        "negative",
        "extra",
        "no-index",
        "short-hash",
        "64-hashes",
        "no-checkpoint",
        "unsigned",
    ],
)
def test_malformed_proofs_are_refused(text: str, message: str) -> None:
    note = new_log(1).checkpoint()
    with pytest.raises(BadRequest, match=message):
        TlogProof.parse(text.replace("{note}", note))
