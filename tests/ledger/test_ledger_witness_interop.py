"""C2SP tlog-witness both ways against an implementation written apart from sovra.

The second implementation is ``aics-witness`` 0.1.0 with ``aics-tlog`` 0.2.1 from PyPI
(Apache-2.0; a tlog-witness server, its log-side client, and a C2SP log library that
shares no code with sovra). They declare Python 3.12 and run on 3.11; scripts/bootstrap
installs them pinned (``--no-deps --ignore-requires-python``). No other independent
implementation could be had from the registries this project uses: the reference
witnesses (litewitness, sigsum-witness, omniwitness) are Go modules, and there is none
on npm or in Debian's archive.

Both ways:

- a sovra log, through :class:`sovra.ledger.tlog_witness.WitnessClient`, is cosigned by
  the aics witness server, including a 409 the client resolves and a fork it refuses;
- ``sovra witness serve`` cosigns a log built and signed with aics-tlog, submitted by
  the aics client, including the 409 answer that client must understand; aics-tlog
  checks the cosignatures sovra's witness made.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.ledger import MemoryLogStorage, NoteSigner, TransparencyLog
from sovra.ledger.tlog_witness import WitnessClient
from sovra.ledger.witness import Inconsistent, Witness
from sovra.server.background import running
from sovra.server.witness import create_witness_app
from sovra_verify.cosignature import CosignatureSigner, verify_cosignatures

try:
    import aics_tlog.checkpoint as aics_checkpoint
    import aics_tlog.note as aics_note
    import aics_tlog.tree as aics_tree
    import aics_witness
except ImportError:  # pragma: no cover - scripts/bootstrap installs them
    if os.environ.get("CI"):
        raise
    pytest.skip(
        "aics-witness and aics-tlog are not installed (scripts/bootstrap installs them)",
        allow_module_level=True,
    )

ORIGIN = "interop.sovra.example/log"


@pytest.fixture
def sovra_log() -> TransparencyLog:
    return TransparencyLog(
        MemoryLogStorage(), NoteSigner(ORIGIN, Ed25519PrivateKey.generate()), ORIGIN
    )


@pytest.fixture
def aics_server(tmp_path: Path, sovra_log: TransparencyLog) -> Iterator[Any]:
    """The aics witness, witnessing *sovra_log*, on a loopback port."""
    store = aics_witness.WitnessStore(tmp_path / "aics.db", create=True)
    log = aics_witness.LogConfig(ORIGIN, (aics_note.parse_vkey(sovra_log.verifier_key),))
    witness = aics_witness.Witness(
        "aics.interop.example/w", Ed25519PrivateKey.generate(), store, [log]
    )
    server = aics_witness.make_server(witness)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        store.close()


def grow(log: TransparencyLog, count: int, prefix: bytes = b"e") -> str:
    start = log.size
    log.append_many([(prefix + b"%d" % (start + i), ()) for i in range(count)])
    return log.checkpoint()


def test_aics_witness_cosigns_a_sovra_log(aics_server: Any, sovra_log: TransparencyLog) -> None:
    vkey = aics_server.witness.vkey_text
    client = WitnessClient(aics_server.url, vkey, consistency=sovra_log.consistency_proof)
    try:
        first = grow(sovra_log, 9)
        cosigned = client.add_checkpoint(first, 0, [])
        checkpoint, names = verify_cosignatures(cosigned, sovra_log.verifier_key, [vkey], quorum=1)
        assert (checkpoint.size, names) == (9, ["aics.interop.example/w"])
        # The log forgot what the witness holds: the aics 409 names 9, sovra proves 9 -> 20.
        second = grow(sovra_log, 11)
        cosigned = client.add_checkpoint(second, 0, [])
        assert verify_cosignatures(cosigned, sovra_log.verifier_key, [vkey], quorum=1)[0].size == 20
        # aics-tlog reads the note sovra assembled, with both signatures.
        result = aics_checkpoint.verify_checkpoint(
            aics_note.parse_note(cosigned),
            aics_note.parse_vkey(sovra_log.verifier_key),
            [aics_note.parse_vkey(vkey)],
            quorum=1,
        )
        assert result.ok and result.size == 20, result.error
        # A fork signed by the same log key: the aics witness answers 422, sovra raises.
        forked = TransparencyLog(MemoryLogStorage(), sovra_log._signer, ORIGIN)
        fork_note = grow(forked, 25, prefix=b"fork")
        with pytest.raises(Inconsistent):
            client.add_checkpoint(fork_note, 20, forked.consistency_proof(20, 25))
        digest = hashlib.sha256(ORIGIN.encode()).hexdigest()
        served = httpx.get(f"{aics_server.url}/{digest}/checkpoint").text
        assert served.split("\n")[1] == "20"
    finally:
        client.close()


class _AicsLog:
    """A log kept and signed with aics-tlog alone."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.key = Ed25519PrivateKey.generate()
        self.tree = aics_tree.MerkleTree()
        self.vkey = aics_note.format_vkey(
            aics_note.vkey_from_ed25519(origin, self.key.public_key())
        )

    def grow(self, count: int, prefix: bytes = b"aics") -> str:
        self.tree.extend(prefix + b"%d" % (self.tree.size + i) for i in range(count))
        cp = aics_checkpoint.Checkpoint(self.origin, self.tree.size, self.tree.root())
        return aics_checkpoint.sign_checkpoint(cp, self.key, self.origin).serialise()

    def consistency(self, old: int, new: int) -> list[bytes]:
        return self.tree.consistency_proof(old, new)


def test_sovra_witness_serve_cosigns_a_log_written_with_aics_tlog(tmp_path: Path) -> None:
    log = _AicsLog("aics.interop.example/log")
    signer = CosignatureSigner("sovra.interop.example/w", Ed25519PrivateKey.generate())
    witness = Witness(signer, [log.vkey], tmp_path / "heads.json")
    with running(create_witness_app(witness)) as url:
        client = aics_witness.WitnessClient(url, witness.vkey)
        try:
            note = log.grow(6)
            lines = client.submit(note, log.consistency)
            result = aics_checkpoint.verify_checkpoint(
                aics_note.parse_note(note + lines),
                aics_note.parse_vkey(log.vkey),
                [aics_note.parse_vkey(witness.vkey)],
                quorum=1,
            )
            assert result.ok and result.witnesses == ["sovra.interop.example/w"], result.error
            bigger = log.grow(250)
            client.submit(bigger, log.consistency)
            assert witness.head(log.origin) == (256, log.tree.root())
            # A fresh aics client starts from 0: sovra's 409 and its size body lead it on.
            again = aics_witness.WitnessClient(url, witness.vkey)
            try:
                lines = again.submit(log.grow(44), log.consistency)
            finally:
                again.close()
            assert witness.head(log.origin) == (300, log.tree.root())
            verify_cosignatures(log.grow(0) + lines, log.vkey, [witness.vkey], quorum=1)
            # A fork of the aics log, signed by its key: sovra answers 422, keeps 300.
            fork = _AicsLog(log.origin)
            fork.key = log.key
            fork.grow(310, prefix=b"fork")
            cp = aics_checkpoint.Checkpoint(log.origin, 310, fork.tree.root())
            forked = aics_checkpoint.sign_checkpoint(cp, log.key, log.origin).serialise()
            with pytest.raises(aics_witness.WitnessRejected) as refused:
                client.submit(forked, fork.consistency)
            assert refused.value.status == 422
            assert witness.head(log.origin) == (300, log.tree.root())
        finally:
            client.close()
