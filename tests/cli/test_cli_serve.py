"""``sovra serve`` run as the console script: it serves a deployment, or says why not."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests import serving

from sovra.deployment import Deployment
from sovra.ledger import verify_checkpoint

SOVRA = Path(sys.executable).with_name("sovra")


def _put_note(sovra: Any, root: Path, url: str, folder: Path) -> Any:
    """``sovra put`` of a note with a phone number, as svc-pl, through the gateway at *url*."""
    note = folder / "note.txt"
    note.write_text("tel. +48 601 234 567", encoding="utf-8")
    return sovra(
        "put", "--as", "svc-pl", "--subject", "s1", "--jurisdiction", "PL", note,
        "-d", root, "--url", url,
    )  # fmt: skip


def test_serve_answers_the_command_and_stops_cleanly(sovra, template, tmp_path, free_port):
    root = tmp_path / "deployment"
    shutil.copytree(template, root)
    url = f"http://127.0.0.1:{free_port}"
    output = tmp_path / "serve.log"
    proc = serving.serve(root, free_port, workers=None, output=output)
    try:
        serving.wait_for(url, proc)
        put = _put_note(sovra, root, url, tmp_path)
        assert put.code == 0, put.err
        checkpoint = sovra("log", "checkpoint", "--url", url)
        assert checkpoint.code == 0, checkpoint.err
    finally:
        printed = serving.stop(proc, output)
    assert printed.startswith(f"sovra serving {root} at {url}")
    dep = Deployment.open(root)
    try:
        signed = verify_checkpoint(checkpoint.out, dep.gateway.log.verifier_key)
        assert signed.size == dep.gateway.log.size  # sovra init's entries and the note's
        assert dep.store.count_records() == 1
    finally:
        dep.close()


def test_serve_without_a_deployment_says_how_to_make_one(sovra_script, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    ran = sovra_script("serve", empty, "--port", "1")
    assert ran.code == 1
    assert ran.out == ""
    assert ran.message == (
        f"error config: {empty / 'sovra.toml'} not found: create a deployment with `sovra init DIR`"
    )


def test_python_dash_m_runs_the_same_command(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "sovra.cli", "serve", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "create a deployment with `sovra init DIR`" in proc.stderr


def _children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task")
    found: list[int] = []
    for task in tasks.iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def test_serve_starts_a_custodian_process_per_jurisdiction_and_stops_them(
    sovra, walkable, free_port
):
    root = walkable / "deployment"
    Deployment.init(root, jurisdictions=["PL", "VN"], origin="sovra.test/serve")  # the default
    url = f"http://127.0.0.1:{free_port}"
    proc = serving.serve(root, free_port, workers=None)
    try:
        serving.wait_for(url, proc, seconds=120)
        # python -m sovra.cli custodian serve --jurisdiction J ... (the others are workers)
        children = {c: Path(f"/proc/{c}/cmdline").read_bytes() for c in _children(proc.pid)}
        custodians = [c for c, line in children.items() if b"\0custodian\0" in line]
        argv = [children[c].split(b"\0") for c in custodians]
        assert sorted(a[6] for a in argv) == [b"PL", b"VN"]
        if os.geteuid() == 0:  # the gateway and each custodian as the user init made
            owners = {os.stat(f"/proc/{p}").st_uid for p in custodians}
            assert os.stat(f"/proc/{proc.pid}").st_uid == pwd.getpwnam("sovra-gateway").pw_uid
            assert owners == {pwd.getpwnam(f"sovra-custodian-{j}").pw_uid for j in ("pl", "vn")}
        put = _put_note(sovra, root, url, root.parent)
        assert put.code == 0, put.err
        record = put.json()["record_id"]
        get = sovra(
            "get",
            "--as",
            "svc-pl",
            "--purpose",
            "customer-support",
            "--record",
            record,
            "-d",
            root,
            "--url",
            url,
        )
        assert get.code == 0, get.err
        assert get.json()["records"][record] == "tel. +48 601 234 567"
        # VN's authority signs a grant with its key from its own folder (the command
        # line's user reads it; the gateway's could not).
        request, grant = root.parent / "request.json", root.parent / "grant.json"
        asked = sovra(
            "grant", "request", "--approver", "VN", "--grantee", "authority-pl",
            "--grantee-jurisdiction", "PL", "--subject", "lan@example.vn", "--legal-basis",
            "MLAT 2026/1", "--out", request, "-d", root, "--url", url,
        )  # fmt: skip
        assert asked.code == 0, asked.err
        approved = sovra("grant", "approve", request, "--out", grant, "-d", root, "--url", url)
        assert approved.code == 0, approved.err
    finally:
        serving.stop(proc)
    for pid in custodians:  # each saw the end of its input, stopped, and was waited for
        assert not Path(f"/proc/{pid}").exists()
