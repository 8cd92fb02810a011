"""Client-side sealing from the command: pinned custodian keys, put and get --client-side.

``sovra keys transport-key`` reads the custodians' KEK files and prints the pins; ``put
--client-side --pins FILE`` refuses (exit 3, nothing stored) when the gateway offers any
other key. Every test names its own subjects, so the module shares one live gateway.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.deployment import Deployment
from sovra.keys import LocalCustodian, transport
from sovra.keys.transport import TransportPins
from sovra.ledger import NoteSigner
from sovra.model import LogEntry

NOTE = "Klientka Ewa, tel. +48 601 234 567: zapiski zapieczętowane po stronie klienta."


def _transport_key(dep: Deployment, code: str) -> tuple[int, bytes]:
    custodian = dep.gateway.custodians[code]
    assert isinstance(custodian, LocalCustodian)
    return custodian.transport_key()


@pytest.fixture
def pins(sovra, live, tmp_path) -> Path:
    ran = sovra("keys", "transport-key", "-j", "PL", "-d", live.root)
    assert ran.code == 0, ran.err
    path = tmp_path / "pins.json"
    path.write_text(ran.out)
    return path


def _records_of(live, subject: str) -> list[str]:
    commitment = live.dep.gateway.commitment("PL", subject)
    return [m.header.record_id for m in live.dep.store.records_for_subject(commitment)]


def _put(live, subject: str, source: Path | str, *more: str | Path) -> list[str | Path]:
    return live.args(
        "put", "--as", "svc-pl", "--subject", subject, "--jurisdiction", "PL", source, *more
    )


def test_transport_key_prints_the_custodians_keys_as_pins(sovra, live):
    ran = sovra("keys", "transport-key", "-d", live.root)
    assert ran.code == 0, ran.err
    pins = TransportPins.from_json(ran.out.encode())
    codes = sorted(live.dep.config.jurisdictions)
    assert sorted(j for j, _ in pins.keys) == codes
    for code in codes:
        version, key = _transport_key(live.dep, code)
        pins.check(code, version, key)

    ran = sovra("keys", "transport-key", "-j", "PL", "-j", "DE", "-d", live.root)
    assert ran.code == 0, ran.err
    assert sorted(TransportPins.from_json(ran.out.encode()).keys) == [("DE", 1), ("PL", 1)]


def test_transport_key_of_a_custodian_not_held_here(sovra, live, tmp_path):
    ran = sovra("keys", "transport-key", "-j", "FR", "-d", live.root)
    assert ran.code == 1
    assert "FR.key" in ran.message
    ran = sovra("keys", "transport-key", "-j", "pl", "-d", live.root)
    assert ran.code == 1
    assert "jurisdiction must be two upper-case letters" in ran.message
    ran = sovra("keys", "transport-key", "-d", tmp_path)
    assert ran.code == 1
    assert ran.message == f"error config: no custodian key file in {tmp_path / 'custodians'}"


def test_put_and_get_client_side_with_pins(sovra, live, pins, tmp_path):
    note = tmp_path / "note.txt"
    note.write_text(NOTE, encoding="utf-8")
    put = sovra(*_put(live, "ewa.sealed@example.pl", note, "--client-side", "--pins", pins))
    assert put.code == 0, put.err
    assert put.err == ""  # no warning: the key was checked
    rid = put.json()["record_id"]
    meta = live.dep.store.get_record(rid)
    assert meta.header.content_type == transport.CLIENT_SEALED_CONTENT_TYPE
    blob = live.dep.gateway.blobs[meta.header.region].get(rid)
    assert NOTE.encode() not in blob
    entry = LogEntry.from_bytes(live.dep.gateway.log.entry(put.json()["log_index"]))
    assert entry.fields["kinds"] == "client-sealed"

    get = sovra(
        *live.args(
            "get",
            "--as",
            "svc-pl",
            "--purpose",
            "customer-support",
            "--record",
            rid,
            "--client-side",
        )
    )
    assert get.code == 0, get.err
    assert get.json()["records"] == {rid: NOTE}
    assert get.json()["decision"]["effect"] == "allow"

    # With the log's key from out of band the decision's signature is checked too.
    vkey = live.dep.gateway.log.verifier_key
    args = ("get", "--as", "svc-pl", "--purpose", "customer-support", "--record", rid)
    args = (*args, "--client-side")
    checked = sovra(*live.args(*args, "--log-vkey", vkey))
    assert checked.code == 0, checked.err
    assert checked.json()["records"] == {rid: NOTE}
    # Released to a post-quantum hybrid key instead: the decision logs that key.
    hybrid = sovra(*live.args(*args, "--key-transport", "mlkem768-x25519"))
    assert hybrid.code == 0, hybrid.err
    assert hybrid.json()["records"] == {rid: NOTE}
    logged = LogEntry.from_bytes(base64.b64decode(hybrid.json()["decision_entry"]))
    assert transport.check_public(bytes.fromhex(logged.fields["recipient"])) == "mlkem768-x25519"
    other = NoteSigner("sovra.test/other", Ed25519PrivateKey.generate()).vkey
    refused = sovra(*live.args(*args, "--log-vkey", other))
    assert refused.code == 3
    assert "is not the log's" in refused.message

    # The gateway will not open it itself.
    plain = sovra(
        *live.args("get", "--as", "svc-pl", "--purpose", "customer-support", "--record", rid)
    )
    assert plain.code == 1
    assert "open only on the client" in plain.message


def test_binary_records_from_stdin_come_back_as_base64(sovra, live, pins):
    data = b"\x00\xffnot text\x80"
    put = sovra(
        *_put(live, "bin.sealed@example.pl", "-", "--client-side", "--pins", pins), stdin=data
    )
    assert put.code == 0, put.err
    rid = put.json()["record_id"]
    get = sovra(
        *live.args(
            "get", "--as", "svc-pl", "--purpose", "billing", "--record", rid, "--client-side"
        )
    )
    assert get.code == 0, get.err
    assert get.json()["records"] == {rid: {"base64": base64.b64encode(data).decode()}}


def test_a_key_that_is_not_pinned_is_refused_and_nothing_is_stored(sovra, live, tmp_path):
    other = transport.public_bytes(transport.new_recipient())
    version, _ = _transport_key(live.dep, "PL")
    wrong = tmp_path / "wrong.json"
    wrong.write_bytes(TransportPins({("PL", version): other}).to_json())
    note = tmp_path / "note.txt"
    note.write_text(NOTE, encoding="utf-8")
    size = live.dep.gateway.log.size

    ran = sovra(*_put(live, "eve.sealed@example.pl", note, "--client-side", "--pins", wrong))
    assert ran.code == 3
    assert ran.out == ""
    assert ran.message == (
        "error verification_failed: the gateway offered a transport key for custodian PL "
        f"(KEK version {version}) that is not the pinned one; nothing was sealed or sent"
    )
    de_only = tmp_path / "de.json"
    de_only.write_bytes(TransportPins({("DE", 1): other}).to_json())
    ran = sovra(*_put(live, "eve.sealed@example.pl", note, "--client-side", "--pins", de_only))
    assert ran.code == 3
    assert "no transport key of custodian PL is pinned" in ran.message
    assert "sovra keys transport-key -j PL" in ran.message
    assert _records_of(live, "eve.sealed@example.pl") == []
    assert live.dep.gateway.log.size == size


def test_client_side_without_pins_warns(sovra, live, tmp_path):
    note = tmp_path / "note.txt"
    note.write_text(NOTE, encoding="utf-8")
    ran = sovra(*_put(live, "tofu.sealed@example.pl", note, "--client-side"))
    assert ran.code == 0, ran.err
    assert ran.message == (
        "warning no --pins: the custodian's transport key is taken from the gateway unchecked"
    )
    assert _records_of(live, "tofu.sealed@example.pl") == [ran.json()["record_id"]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("put", "--pins", "pins.json"), "error --pins applies to --client-side only"),
        (
            ("put", "--client-side", "--purpose", "billing"),
            "error --purpose picks a minimisation rule, and none runs on a client-sealed record",
        ),
        (
            ("get", "--client-side", "--reveal"),
            "error --reveal needs the gateway to read the record; a client-sealed one it cannot",
        ),
        (("get", "--log-vkey", "x+00000000+AA"), "error --log-vkey applies to --client-side only"),
        (
            ("get", "--key-transport", "mlkem768-x25519"),
            "error --key-transport applies to --client-side only",
        ),
        (
            ("get", "--client-side", "--key-transport", "kyber"),
            "error --key-transport must be one of x25519, mlkem768-x25519, mlkem1024-p384, "
            "got 'kyber'",
        ),
    ],
    ids=[
        "pins without client-side",
        "purpose with client-side",
        "reveal with client-side",
        "log-vkey without client-side",
        "key-transport without client-side",
        "unknown key-transport",
    ],
)
def test_options_that_do_not_go_together_are_usage_errors(sovra, live, tmp_path, args, message):
    note = tmp_path / "note.txt"
    note.write_text(NOTE, encoding="utf-8")
    if args[0] == "put":
        argv = _put(live, "usage.sealed@example.pl", note, *args[1:])
    else:
        argv = live.args(
            "get", "--as", "svc-pl", "--purpose", "billing", "--record", "r-x", *args[1:]
        )
    ran = sovra(*argv)
    assert ran.code == 2
    assert ran.message == message
    assert _records_of(live, "usage.sealed@example.pl") == []


def test_unreadable_or_malformed_pins(sovra, live, tmp_path):
    note = tmp_path / "note.txt"
    note.write_text(NOTE, encoding="utf-8")
    missing = tmp_path / "missing.json"
    ran = sovra(*_put(live, "pins.sealed@example.pl", note, "--client-side", "--pins", missing))
    assert ran.code == 1
    assert ran.message == f"error cannot read {missing}: No such file or directory"
    malformed = tmp_path / "malformed.json"
    malformed.write_text(json.dumps({"type": "sovra-transport-keys", "format": 1}))
    ran = sovra(*_put(live, "pins.sealed@example.pl", note, "--client-side", "--pins", malformed))
    assert ran.code == 1
    assert ran.message == "error bad_request: the pins document is missing keys"
    assert _records_of(live, "pins.sealed@example.pl") == []


def test_pins_from_a_custodian_host_copy_of_the_deployment(sovra, live, tmp_path):
    """The command needs only the custodian's files, as on a host running `custodian serve`."""
    host = tmp_path / "custodian-host"
    (host / "custodians").mkdir(parents=True)
    (host / "keys").mkdir()
    for name in ("PL.key", "PL.subjects.db"):  # a custodian host holds its store as well
        shutil.copy2(live.root / "custodians" / name, host / "custodians" / name)
    shutil.copy2(live.root / "keys" / "log.key", host / "keys" / "log.key")
    ran = sovra("keys", "transport-key", "-d", host)
    assert ran.code == 0, ran.err
    pins = TransportPins.from_json(ran.out.encode())
    version, key = _transport_key(live.dep, "PL")
    assert pins.keys == {("PL", version): key}
