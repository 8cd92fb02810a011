"""``sovra custodian witnesses init|add|check``: the custodian's own witness policy file.

The file is the one the custodian reads when it starts (``<J>.witnesses`` beside its key
file, :class:`sovra.keys.witnessed.ReleasePolicy`); the checkpoints checked here are the
deployment's own log's, signed with its real key and cosigned by real witnesses.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.custody import custodian_key_path
from sovra.deployment import Deployment
from sovra.errors import Denied
from sovra.keys.witnessed import ReleasePolicy, policy_path
from sovra.ledger import CosignatureSigner, NoteSigner, Witness
from sovra_verify.note import sign_note

WITNESS_KEYS = [Ed25519PrivateKey.generate() for _ in range(3)]


def _signer(n: int, clock: Callable[[], int] | None = None) -> CosignatureSigner:
    name = f"witness.test/w{n}"
    key = WITNESS_KEYS[n]
    return CosignatureSigner(name, key) if clock is None else CosignatureSigner(name, key, clock)


VKEYS = [_signer(n).vkey for n in range(3)]


@pytest.fixture
def dep(template: Path, tmp_path: Path) -> Path:
    root = tmp_path / "deployment"
    shutil.copytree(template, root)
    return root


def _file(dep: Path) -> Path:
    return policy_path(custodian_key_path(dep, "PL"))


def _init(sovra, dep: Path, *args: str):
    return sovra("custodian", "witnesses", "init", "-j", "PL", "-d", dep, *args)


def _cosigned(dep: Path, signers: list[CosignatureSigner], *, log_key: Path | None = None) -> str:
    """The deployment log's checkpoint, cosigned by *signers* (each checking it first)."""
    opened = Deployment.open(dep)
    try:
        log = opened.gateway.log
        note = log.checkpoint()
        if log_key is not None:  # the same checkpoint text, signed by another key
            text = note[: note.rfind("\n\n") + 1]
            note = sign_note(text, [NoteSigner(log.origin, Ed25519PrivateKey.generate())])
        vkey = log.verifier_key
    finally:
        opened.close()
    for signer in signers:
        # A witness checks the log's signature first; over another key's, sign directly.
        note = (
            Witness(signer, [vkey]).add_checkpoint(note, 0, [])
            if log_key is None
            else signer.cosign(note)
        )
    return note


def test_init_writes_the_file_the_custodian_reads(sovra, dep: Path) -> None:
    ran = _init(sovra, dep, "--witness", VKEYS[0], "--witness", VKEYS[1], "--quorum", "2",
                "--max-age", "90", "--json")  # fmt: skip
    assert ran.code == 0, ran.err
    path = _file(dep)
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    assert os.lstat(path).st_uid == os.lstat(custodian_key_path(dep, "PL")).st_uid
    policy = ReleasePolicy.load(custodian_key_path(dep, "PL"))
    assert policy is not None and policy.max_age_ms == 90_000
    assert [w.verifier.vkey for w in policy.witnesses.witnesses] == VKEYS[:2]
    assert policy.witnesses.satisfied_by(["w1", "w2"])
    assert not policy.witnesses.satisfied_by(["w1"])
    report = ran.json()
    assert report["quorum"] == "2 of (w1, w2)" and report["minimum"] == 2
    assert report["max_checkpoint_age_s"] == 90 and report["checkpoint"] is None
    assert [w["vkey"] for w in report["witnesses"]] == VKEYS[:2]
    # The deployment's custodian reads it: an allow with no witnessed checkpoint (this
    # gateway gets none) releases nothing.
    opened = Deployment.open(dep)
    try:
        gw = opened.gateway
        svc = opened.store.get_principal("svc-pl")
        record = gw.ingest(svc, subject_id="s-1", jurisdiction="PL", content="Umowa nr 7.")
        with pytest.raises(Denied, match="not witnessed: the allow came without a witnessed"):
            gw.access(svc, purpose="customer-support", record_ids=[record.record_id])
    finally:
        opened.close()


def test_add_extends_a_k_of_n_policy(sovra, dep: Path) -> None:
    assert _init(sovra, dep, "--witness", VKEYS[0], "--quorum", "1").code == 0
    more = ["--witness", VKEYS[1], "--witness", VKEYS[2], "--quorum", "2", "--json"]
    ran = sovra("custodian", "witnesses", "add", "-j", "PL", "-d", dep, *more)
    assert ran.code == 0, ran.err
    assert ran.json()["quorum"] == "2 of (w1, w2, w3)"
    policy = ReleasePolicy.load(custodian_key_path(dep, "PL"))
    assert policy is not None
    assert [w.verifier.vkey for w in policy.witnesses.witnesses] == VKEYS
    assert policy.max_age_ms == 60_000  # kept


def test_init_from_a_tlog_policy_file(sovra, dep: Path, tmp_path: Path) -> None:
    text = (
        f"witness a {VKEYS[0]}\nwitness b {VKEYS[1]}\nwitness c {VKEYS[2]}\n"
        "group bc 1 b c\ngroup need 2 a bc\nquorum need\n"
    )
    (tmp_path / "policy").write_text(text)
    ran = _init(sovra, dep, "--policy", tmp_path / "policy", "--json")
    assert ran.code == 0, ran.err
    assert ran.json()["quorum"] == "2 of (a, 1 of (b, c))"
    # Nested groups: `add` refuses to guess where a witness goes.
    added = sovra("custodian", "witnesses", "add", "-j", "PL", "-d", dep, "--witness", VKEYS[0])
    assert added.code == 1 and "not k of its witnesses" in added.message


def _bad_inputs(tmp_path: Path, log_vkey: str) -> list[tuple[str, list[str], int, str]]:
    files = {
        "unknown-keyword": "witnesses a b\nquorum a\n",
        "quorum-none": f"witness a {VKEYS[0]}\nquorum none\n",
        "other-log": f"log {NoteSigner('other.test/log', Ed25519PrivateKey.generate()).vkey}\n"
        f"witness a {VKEYS[0]}\nquorum a\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return [
        ("log key as witness", ["--witness", log_vkey], 1, "--witness 1 ("),
        ("not base64", ["--witness", VKEYS[0] + "!"], 1, "not valid base64"),
        ("wrong key id", ["--witness", "witness.test/w0+00000000+" + VKEYS[0].split("+", 2)[2]], 1,
         "does not match its name and key"),
        ("quorum above n", ["--witness", VKEYS[0], "--quorum", "2"], 1,
         "a quorum of 2 out of 1 witnesses is not possible"),
        ("quorum 0", ["--witness", VKEYS[0], "--quorum", "0"], 1, "a quorum of 0 out of 1"),
        ("one key twice", ["--witness", VKEYS[0], "--witness", VKEYS[0]], 1, "another witness"),
        ("age 0", ["--witness", VKEYS[0], "--max-age", "0"], 1, "--max-age is seconds above 0"),
        ("age over a week", ["--witness", VKEYS[0], "--max-age", "700000"], 1,
         "the checkpoint age limit must be 1 ms..604800 s"),
        ("no witnesses", [], 2, "give the witnesses"),
        ("both forms", ["--witness", VKEYS[0], "--policy", str(tmp_path / "quorum-none")], 2,
         "not both"),
        ("policy missing", ["--policy", str(tmp_path / "absent")], 1,
         "cannot read the witness policy"),
        ("policy keyword", ["--policy", str(tmp_path / "unknown-keyword")], 1,
         "policy line 1: unknown keyword 'witnesses'"),
        ("policy quorum none", ["--policy", str(tmp_path / "quorum-none")], 1,
         "needs a quorum, not 'none'"),
        ("policy of another log", ["--policy", str(tmp_path / "other-log")], 1,
         "this custodian's log is not one"),
    ]  # fmt: skip


@pytest.mark.parametrize("existing", [False, True], ids=["no-file", "a-file"])
def test_every_malformed_input_is_refused_and_the_file_untouched(
    sovra, dep: Path, tmp_path: Path, existing: bool
) -> None:
    path = _file(dep)
    if existing:
        assert _init(sovra, dep, "--witness", VKEYS[2]).code == 0
    before = path.read_bytes() if existing else None
    log_vkey = (dep / "keys" / "log.vkey").read_text().strip()
    for case, args, code, message in _bad_inputs(tmp_path, log_vkey):
        ran = _init(sovra, dep, *args, "--force")
        assert (ran.code, message in ran.message) == (code, True), (case, ran.message)
        assert (path.read_bytes() if path.exists() else None) == before, case
    # Not replaced without --force, whatever it holds.
    if existing:
        again = _init(sovra, dep, "--witness", VKEYS[0])
        assert again.code == 1 and "already exists; give --force" in again.message
        assert path.read_bytes() == before


def test_add_refuses_what_would_break_the_policy(sovra, dep: Path) -> None:
    def add(*args: str):
        return sovra("custodian", "witnesses", "add", "-j", "PL", "-d", dep, *args)

    none_yet = add("--witness", VKEYS[0])
    assert none_yet.code == 1 and "has no witness policy yet" in none_yet.message
    assert not _file(dep).exists()
    assert _init(sovra, dep, "--witness", VKEYS[0], "--witness", VKEYS[1]).code == 0
    before = _file(dep).read_bytes()
    for args, code, message in [
        (["--witness", VKEYS[1]], 1, "--witness 1: that key is witness w2's already"),
        (["--witness", VKEYS[2], "--witness", VKEYS[2]], 1, "--witness 2: that key is witness w3"),
        (["--quorum", "3"], 1, "a quorum of 3 out of 2 witnesses is not possible"),
        (["--witness", "nope"], 1, "--witness 1 ('nope'): a witness key has three parts"),
        (["--max-age", "-5"], 1, "--max-age is seconds above 0"),
        ([], 2, "nothing to change"),
    ]:
        ran = add(*args)
        assert (ran.code, message in ran.message) == (code, True), (args, ran.message)
        assert _file(dep).read_bytes() == before


def test_a_custodian_elsewhere_or_unknown_is_named(sovra, dep: Path) -> None:
    (dep / "custodians" / "DE.url").write_text("https://custodian-de.example/\n")
    for code, message in [
        ("DE", "custodian DE runs on a host of its own"),
        ("XX", "no custodian XX in"),
        ("pl!", "jurisdiction"),
    ]:
        ran = sovra("custodian", "witnesses", "init", "-j", code, "-d", dep, "--witness", VKEYS[0])
        assert ran.code == 1 and message in ran.message, ran.message


def test_check_says_whether_a_checkpoint_meets_the_policy(sovra, dep: Path, tmp_path: Path) -> None:
    every = [arg for v in VKEYS for arg in ("--witness", v)]
    assert _init(sovra, dep, *every, "--quorum", "2").code == 0

    def check(note: str):
        (tmp_path / "cp").write_text(note)
        return sovra("custodian", "witnesses", "check", "-j", "PL", "-d", dep,
                     "--checkpoint", tmp_path / "cp", "--json")  # fmt: skip

    met = check(_cosigned(dep, [_signer(0), _signer(2)]))
    assert met.code == 0, met.err
    verdict = met.json()["checkpoint"]
    assert verdict["satisfied"] and set(verdict["cosigned"]) == {"w1", "w3"}
    assert verdict["origin"] == (dep / "keys" / "log.vkey").read_text().split("+")[0]

    def hour_ago() -> int:
        return int(time.time()) - 3600

    outsider = CosignatureSigner("witness.test/x", Ed25519PrivateKey.generate())
    for note, reason in [
        (
            _cosigned(dep, [_signer(1)]),
            "cosigned by 1 of its witnesses (witness.test/w1), short of",
        ),
        (_cosigned(dep, [_signer(0, hour_ago), _signer(1, hour_ago)]), "is stale: 0 of its 2"),
        (_cosigned(dep, [_signer(0), outsider]), "not a witness it knows"),
        (_cosigned(dep, [_signer(0), _signer(1)], log_key=tmp_path), "not signed by the log key"),
        ("not a checkpoint\n", "the checkpoint is malformed"),
    ]:
        ran = check(note)
        assert ran.code == 3, (reason, ran.out, ran.err)
        got = ran.json()["checkpoint"]
        assert not got["satisfied"] and reason in got["reason"], got
    text = sovra(
        "custodian", "witnesses", "check", "-j", "PL", "-d", dep, "--checkpoint", tmp_path / "cp"
    )
    assert text.code == 3 and "does not meet it: the checkpoint is malformed" in " ".join(
        text.out.split()
    )


def test_check_refuses_what_the_custodian_would_not_start_with(
    sovra, dep: Path, tmp_path: Path
) -> None:
    def check(*args: str | Path):
        return sovra("custodian", "witnesses", "check", "-j", "PL", "-d", dep, *args)

    missing = check()
    assert missing.code == 1 and "has no witness policy" in missing.message
    _file(dep).write_text('{"type": "sovra-witnessed-release", "format": 1}')
    broken = check()
    assert broken.code == 1 and str(_file(dep)) in broken.message and "fields" in broken.message
    assert _init(sovra, dep, "--witness", VKEYS[0], "--force").code == 0
    absent = check("--checkpoint", tmp_path / "absent")
    assert absent.code == 1 and "cannot read the checkpoint" in absent.message
    both = check("--checkpoint", tmp_path / "absent", "--url", "http://127.0.0.1:1")
    assert both.code == 2


def test_check_against_a_gateway(sovra, dep: Path, live, dead_url: str) -> None:
    assert _init(sovra, dep, "--witness", VKEYS[0]).code == 0
    unreachable = sovra("custodian", "witnesses", "check", "-j", "PL", "-d", dep, "--url", dead_url)
    assert unreachable.code == 5, unreachable.message
    # The live gateway (another deployment, no witnesses) serves no cosigned checkpoint.
    ran = sovra("custodian", "witnesses", "check", "-j", "PL", "-d", live.root, "--url", live.url)
    assert ran.code == 1 and "has no witness policy" in ran.message
    shutil.copy(_file(dep), _file(live.root))
    try:
        ran = sovra("custodian", "witnesses", "check", "-j", "PL", "-d", live.root,
                    "--url", live.url, "--json")  # fmt: skip
    finally:
        _file(live.root).unlink()
    assert ran.code == 3, ran.err
    assert ran.json()["checkpoint"]["reason"].startswith("no cosigned checkpoint")
    data = json.loads(ran.out)
    assert data["jurisdiction"] == "PL" and data["minimum"] == 1


def test_doctor_checks_the_policy_as_it_checks_the_key(sovra, dep: Path) -> None:
    """Whoever can write the file chooses whose cosignatures release keys: doctor names
    one open to others, a link, and one the custodian would not start with."""
    assert _init(sovra, dep, "--witness", VKEYS[0], "--quorum", "1").code == 0
    path = _file(dep)
    assert sovra("doctor", dep).code == 0

    path.chmod(0o666)
    ran = sovra("doctor", dep)
    assert ran.code == 1
    assert f"problem: {path}: has mode 0666, open to group or others; fix: chmod 600 {path}" in (
        ran.out.splitlines()
    )

    path.chmod(0o600)
    kept = path.read_bytes()
    path.write_bytes(b'{"type": "sovra-witnessed-release"}')
    ran = sovra("doctor", dep)
    assert ran.code == 1
    (line,) = [x for x in ran.out.splitlines() if x.startswith(f"problem: {path}:")]
    assert "is not a witness policy custodian PL can start with (a witness policy has the" in line
    fix = "fix: write it again with `sovra custodian witnesses init -j PL --force ...`"
    assert line.endswith(fix)
    assert path.read_bytes() == b'{"type": "sovra-witnessed-release"}'  # doctor changes nothing

    path.write_bytes(kept)
    elsewhere = dep.parent / "policy-elsewhere"
    path.rename(elsewhere)
    path.symlink_to(elsewhere)
    ran = sovra("doctor", dep)
    assert ran.code == 1
    link = f"problem: {path}: is a link; fix: replace it with the file itself"
    assert link in ran.out.splitlines()
