"""`sovra witness` against a live gateway: cosigning growth, refusing forks and rollbacks."""

from __future__ import annotations

import base64
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.ledger import CosignatureSigner, Witness, verify_cosignatures


def _grow(live, count: int) -> None:
    log = live.dep.gateway.log
    start = log.size
    log.append_many([(b'{"kind":"test","w":%d}' % (start + i), ()) for i in range(count)])


def _init(sovra, live, directory) -> str:
    ran = sovra(
        "witness",
        "init",
        directory,
        "--name",
        "witness.test/w1",
        "--log",
        live.dep.gateway.log.verifier_key,
    )
    assert ran.code == 0, ran.err
    return ran.out.strip()


def test_witness_cosigns_a_growing_log(sovra, live, tmp_path):
    directory = tmp_path / "w"
    vkey = _init(sovra, live, directory)
    assert sovra("witness", "vkey", directory).out.strip() == vkey
    _grow(live, 5)
    first = sovra("witness", "cosign", directory, "--url", live.url)
    assert first.code == 0, first.err
    cp, names = verify_cosignatures(first.out, live.dep.gateway.log.verifier_key, [vkey], quorum=1)
    assert names == ["witness.test/w1"]
    _grow(live, 300)
    second = sovra("witness", "cosign", directory, "--url", live.url)
    assert second.code == 0, second.err
    cp2, _ = verify_cosignatures(second.out, live.dep.gateway.log.verifier_key, [vkey], quorum=1)
    assert cp2.size == cp.size + 300
    assert _held(directory, live).head(cp2.origin) == (cp2.size, cp2.root_hash)
    log_vkey = live.dep.gateway.log.verifier_key
    again = sovra("witness", "init", directory, "--name", "x", "--log", log_vkey)
    assert again.code == 1 and "already holds a witness" in again.message


def _held(directory, live) -> Witness:
    """The witness's state as it reads it (the newest intact of its two copies)."""
    signer = CosignatureSigner("reader.test/w", Ed25519PrivateKey.generate())
    return Witness(signer, [live.dep.gateway.log.verifier_key], directory / "heads.json")


def _tamper_head(directory, change) -> None:
    """Change the one copy of the state one cosign wrote, as a file of earlier versions
    (no serial, no check: the witness reads it as it is)."""
    assert not (directory / "heads.json.alt").exists()
    path = directory / "heads.json"
    heads = json.loads(path.read_text())
    for head in heads["heads"].values():
        change(head)
    path.write_text(json.dumps({"heads": heads["heads"]}))


def test_witness_catches_a_fork(sovra, live, tmp_path):
    directory = tmp_path / "w"
    _init(sovra, live, directory)
    _grow(live, 3)
    assert sovra("witness", "cosign", directory, "--url", live.url).code == 0
    # The witness remembers another root for the size it holds: the log forked.
    _tamper_head(directory, lambda h: h.update(root=base64.b64encode(bytes(32)).decode()))
    same = sovra("witness", "cosign", directory, "--url", live.url)
    assert same.code == 3
    assert "fork detected" in same.message and "two roots for size" in same.message
    _grow(live, 2)
    grown = sovra("witness", "cosign", directory, "--url", live.url)
    assert grown.code == 3
    assert "fork detected" in grown.message and "not consistent" in grown.message


def test_witness_refuses_a_rollback(sovra, live, tmp_path):
    directory = tmp_path / "w"
    _init(sovra, live, directory)
    _grow(live, 1)
    assert sovra("witness", "cosign", directory, "--url", live.url).code == 0
    _tamper_head(directory, lambda h: h.update(size=h["size"] + 1000))
    ran = sovra("witness", "cosign", directory, "--url", live.url)
    assert ran.code == 3
    assert "rollback refused" in ran.message


def test_witness_without_a_directory_says_how_to_make_one(sovra, tmp_path):
    ran = sovra("witness", "vkey", tmp_path / "none")
    assert ran.code == 1
    assert "sovra witness init" in ran.message
