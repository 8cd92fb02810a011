"""No key the gateway can read: the operator's script against the default deployment.

The script below is what an operator with a shell on the gateway's host writes: it needs
nothing of sovra, only sqlite3 and AES-GCM, and walks KEK file -> subject key -> wrapped
data key -> blob for any record, leaving no log entry. On the in-process layout (the only
one before custodians ran as processes of their own) it reads every record. In the default
deployment, made and run as root, the gateway's user (``sovra-gateway``) cannot open a
KEK, a subject-key store, an authority's key or a principal's key: the same script stops
at the first file it needs.

Run as another user, the default is separate processes of that one user, which file
permissions cannot separate; docs/threat-model.md says what that mode protects against.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sovra import custody
from sovra.deployment import Deployment, run_as_gateway
from sovra.errors import ConfigError
from sovra.keys.remote import RemoteCustodian

TEXT = "Anna Kowalska, tel. +48 601 234 567"

ATTACK = """
import json, os, sqlite3
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

def opened(key, sealed, aad):  # nonce | ciphertext | tag
    return AESGCM(key).decrypt(sealed[:12], sealed[12:], aad)

def steal(root, record_id):
    db = sqlite3.connect(f"file:{root}/sovra.db?mode=ro", uri=True)
    subject, j, region, version, ctype, fmt, wrapped = db.execute(
        "SELECT subject, jurisdiction, region, kek_version, content_type, format, wrapped_key"
        " FROM records WHERE record_id = ?", (record_id,)).fetchone()
    own = os.path.isdir(f"{root}/custodians/{j}")
    kek_file = f"{root}/custodians/{j}/{j}.key" if own else f"{root}/custodians/{j}.key"
    with open(kek_file) as f:
        keks = {k["version"]: bytes.fromhex(k["key"]) for k in json.load(f)["keks"]}
    store = sqlite3.connect(f"file:{kek_file[:-4]}.subjects.db?mode=ro", uri=True)
    kv, sealed = store.execute(
        "SELECT kek_version, sealed FROM subject_keys WHERE subject = ?", (subject,)).fetchone()
    aad = f"sovra-subject-key/v1\\n{j}\\n{kv}\\n{subject}".encode()
    subject_key = opened(keks[kv], sealed, aad)
    fields = {"content_type": ctype, "format": fmt, "jurisdiction": j, "kek_version": version,
              "record_id": record_id, "region": region, "subject": subject}
    header = b"sovra-record\\n" + json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    data_key = opened(subject_key, wrapped, f"sovra-wrap/v2\\n{j}\\n{version}\\n".encode() + header)
    blobs = sqlite3.connect(f"file:{root}/blobs/{region}/small-blobs.sqlite?mode=ro", uri=True)
    (blob,) = blobs.execute("SELECT data FROM blobs WHERE key = ?", (record_id,)).fetchone()
    return opened(data_key, blob[5:], header).decode()
"""
"""The operator's script: 30 lines, sqlite3 and AES-GCM, no custodian."""

as_root = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="a user per custodian needs root (CI runs as root); as another user the "
    "custodians are separate processes of that same user, which file modes cannot separate",
)


def _ingest(root: Path) -> str:
    def work(dep: Deployment) -> str:
        principal = dep.store.get_principal("svc-pl")
        receipt = dep.gateway.ingest(
            principal, subject_id="anna@example.pl", jurisdiction="PL", content=TEXT
        )
        return receipt.record_id

    return run_as_gateway(root, work)


def _as_owner_of(root: Path, attempt: Callable[[], Any]) -> tuple[str, Any]:
    """Run *attempt* in a child process that has become *root*'s owner: the gateway's user."""

    def child() -> Any:
        uid, gid = custody.owner_of(root)
        if uid != os.geteuid():
            custody.drop_privileges(uid, gid)
        return attempt()

    try:
        return ("ok", custody.in_child(child))
    except OSError as exc:
        return (type(exc).__name__, str(exc))


def _script(root: Path, record_id: str) -> Callable[[], str]:
    def run() -> str:
        scope: dict[str, Any] = {}
        exec(ATTACK, scope)
        return str(scope["steal"](str(root), record_id))

    return run


def _read(path: Path) -> Callable[[], int]:
    return lambda: len(path.read_bytes())


def test_the_script_reads_any_record_of_the_in_process_layout(walkable):
    # The layout every deployment had before: every key file beside the gateway's data,
    # all of it one user's, so the gateway's user is the one user there is.
    root = walkable / "dep"
    Deployment.init(root, jurisdictions=["PL", "VN"], custodians="in-process")
    record = _ingest(root)
    assert _as_owner_of(root, _script(root, record)) == ("ok", TEXT)
    assert _as_owner_of(root, _read(root / "principals" / "svc-pl.key")) == ("ok", 32)
    assert _as_owner_of(root, _read(root / "authorities" / "VN.key")) == ("ok", 32)


@as_root
def test_the_gateways_user_cannot_run_the_script_on_the_default_deployment(walkable):
    root = walkable / "dep"
    Deployment.init(root, jurisdictions=["PL", "VN"])  # the default, as ./run makes it
    record = _ingest(root)
    assert custody.owner_of(root)[0] == custody.ensure_user(custody.GATEWAY_USER)[0]

    kind, message = _as_owner_of(root, _script(root, record))
    assert kind == "PermissionError", message
    assert message.endswith(f"'{root}/custodians/PL/PL.key'")
    # Nor the subject keys, the authorities' keys or the principals' keys.
    for path in (
        root / "custodians" / "PL" / "PL.subjects.db",
        root / "authorities" / "VN" / "VN.key",
        root / "principals" / "svc-pl.key",
        root / "principals" / "authority-pl.key",
    ):
        assert _as_owner_of(root, _read(path))[0] == "PermissionError", path
    # What the gateway does need it still reads, and root still reads the record through
    # the custodian, against a logged allow.
    assert _as_owner_of(root, _read(root / "keys" / "log.key")) == ("ok", 32)


@as_root
def test_each_custodian_runs_as_its_own_user_and_the_gateway_as_its_own(walkable):
    root = walkable / "dep"
    Deployment.init(root, jurisdictions=["PL", "VN"])
    record = _ingest(root)

    def work(dep: Deployment) -> dict[str, Any]:
        assert dep.processes is None  # run_as_gateway started them before the drop
        custodians = dep.gateway.custodians
        principal = dep.store.get_principal("svc-pl")
        result = dep.gateway.access(principal, purpose="customer-support", record_ids=[record])
        return {
            "remote": sorted(c for c, v in custodians.items() if isinstance(v, RemoteCustodian)),
            "uid": os.geteuid(),
            "record": result.records[record],
        }

    seen = run_as_gateway(root, work)
    assert seen == {
        "remote": ["PL", "VN"],
        "uid": custody.ensure_user(custody.GATEWAY_USER)[0],
        "record": TEXT,
    }
    processes = custody.CustodianProcesses(root, ["PL", "VN"], _log_public(root))
    try:
        for code, child in processes._children.items():
            uid = os.stat(f"/proc/{child.pid}").st_uid
            assert uid == custody.ensure_user(custody.custodian_user(code))[0], code
    finally:
        processes.close()


@as_root
def test_the_demos_operator_step_holds_in_the_default_deployment(walkable):
    from sovra.demo import demo_keys, run_demo

    root = walkable / "dep"
    Deployment.init(root)
    keys = demo_keys(root)
    steps = run_as_gateway(root, lambda dep: run_demo(dep, synthetic=4, keys=keys))
    assert [s.number for s in steps if not s.ok] == []
    operator = steps[4]
    assert operator.outcome == "deny"
    assert "the gateway's user cannot open PL.key: permission denied" in operator.reason


def test_the_default_keeps_custodians_out_of_the_gateways_process(walkable):
    root = walkable / "dep"
    Deployment.init(root, jurisdictions=["PL"])
    dep = Deployment.open(root)
    try:
        assert isinstance(dep.gateway.custodians["PL"], RemoteCustodian)
        assert dep.processes is not None
        # Reached on a Unix-domain socket in a folder only the gateway's user enters.
        url = dep.processes.endpoints["PL"].url
        assert url.startswith("unix:")
        sock = Path(url.removeprefix("unix:"))
        assert stat.S_ISSOCK(os.lstat(sock).st_mode)
        assert stat.S_IMODE(os.lstat(sock.parent).st_mode) == 0o700
        assert os.lstat(sock.parent).st_uid == os.lstat(root).st_uid
        assert dep.gateway.custodians["PL"].status().jurisdiction == "PL"
    finally:
        dep.close()
    assert not sock.parent.exists()  # removed with the processes


def _log_public(root: Path) -> Any:
    from sovra.keys import load_ed25519

    return load_ed25519(root / "keys" / "log.key").public_key()


@as_root
def test_custody_folders_the_gateway_could_have_made_stop_the_start(walkable):
    root = walkable / "dep"
    Deployment.init(root, jurisdictions=["PL"])
    gateway = custody.ensure_user(custody.GATEWAY_USER)
    # The gateway's user owns the deployment folder: it can move custodians/ away and put
    # a folder of its own, with keys it made, in its place.
    (root / "custodians").rename(root / "custodians.moved")
    (root / "custodians").mkdir()
    os.chown(root / "custodians", *gateway)
    with pytest.raises(ConfigError) as caught:
        Deployment.open(root)
    assert caught.value.message.startswith(
        f"{root / 'custodians'} belongs to uid {gateway[0]}, not root"
    )
    (root / "custodians").rmdir()
    (root / "custodians.moved").rename(root / "custodians")
    # A custodian's own folder handed to the gateway's user.
    folder = root / "custodians" / "PL"
    for path in (folder, *folder.iterdir()):
        os.chown(path, *gateway)
    with pytest.raises(ConfigError) as caught:
        Deployment.open(root)
    assert caught.value.message == (
        f"{folder} belongs to the gateway's user, which could then read custodian PL's keys: "
        f"chown -R sovra-custodian-pl {folder}"
    )
