"""docs/ledger.md's worked example is recomputed here, so the page cannot drift."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.ledger import MemoryLogStorage, NoteSigner, TransparencyLog
from sovra_verify.cosignature import CosignatureSigner

DOC = Path(__file__).parents[2] / "docs" / "ledger.md"


def test_every_value_of_the_worked_example_is_on_the_page() -> None:
    page = DOC.read_text(encoding="utf-8")
    seed = hashlib.sha256(b"sovra worked example").digest()
    origin = "example.sovra.dev/log"
    log = TransparencyLog(
        MemoryLogStorage(),
        NoteSigner(origin, Ed25519PrivateKey.from_private_bytes(seed)),
        origin,
        clock=lambda: 1764000000000,
    )
    receipts = log.append_many([(e, ()) for e in (b"alpha", b"beta", b"gamma")])
    note = log.checkpoint()
    witness = CosignatureSigner(
        "witness.example/w1",
        Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"sovra worked witness").digest()),
        clock=lambda: 1764000000,
    )
    expected = [
        seed.hex(),
        log.verifier_key,
        *(r.leaf_hash.hex() for r in receipts),
        log.root().hex(),
        note.split("\n\n")[1].strip(),
        receipts[1].signature.hex(),
        log.entry_bundle(0, 3).hex()[:4],
        witness.vkey,
        witness.cosign(note).rstrip("\n").split("\n")[-1],
    ]
    for value in expected:
        assert value in page, value
    assert "\n".join(note.split("\n")[:3]) in page
    assert receipts[1].signed_bytes().decode() in page.replace("```\n", "")
