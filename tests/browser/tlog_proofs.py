"""C2SP tlog-proofs for the page's tests: exported by ``sovra log export-proof`` from a
served gateway, tampered one part at a time, and checked in the page's log view."""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path
from typing import Any

from tests.serving import SOVRA


def export(url: str, root: Path, index: int, *trust: str | Path) -> str:
    """The proof of entry *index* that ``sovra log export-proof`` writes (checked by it
    against the deployment's log key and *trust*: ``--policy FILE`` and the like)."""
    vkey = (root / "keys" / "log.vkey").read_text().strip()
    args = ["log", "export-proof", str(index), "--url", url, "--vkey", vkey, *map(str, trust)]
    ran = subprocess.run([SOVRA, *args], capture_output=True, text=True, timeout=300, check=False)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.startswith("c2sp.org/tlog-proof@v1\nextra ")
    return ran.stdout


def _flip(b64: str, at: int) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[at] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def with_entry_byte_changed(proof: str, old: bytes, new: bytes) -> str:
    """*proof* carrying its entry with *old* (which it holds once) replaced by *new*."""
    line = proof.splitlines()[1]
    entry = base64.b64decode(line.removeprefix("extra "))
    assert entry.count(old) == 1 and len(old) == len(new)
    changed = "extra " + base64.b64encode(entry.replace(old, new)).decode()
    return proof.replace(line, changed, 1)


def with_proof_hash_changed(proof: str, n: int) -> str:
    """*proof* with one bit of its *n*-th inclusion proof hash (from 1) flipped."""
    lines = proof.split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith("index ")) + n
    lines[at] = _flip(lines[at], 7)
    return "\n".join(lines)


def signature_line(proof: str, name: str) -> str:
    found = re.search(rf"^\u2014 {re.escape(name)} (\S+)$", proof, re.MULTILINE)
    assert found, proof
    return found[0]


def with_signature_changed(proof: str, name: str) -> str:
    """*proof* with one bit flipped in the signature (after its key ID and, in a
    cosignature, its timestamp) of the line by *name*."""
    line = signature_line(proof, name)
    head, blob = line.rsplit(" ", 1)
    return proof.replace(line, f"{head} {_flip(blob, 20)}", 1)


def check_in_page(page: Any, proof: str) -> dict[str, Any]:
    """Paste *proof* into the log view's checker; its verdict, each step's outcome and
    words, what it says was proven, and the hint where a proof of this log differs."""
    if page.locator("#proof-text").count() == 0 or page.get_attribute("main", "data-view") != "log":
        page.goto("/page/#/log")
        page.wait_for_selector("main[data-ready=yes]")
    page.fill("#proof-text", proof)
    page.click("#proof-submit")
    return read_verdict(page)


def read_verdict(page: Any) -> dict[str, Any]:
    page.wait_for_selector("#proof-result[data-ready=yes]")
    steps = {}
    for row in page.locator("#proof-steps li").all():
        steps[row.get_attribute("data-step")] = (row.get_attribute("data-ok"), row.inner_text())
    shown = {}
    for dt in page.locator("#proof-what dt").all():
        field = dt.inner_text()
        shown[field] = page.locator(f'#proof-what dd[data-field="{field}"]').inner_text()
    hint = page.locator("#proof-diagnosis")
    return {
        "status": page.get_attribute("#proof-status", "data-status"),
        "words": page.inner_text("#proof-status"),
        "steps": steps,
        "failed": sorted(k for k, (ok, _) in steps.items() if ok != "yes"),
        "shown": shown,
        "hint": hint.inner_text() if hint.count() else None,
    }
