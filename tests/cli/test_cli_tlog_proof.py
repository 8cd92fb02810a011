"""Proofs that travel on the command line, and `sovra witness serve` as a process.

`sovra log export-proof` writes a C2SP tlog-proof of one entry; `sovra log verify-proof`
and `sovra-verify verify-proof` check one offline against the keys given (a log key,
witness keys and a quorum, or a tlog-policy file). Every refusal is a precise message
and exit code 3 (did not verify) or 1 (bad input).
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.serving import SOVRA, free_port

from sovra.errors import SovraError
from sovra.ledger import (
    CosignatureSigner,
    MemoryLogStorage,
    NoteSigner,
    TransparencyLog,
    Witness,
)
from sovra.ledger.tlog_witness import WitnessClient
from sovra_verify.cli import main as sovra_verify_main
from sovra_verify.proof import TlogProof


def _grow(live, count: int) -> int:
    log = live.dep.gateway.log
    start = log.size
    log.append_many([(b'{"kind":"test","p":%d}' % (start + i), ()) for i in range(count)])
    return start


def _witnesses(live, n: int) -> list[Witness]:
    key = live.dep.gateway.log.verifier_key
    return [
        Witness(CosignatureSigner(f"w{i}.cli.example", Ed25519PrivateKey.generate()), [key])
        for i in range(n)
    ]


def _cosigned_proof(live, witnesses: list[Witness], index: int) -> TlogProof:
    log = live.dep.gateway.log
    note = log.checkpoint()
    for w in witnesses:
        note = w.add_checkpoint(note, 0, [])
    size = log.size
    return TlogProof(index, tuple(log.inclusion_proof(index, size)), note, log.entry(index))


def _verify_offline(*args: str | Path, capsys) -> tuple[int, str, str]:
    code = sovra_verify_main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_export_then_verify_offline(sovra, live, tmp_path, capsys) -> None:
    first = _grow(live, 9)
    vkey = live.dep.gateway.log.verifier_key
    path = tmp_path / "entry.tlog-proof"
    ran = sovra(
        "log", "export-proof", str(first + 4), "--url", live.url, "--vkey", vkey, "-o", path
    )
    assert ran.code == 0, ran.err
    proof = TlogProof.parse(path.read_bytes())
    assert proof.index == first + 4 and proof.extra == b'{"kind":"test","p":%d}' % (first + 4)
    checked = sovra("log", "verify-proof", path, "--vkey", vkey)
    assert checked.code == 0, checked.err
    report = checked.json()
    assert report["verified"] and report["index"] == first + 4
    assert report["entry"] == {"kind": "test", "p": first + 4} and report["witnesses"] == []
    code, out, err = _verify_offline("verify-proof", path, "--vkey", vkey, capsys=capsys)
    assert code == 0, err
    assert json.loads(out) == report
    # Another log key for the same origin: the checkpoint is not one this key signed.
    wrong = NoteSigner(live.dep.gateway.log.origin, Ed25519PrivateKey.generate()).vkey
    refused = sovra("log", "verify-proof", path, "--vkey", wrong)
    assert refused.code == 3 and "no accepted log key signed" in refused.message


def test_witness_quorum_and_policy_are_checked(sovra, live, tmp_path, capsys) -> None:
    first = _grow(live, 3)
    vkey = live.dep.gateway.log.verifier_key
    a, b, c = _witnesses(live, 3)
    path = tmp_path / "p.tlog-proof"
    path.write_text(_cosigned_proof(live, [a, b], first + 1).to_text())
    ok = sovra(
        "log", "verify-proof", path, "--vkey", vkey, "--witness", a.vkey, "--witness", b.vkey
    )
    assert ok.code == 0, ok.err
    assert ok.json()["witnesses"] == ["w1", "w2"]
    policy = tmp_path / "trust.policy"
    policy.write_text(
        f"log {vkey}\nwitness A {a.vkey}\nwitness B {b.vkey}\nwitness C {c.vkey}\n"
        "group two 2 A B C\nquorum two\n"
    )
    code, out, err = _verify_offline("verify-proof", path, "--policy", policy, capsys=capsys)
    assert code == 0, err
    assert sorted(json.loads(out)["witnesses"]) == ["A", "B"]
    # Below the quorum: exit 3, naming who cosigned and the rule.
    below = sovra(
        "log",
        "verify-proof",
        path,
        "--vkey",
        vkey,
        *("--witness", a.vkey, "--witness", c.vkey, "--quorum", "2"),
    )
    assert below.code == 3 and "below the witness quorum 2 of (w1, w2)" in below.message
    code, _, err = _verify_offline(
        "verify-proof", path, "--vkey", vkey, "--witness", c.vkey, capsys=capsys
    )
    assert code == 3 and "NOT VERIFIED" in err
    # Another entry than the one expected, and a changed carried entry.
    expected = tmp_path / "expected.json"
    expected.write_bytes(b'{"kind":"test","p":-1}')
    other = sovra("log", "verify-proof", path, "--vkey", vkey, "--entry", expected)
    assert other.code == 3 and "another entry" in other.message
    text = path.read_text()
    forged = text.replace(
        base64.b64encode(live.dep.gateway.log.entry(first + 1)).decode(),
        base64.b64encode(b'{"kind":"test","p":99999}').decode(),
    )
    assert forged != text
    path.write_text(forged)
    changed = sovra("log", "verify-proof", path, "--vkey", vkey)
    assert changed.code == 3 and "does not reach the root" in changed.message


def test_bad_input_is_refused(sovra, live, tmp_path, capsys) -> None:
    vkey = live.dep.gateway.log.verifier_key
    (a,) = _witnesses(live, 1)
    path = tmp_path / "bad.tlog-proof"
    path.write_text("c2sp.org/tlog-proof@v2\nindex 0\n\nx\n")
    bad = sovra("log", "verify-proof", path, "--vkey", vkey)
    assert bad.code == 1 and "starts with the line" in bad.message
    both = sovra("log", "verify-proof", path, "--witness", a.vkey, "--policy", tmp_path / "p")
    assert both.code == 1 and "not both" in both.message
    absent = sovra("log", "verify-proof", tmp_path / "absent", "--vkey", vkey)
    assert absent.code == 1 and "cannot read" in absent.message
    code, _, err = _verify_offline("verify-proof", path, "--vkey", vkey, capsys=capsys)
    assert code == 1 and "starts with the line" in err
    _grow(live, 1)
    beyond = sovra("log", "export-proof", "999999", "--url", live.url, "--vkey", vkey)
    assert beyond.code == 1 and "is not covered" in beyond.message


def test_witness_serve_answers_tlog_witness(sovra, live, tmp_path) -> None:
    directory = tmp_path / "w"
    log = live.dep.gateway.log
    init = sovra(
        "witness", "init", directory, "--name", "serve.cli.example", "--log", log.verifier_key
    )
    assert init.code == 0, init.err
    vkey = init.out.strip()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    output = tmp_path / "serve.log"
    with output.open("w") as sink:
        proc = subprocess.Popen(
            [str(SOVRA), "witness", "serve", str(directory), "--port", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait(url, proc)
        _grow(live, 4)
        client = WitnessClient(url, vkey, consistency=log.consistency_proof)
        try:
            note = client.add_checkpoint(log.checkpoint(), 0, [])
        finally:
            client.close()
        assert note.count("\u2014 serve.cli.example ") == 1
        conflict = httpx.post(url + "/add-checkpoint", content=b"old 1\n\n" + note.encode())
        assert conflict.status_code == 409 and conflict.text == f"{log.size}\n"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    heads = json.loads((directory / "heads.json").read_text())
    assert heads["heads"][log.origin]["size"] == log.size
    assert vkey in output.read_text()


def test_a_killed_witness_keeps_what_it_answered_for(sovra, tmp_path) -> None:
    """``sovra witness serve`` killed (SIGKILL) while a log submits checkpoint after
    checkpoint comes back holding at least the last size it answered 200 for, with that
    size's root: it refuses a fork of it, and takes the log's growth on."""
    origin = "crash.cli.example/log"
    signer = NoteSigner(origin, Ed25519PrivateKey.generate())
    log = TransparencyLog(MemoryLogStorage(), signer, origin)
    directory = tmp_path / "w"
    init = sovra("witness", "init", directory, "--name", "crash.cli.example", "--log", signer.vkey)
    assert init.code == 0, init.err
    vkey = init.out.strip()
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [str(SOVRA), "witness", "serve", str(directory), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    answered: list[int] = []
    proc = start()
    try:
        _wait(url, proc)
        client = WitnessClient(url, vkey, timeout_s=5, consistency=log.consistency_proof)

        def submit() -> None:
            held = 0
            while True:
                log.append_many([(b"entry %d" % log.size, ())])
                proof = log.consistency_proof(held, log.size) if held else []
                try:
                    client.add_checkpoint(log.checkpoint(), held, proof)
                except SovraError:
                    return  # killed
                held = log.size
                answered.append(held)

        thread = threading.Thread(target=submit)
        thread.start()
        deadline = time.monotonic() + 30
        while len(answered) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.kill()
        proc.wait(timeout=30)
        thread.join(timeout=30)
        client.close()
        assert len(answered) >= 20
        last = answered[-1]
        proc = start()
        _wait(url, proc)
        held = httpx.get(f"{url}/{hashlib.sha256(origin.encode()).hexdigest()}/checkpoint")
        size = int(held.text.split("\n")[1])
        assert size >= last
        assert held.text.split("\n")[2] == base64.b64encode(log.root(size)).decode()
        # Another tree of the same size, signed with the log's key: a fork, refused.
        fork = TransparencyLog(MemoryLogStorage(), signer, origin)
        fork.append_many([(b"forked %d" % i, ()) for i in range(size)])
        body = b"old %d\n\n" % size + fork.checkpoint().encode()
        refused = httpx.post(url + "/add-checkpoint", content=body)
        assert refused.status_code == 422 and "fork detected" in refused.text
        log.append_many([(b"after the crash", ())])
        again = WitnessClient(url, vkey, consistency=log.consistency_proof)
        try:
            again.add_checkpoint(log.checkpoint(), size, log.consistency_proof(size, log.size))
        finally:
            again.close()
    finally:
        proc.kill()
        proc.wait(timeout=30)


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"sovra witness serve exited with {proc.returncode}")
        try:
            httpx.get(url + "/" + "0" * 64 + "/checkpoint", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("sovra witness serve did not start")


def test_the_verifier_command_needs_no_gateway() -> None:
    """sovra-verify verify-proof runs with the verifier's package alone (no sovra import)."""
    code = (
        "import sys; import sovra_verify.cli as c; "
        "sys.exit(0 if 'sovra' not in {m.split('.')[0] for m in sys.modules} else 1)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
