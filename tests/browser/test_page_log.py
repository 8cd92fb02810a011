"""The page's log view in a real Chromium: the checkpoint verified in the browser, the key
it is verified with, consistency with what the browser saw before, and tampering shown."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

VECTORS = Path(__file__).parents[1] / "vectors"
STRICTER = {"testdata/consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"}
"""Accepted by the reference, refused here as in sovra._merkle: its "roots" are not
SHA-256 hashes (tests/ledger/test_ledger_merkle.py)."""


def _open(page: Any, view: str) -> Any:
    page.goto(f"/page/#/{view}")
    page.wait_for_selector("main[data-ready=yes]")
    return page


def _state(page: Any, box: str) -> tuple[str, str]:
    el = page.locator(f"#{box}")
    return el.get_attribute("data-status"), el.inner_text()


def _remember(page: Any, origin: str, note: str) -> None:
    """Have the browser hold *note* as the last checkpoint it saw (set on a page of the
    same origin that runs no script of the page's, so nothing overwrites it first)."""
    page.goto("/v1/info")
    page.evaluate(
        "([k, note]) => localStorage.setItem(k, JSON.stringify({note, at: Date.now()}))",
        [f"sovra.seen.{origin}", note],
    )


def _seen(page: Any, origin: str) -> Any:
    raw = page.evaluate(f"localStorage.getItem({json.dumps('sovra.seen.' + origin)})")
    return None if raw is None else json.loads(raw)["note"]


def test_the_newest_checkpoint_is_verified_in_the_browser(page, served, shoot):
    info = served.json("/v1/info")
    note = served.get("/v1/log/checkpoint").decode()
    _open(page, "log")
    assert _state(page, "sig-status")[0] == "ok"
    assert page.inner_text("#cp-size") == note.splitlines()[1]
    # The fingerprint is SHA-256 of the raw public key in the vkey, computed here apart.
    raw = base64.b64decode(info["log_verifier_key"].split("+", 2)[2])
    assert page.inner_text("#fingerprint").replace(" ", "") == hashlib.sha256(raw[1:]).hexdigest()
    status, words = _state(page, "key-status")
    assert status == "warn"
    assert "Trust on first use" in words
    # A first visit: nothing to compare with, and the checkpoint is kept for the next.
    assert _state(page, "consistency-status")[0] == "warn"
    assert _seen(page, info["origin"]) == note
    assert page.locator("svg.plot").count() == 2
    shoot(page, "log")


def test_consistency_with_an_earlier_checkpoint_is_proved(page, served):
    origin = served.json("/v1/info")["origin"]
    earlier = served.json("/v1/log/checkpoints")["checkpoints"][5]
    newest = served.get("/v1/log/checkpoint").decode()
    _remember(page, origin, earlier)
    proofs: list[str] = []
    page.on("request", lambda r: proofs.append(r.url) if "/proof/consistency" in r.url else None)
    _open(page, "log")
    page.reload()
    page.wait_for_selector("main[data-ready=yes]")
    status = _state(page, "consistency-status")[0]
    # After the reload the browser compares the newest with itself; before, with the earlier.
    assert status == "ok"
    assert _seen(page, origin) == newest
    old, new = earlier.splitlines()[1], newest.splitlines()[1]
    assert int(old) < int(new)
    assert any(f"old={old}&new={new}" in url for url in proofs), proofs


def test_a_tampered_checkpoint_is_shown_as_failed(page, served):
    origin = served.json("/v1/info")["origin"]

    def tamper(route: Any) -> None:
        body = route.fetch().text()
        lines = body.split("\n")
        root = bytearray(base64.b64decode(lines[2]))
        root[0] ^= 1
        lines[2] = base64.b64encode(bytes(root)).decode()
        route.fulfill(status=200, body="\n".join(lines), content_type="text/plain")

    page.route(re.compile(r".*/v1/log/checkpoint$"), tamper)
    _open(page, "log")
    status, words = _state(page, "sig-status")
    assert status == "fail"
    assert "does not verify" in words
    # A checkpoint that fails is never kept as the one to compare the next with.
    assert _seen(page, origin) is None


def test_a_tampered_consistency_proof_is_shown_as_failed(page, served):
    origin = served.json("/v1/info")["origin"]
    earlier = served.json("/v1/log/checkpoints")["checkpoints"][6]

    def tamper(route: Any) -> None:
        answer = route.fetch().json()
        first = bytearray(base64.b64decode(answer["proof"][0]))
        first[-1] ^= 0x80
        answer["proof"][0] = base64.b64encode(bytes(first)).decode()
        route.fulfill(status=200, body=json.dumps(answer), content_type="application/json")

    _remember(page, origin, earlier)
    page.route(re.compile(r".*/v1/log/proof/consistency.*"), tamper)
    _open(page, "log")
    status, words = _state(page, "consistency-status")
    assert status == "fail"
    assert "not consistent" in words
    assert _seen(page, origin) == earlier


def test_a_rollback_to_an_older_checkpoint_is_shown_as_failed(page, served):
    older = served.json("/v1/log/checkpoints")["checkpoints"][2]
    _open(page, "log")  # the browser sees the newest
    page.route(re.compile(r".*/v1/log/checkpoint$"), lambda r: r.fulfill(body=older))
    page.reload()
    page.wait_for_selector("main[data-ready=yes]")
    assert _state(page, "sig-status")[0] == "ok"  # a genuine, signed, older checkpoint
    status, words = _state(page, "consistency-status")
    assert status == "fail"
    assert "rollback" in words


def test_a_pinned_key_is_used_whatever_the_server_presents(page, served):
    origin = served.json("/v1/info")["origin"]
    # Another key under the log's name: the server's checkpoint must not verify with it.
    public = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    key_id = hashlib.sha256(origin.encode() + b"\n\x01" + public).digest()[:4].hex()
    encoded = base64.b64encode(b"\x01" + public).decode()
    other = f"{origin}+{key_id}+{encoded}"
    _open(page, "log")
    page.fill("#pin-input", other)
    page.press("#pin-input", "Enter")
    page.wait_for_selector("#key-source:has-text('pinned')")
    page.wait_for_selector("main[data-ready=yes]")
    assert _state(page, "key-status")[0] == "fail"
    assert "Key changed" in _state(page, "key-status")[1]
    assert _state(page, "sig-status")[0] == "fail"
    # Pinning the server's own key makes it verify again, with no trust on first use.
    page.click("#unpin")
    page.wait_for_selector("#pin")
    page.click("#pin")
    page.wait_for_selector("#key-source:has-text('pinned')")
    page.wait_for_selector("main[data-ready=yes]")
    assert _state(page, "key-status")[0] == "ok"
    assert _state(page, "sig-status")[0] == "ok"


def test_a_malformed_key_is_refused_with_its_reason(page, served):
    _open(page, "log")
    page.fill("#pin-input", "not a key")
    page.press("#pin-input", "Enter")
    page.wait_for_selector("#pin-message:has-text('name+keyid+key')")
    assert page.inner_text("#key-source") == "the server (/v1/log/key)"


_VERIFY = """async ([vectors, doc]) => {
  const m = await import("/page/js/merkle.js");
  const n = await import("/page/js/note.js");
  const b = (s) => s === null ? null : n.fromBase64(s);
  const out = {inclusion: [], consistency: []};
  for (const c of vectors.inclusion) {
    let ok = true;
    try {
      const proof = (c.proof || []).map(b);
      await m.verifyInclusion(c.leafIdx, c.treeSize, b(c.leafHash), proof, b(c.root));
    } catch (e) { ok = false; }
    out.inclusion.push([c.file, ok]);
  }
  for (const c of vectors.consistency) {
    let ok = true;
    try {
      await m.verifyConsistency(c.size1, c.size2, b(c.root1), b(c.root2), (c.proof || []).map(b));
    } catch (e) { ok = false; }
    out.consistency.push([c.file, ok]);
  }
  const key = await n.parseVkey(doc.vkey);
  const cp = await n.verifyCheckpoint(doc.checkpoint, key);
  const wit = await n.parseVkey(doc.witness);
  out.cosigned = await n.checkCosignatures(await n.verifyCheckpoint(doc.cosigned, key), [wit]);
  const forged = doc.cosigned.replace("5ohiYwAAAABpJIEA", "5ohiYwAAAABpJIEB");
  out.forged = await n.checkCosignatures(await n.verifyCheckpoint(forged, key), [wit]);
  out.size = cp.size;
  out.leaf = n.toHex(await m.leafHash("beta"));
  out.note = (await n.verifyNote(doc.signed.note, await n.parseVkey(doc.signed.vkey))).body;
  return out;
}"""

# docs/ledger.md, "Worked example": the log key, its checkpoint of 3, a witness's cosignature.
_DOC_VKEY = "example.sovra.dev/log+6efc8b25+AY5MYXBTfAjxbtIa4bIcnY9RipOJzp0ak7NEK5F83ovo"
_DOC_CHECKPOINT = (
    "example.sovra.dev/log\n3\nOF2jDzkXKCyJOd/4UZV+UZqxhGsTUaFMCts7EWMnQqo=\n\n"
    "\u2014 example.sovra.dev/log bvyLJfMp1mwV4j/rTcSmyRfc6aqh/k7etNkAuwCJEwMGioCnhpYzrI7eoBVU"
    "xw02CaiwYAhKtx04gehLqCi41sTfeQ4=\n"
)
_DOC_WITNESS = "witness.example/w1+e6886263+BP7IThMdqTyfjgbIKyP30/nycwtsw9bQiGRERcKDRXQk"
_DOC_COSIGNATURE = (
    "\u2014 witness.example/w1 5ohiYwAAAABpJIEAp2SOdy1PZzHlknpe6I3721x7ozIAPMazhPRpA9IrO+POHQy"
    "T4/3fwZ6edMuhjLBm5I5Nv60s9RhDapFsE7dMAQ==\n"
)


def test_the_browser_verifier_agrees_with_outside_vectors(page, served):
    """RFC 6962/9162 cases from transparency-dev/merkle (each must pass or fail as they
    say), the C2SP signed-note example, and docs/ledger.md's worked example."""
    merkle = json.loads((VECTORS / "rfc6962_merkle_transparency_dev.json").read_text())
    signed = json.loads((VECTORS / "signed_note_examples.json").read_text())
    doc = {
        "vkey": _DOC_VKEY,
        "checkpoint": _DOC_CHECKPOINT,
        "witness": _DOC_WITNESS,
        "cosigned": _DOC_CHECKPOINT + _DOC_COSIGNATURE,
        "signed": signed["c2sp_signed_note_example"],
    }
    page.goto("/page/")
    out = page.evaluate(_VERIFY, [merkle, doc])
    want = {
        "inclusion": [[c["file"], not c["wantErr"]] for c in merkle["inclusion"]],
        "consistency": [
            [c["file"], not c["wantErr"] and c["file"] not in STRICTER]
            for c in merkle["consistency"]
        ],
    }
    assert out["inclusion"] == want["inclusion"]
    assert out["consistency"] == want["consistency"]
    assert sum(ok for _, ok in out["inclusion"]) > 5
    assert sum(not ok for _, ok in out["consistency"]) > 5
    assert out["size"] == 3
    assert out["leaf"] == "e23537b050e84af2cbaab46f2f83d8d3b5febc8e5ac6200d306284f687d46924"
    assert [r["status"] for r in out["cosigned"]] == ["verified"]
    assert out["cosigned"][0]["time"] == 1764000000
    assert [r["status"] for r in out["forged"]] == ["failed"]
    assert out["note"] == signed["c2sp_signed_note_example"]["text"]
