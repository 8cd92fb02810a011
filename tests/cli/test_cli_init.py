"""``sovra init``: what it writes, with which modes, and what it refuses to touch."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from sovra.deployment import Deployment

PRINCIPALS = {"svc-pl", "svc-vn", "authority-pl", "authority-vn", "operator", "auditor"}


def _files(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under *root*: relative path -> (SHA-256 of its bytes, its mode)."""
    return {
        str(p.relative_to(root)): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            stat.S_IMODE(p.stat().st_mode),
        )
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(
    ("mode", "holders"),
    [
        # The default: each custodian and authority key in a folder of its own.
        ((), ("custodians/{j}/{j}.key", "authorities/{j}/{j}.key")),
        (("--custodians", "in-process"), ("custodians/{j}.key", "authorities/{j}.key")),
    ],
    ids=["separate", "in-process"],
)
def test_init_writes_a_complete_deployment_with_private_key_files(
    sovra_script, tmp_path, mode, holders
):
    root = tmp_path / "dep"
    ran = sovra_script(
        "init", root, "--jurisdictions", "PL,VN", "--origin", "sovra.test/init", *mode
    )
    assert ran.code == 0, ran.err
    assert ran.out.splitlines() == [
        f"created deployment in {root} for PL, VN",
        f"edit {root / 'sovra.toml'}, then: sovra serve {root}",
    ]
    # As root, under a folder other users cannot enter (pytest's), the custodians share
    # root's user, and init says so; otherwise it says nothing.
    assert ran.err == "" or ran.message.startswith(
        "warning the custodians run as separate processes of root"
    ), ran.err

    files = _files(root)
    assert "sovra.toml" in files
    assert "sovra.db" in files
    secrets = {
        "keys/log.key",
        "keys/commitment.secret",
        *(h.format(j=j) for h in holders for j in ("PL", "VN")),
        *(f"principals/{p}.key" for p in PRINCIPALS),
    }
    assert {f for f in files if f.endswith((".key", ".secret"))} == secrets
    for name in sorted(secrets):
        assert files[name][1] == 0o600, f"{name} has mode {files[name][1]:04o}"
    for public in ("authorities/PL.pub", "authorities/VN.pub"):
        assert len(bytes.fromhex((root / public).read_text())) == 32

    dep = Deployment.open(root)
    try:
        assert dep.config.origin == "sovra.test/init"
        assert sorted(dep.config.jurisdictions) == ["PL", "VN"]
        assert {p.id for p in dep.store.list_principals()} == PRINCIPALS
    finally:
        dep.close()


def test_second_init_is_refused_and_changes_nothing(sovra, tmp_path):
    root = tmp_path / "dep"
    assert sovra("init", root, "--jurisdictions", "PL", "--custodians", "in-process").code == 0
    before = _files(root)

    ran = sovra("init", root, "--jurisdictions", "PL,VN", "--origin", "other")
    assert ran.code == 1
    assert ran.out == ""
    assert ran.message == f"error config: {root} already holds a deployment (sovra.toml exists)"
    assert _files(root) == before


@pytest.mark.parametrize(
    ("codes", "message"),
    [
        ("pl", "jurisdiction must be two upper-case letters (ISO 3166-1), got 'pl'"),
        ("PL,POL", "jurisdiction must be two upper-case letters (ISO 3166-1), got 'POL'"),
        (" , ", "a deployment needs at least one jurisdiction"),
    ],
)
def test_bad_jurisdictions_are_refused_before_anything_is_written(sovra, tmp_path, codes, message):
    root = tmp_path / "dep"
    ran = sovra("init", root, "--jurisdictions", codes)
    assert ran.code == 1
    assert ran.message.startswith("error ")
    assert message in ran.message
    assert not root.exists()


def test_init_over_a_file_is_an_error_not_a_traceback(sovra, tmp_path):
    target = tmp_path / "a-file"
    target.write_text("not a directory")
    ran = sovra("init", target)
    assert ran.code == 1
    assert ran.message.startswith(f"error config: cannot create a deployment in {target}: ")
    assert target.read_text() == "not a directory"
