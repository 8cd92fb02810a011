"""Witnesses cosign a gateway's checkpoints through the HTTP API, and the gateway publishes them.

Real witnesses (their own keys and state files) cosign the checkpoints a real deployment
serves; the gateway keeps only cosignatures it can check against the configured witness
keys and a checkpoint it published, and every refusal leaves the stored lines as they were.
"""

from __future__ import annotations

import base64
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from sovra.config import Config
from sovra.deployment import Deployment
from sovra.errors import ConfigError
from sovra.keys import load_ed25519
from sovra.ledger import CosignatureSigner, Witness, verify_cosignatures
from sovra.server import create_app
from sovra_verify.checkpoint import Checkpoint
from sovra_verify.note import NoteSigner, sign_note

EM = "\u2014"


def _witness(tmp_path: Path, name: str, log_vkey: str) -> Witness:
    signer = CosignatureSigner(f"witness.test/{name}", Ed25519PrivateKey.generate())
    return Witness(signer, [log_vkey], tmp_path / f"{name}.heads.json")


def _log_vkey(root: Path) -> str:
    d = Deployment.open(root)
    try:
        return d.gateway.log.verifier_key
    finally:
        d.close()


def _configure(root: Path, keys: list[str], quorum: int | None) -> None:
    path = root / "sovra.toml"
    text = path.read_text()
    listed = "keys = [" + ", ".join(f'"{k}"' for k in keys) + "]"
    assert "keys = []\n" in text
    text = text.replace("keys = []\n", listed + "\n", 1)
    if quorum is not None:
        text = text.replace("# quorum = 1\n", f"quorum = {quorum}\n", 1)
    path.write_text(text)


class Setup:
    def __init__(self, dep: Deployment, http: TestClient, witnesses: list[Witness]) -> None:
        self.dep, self.http, self.witnesses = dep, http, witnesses

    def grow(self, count: int) -> None:
        log = self.dep.gateway.log
        start = log.size
        log.append_many([(b'{"kind":"test","n":%d}' % (start + n), ()) for n in range(count)])

    def checkpoint(self) -> str:
        r = self.http.get("/v1/log/checkpoint")
        assert r.status_code == 200, r.text
        return r.text

    def cosign(self, witness: Witness, note: str) -> str:
        cp = witness.verify(note)
        held = witness.head(cp.origin)
        size = 0 if held is None else held[0]
        proof = self.dep.gateway.log.consistency_proof(size, cp.size) if 0 < size < cp.size else []
        return witness.add_checkpoint(note, size, proof)

    def submit(self, body: str | bytes, content_type: str = "text/plain") -> object:
        data = body.encode() if isinstance(body, str) else body
        return self.http.post(
            "/v1/log/cosignatures", content=data, headers={"content-type": content_type}
        )

    def stored(self) -> list[tuple[int, str]]:
        db = sqlite3.connect(self.dep.root / "sovra.db")
        try:
            return list(db.execute("SELECT size, witness FROM log_cosignatures ORDER BY 1, 2"))
        finally:
            db.close()


@pytest.fixture
def setup(root: Path, tmp_path: Path, clock) -> Iterator[Setup]:
    log_vkey = _log_vkey(root)
    witnesses = [_witness(tmp_path, n, log_vkey) for n in ("w1", "w2", "w3")]
    _configure(root, [w.vkey for w in witnesses[:2]], quorum=2)  # w3 is not configured
    dep = Deployment.open(root, clock=clock)
    with TestClient(create_app(dep), raise_server_exceptions=True) as http:
        yield Setup(dep, http, witnesses)
    dep.close()


def test_cosignatures_are_collected_and_served_until_the_quorum(setup: Setup, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    w1, w2, _ = setup.witnesses
    log_vkey = setup.dep.gateway.log.verifier_key
    setup.grow(5)
    size = setup.dep.gateway.log.size  # sovra init's entries and these five
    note = setup.checkpoint()
    assert setup.http.get("/v1/log/checkpoint/cosigned").status_code == 404

    r = setup.submit(setup.cosign(w1, note))
    assert r.status_code == 200, r.text
    assert r.json() == {
        "origin": "sovra.test/log",
        "size": size,
        "accepted": ["witness.test/w1"],
        "cosigned_by": 1,
        "quorum": 2,
    }
    served = setup.checkpoint()
    assert served.startswith(note) and served.count(f"\n{EM} ") == 2
    verify_cosignatures(served, log_vkey, [w1.vkey], quorum=1)
    unmet = setup.http.get("/v1/log/checkpoint/cosigned")
    assert unmet.status_code == 404 and "cosigned by 2 of the 2" in unmet.json()["message"]

    # w2 cosigns what it is served (the note already carrying w1's line).
    r = setup.submit(setup.cosign(w2, served))
    assert r.status_code == 200, r.text
    assert r.json()["cosigned_by"] == 2
    met = setup.http.get("/v1/log/checkpoint/cosigned")
    assert met.status_code == 200 and met.headers["content-type"].startswith("text/plain")
    cp, names = verify_cosignatures(met.text, log_vkey, [w1.vkey, w2.vkey], quorum=2)
    assert cp.size == size and sorted(names) == ["witness.test/w1", "witness.test/w2"]
    assert setup.stored() == [(size, w1.vkey), (size, w2.vkey)]

    # The log grows: the new checkpoint is served bare until witnessed; the cosigned one stays.
    setup.grow(300)
    latest = setup.checkpoint()
    assert latest.count(f"\n{EM} ") == 1
    assert setup.http.get("/v1/log/checkpoint/cosigned").text == met.text
    for w in (w1, w2):
        assert setup.submit(setup.cosign(w, setup.checkpoint())).status_code == 200
    newest = setup.http.get("/v1/log/checkpoint/cosigned").text
    cosigned = verify_cosignatures(newest, log_vkey, [w1.vkey, w2.vkey], quorum=2)[0]
    assert cosigned.size == size + 300
    # Nothing about witnesses or notes reached the server log (the access log names
    # routes, statuses and request ids only).
    assert not [
        r for r in caplog.records if r.name.startswith("sovra") and r.name != "sovra.access"
    ]
    assert all("witness" not in r.getMessage() for r in caplog.records if r.name == "sovra.access")


def _flip_last_byte(note: str) -> str:
    head, line = note[: note.rindex(EM)], note[note.rindex(EM) :]
    name, b64 = line[2:].rstrip("\n").split(" ")
    blob = bytearray(base64.b64decode(b64))
    blob[-1] ^= 1
    return head + f"{EM} {name} {base64.b64encode(bytes(blob)).decode()}\n"


def test_bad_submissions_are_refused_and_nothing_is_stored(setup: Setup) -> None:
    w1, _, w3 = setup.witnesses
    setup.grow(4)
    note = setup.checkpoint()
    good = setup.cosign(w1, note)
    by_stranger = setup.cosign(w3, note)
    # A checkpoint of a size the gateway never published (inside a batch of two, which
    # is published whole), signed with its own log key.
    setup.grow(2)
    log = setup.dep.gateway.log
    key = setup.dep.root / "keys" / "log.key"
    unpublished = sign_note(
        Checkpoint(log.origin, log.size - 1, log.root(log.size - 1)).to_text(),
        [NoteSigner(log.origin, load_ed25519(key))],
    )
    never = setup.cosign(w1, unpublished)
    cases = [
        ("forged cosignature", _flip_last_byte(good), 403, "does not verify"),
        ("unknown witness", by_stranger, 403, "not a witness this log collects"),
        ("known and unknown", good + by_stranger[len(note) :], 403, "not a witness"),
        ("never published", never, 404, f"published no checkpoint of size {log.size - 1}"),
        ("another log", good.replace("sovra.test/log\n", "other.test/log\n", 1), 400, "other"),
        ("no cosignature", note, 400, "no witness cosignature"),
        ("empty", "", 400, "request body"),
        ("not a note", "hello\n", 400, "blank line"),
        ("json", '{"note": "x"}', 400, "blank line"),
        ("not utf-8", b"\xff\xfe\n\n", 400, "UTF-8"),
        ("bad line", note + "garbage\n", 400, "em dash"),
        ("bad base64", note + f"{EM} witness.test/w1 !!!\n", 400, "base64"),
        ("too large", "x" * (64 * 1024 + 1), 413, "at most"),
    ]
    for label, body, status, message in cases:
        r = setup.submit(body)
        assert r.status_code == status, (label, r.text)
        assert message in r.json()["message"], (label, r.text)
    assert setup.stored() == []
    assert setup.checkpoint().count(f"\n{EM} ") == 1
    assert setup.http.get("/v1/log/checkpoint/cosigned").status_code == 404


def test_a_gateway_without_witnesses_collects_nothing(dep: Deployment, tmp_path: Path) -> None:
    assert dep.config.witnesses == () and dep.config.witness_quorum == 0
    w1 = _witness(tmp_path, "w1", dep.gateway.log.verifier_key)
    with TestClient(create_app(dep)) as http:
        note = http.get("/v1/log/checkpoint").text
        r = http.post("/v1/log/cosignatures", content=w1.add_checkpoint(note, 0, []).encode())
        assert r.status_code == 403
        cosigned = http.get("/v1/log/checkpoint/cosigned")
        assert cosigned.status_code == 404 and "no witnesses" in cosigned.json()["message"]


def test_the_default_quorum_is_every_witness(root: Path, tmp_path: Path) -> None:
    log_vkey = _log_vkey(root)
    keys = [_witness(tmp_path, n, log_vkey).vkey for n in ("a", "b", "c")]
    _configure(root, keys, quorum=None)
    config = Config.load(root / "sovra.toml")
    assert config.witnesses == tuple(keys) and config.witness_quorum == 3
    d = Deployment.open(root)
    try:
        assert d.cosignatures is not None and d.cosignatures.quorum == 3
    finally:
        d.close()


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("[witnesses]\nkeys = []\nquorum = 1\n", "quorum needs witness keys"),
        ("[witnesses]\nkeys = []\ntreshold = 1\n", "unknown key(s) treshold"),
        ('[witnesses]\nkeys = ["not a vkey"]\n', "three parts"),
        ("[witnesses]\nkeys = [1]\n", "list of witness vkeys"),
        ("[witnesses]\nkeys = [{k}]\nquorum = 2\n", "quorum 2 is more than the 1 keys"),
        ("[witnesses]\nkeys = [{k}]\nquorum = 0\n", "positive integer"),
        ("[witnesses]\nkeys = [{k}, {k}]\n", "names one witness twice"),
    ],
)
def test_the_witnesses_section_is_parsed_strictly(
    root: Path, tmp_path: Path, section: str, message: str
) -> None:
    vkey = _witness(tmp_path, "w1", _log_vkey(root)).vkey
    path = root / "sovra.toml"
    text = path.read_text()
    start = text.index("[witnesses]")
    end = text.index("[jurisdictions.")
    path.write_text(text[:start] + section.replace("{k}", f'"{vkey}"') + "\n" + text[end:])
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Config.load(path)


def test_init_writes_an_empty_commented_section(root: Path) -> None:
    text = (root / "sovra.toml").read_text()
    section = text[text.index("[witnesses]") : text.index("[jurisdictions.")]
    assert "keys = []" in section and "# quorum" in section
    config = Config.load(root / "sovra.toml")
    assert config.witnesses == () and config.witness_quorum == 0
