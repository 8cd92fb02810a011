"""``sovra custodian serve`` on a custodian's host: its folder and the log's verifier key, never
the log's signing key (``keys/log.key``)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from serving import SOVRA, free_port
from sovra.cli import app
from sovra.deployment import LOG_VKEY, Deployment
from sovra.errors import ConfigError, Denied, Unavailable
from sovra.keys import generate_ed25519, read_secret
from sovra.keys.remote import RemoteCustodian

NOTE = "Anna Kowalska, tel. +48 601 234 567"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A deployment with one Polish record (custodians beside the gateway), and its id."""
    root = tmp_path_factory.mktemp("custodian-serve") / "deployment"
    Deployment.init(root, jurisdictions=["PL"], origin="sovra.test/vkey", custodians="in-process")
    dep = Deployment.open(root)
    try:
        svc = dep.store.get_principal("svc-pl")
        rid = dep.gateway.ingest(
            svc, subject_id="anna@example.pl", jurisdiction="PL", content=NOTE
        ).record_id
    finally:
        dep.close()
    return root, rid


def _custodian_host(root: Path, host: Path) -> None:
    """What a custodian's host holds of *root*: the custodian's key file and subject keys."""
    (host / "custodians").mkdir(parents=True)
    for name in ("PL.key", "PL.subjects.db"):
        shutil.copy2(root / "custodians" / name, host / "custodians" / name)


@contextmanager
def serving(host: Path, *extra: str) -> Iterator[int]:
    """``sovra custodian serve -j PL -d HOST`` on a free port, once it answers its health
    check; the port."""
    port = free_port()
    with (host / "serve.log").open("ab") as sink:
        proc = subprocess.Popen(
            [SOVRA, "custodian", "serve", "-j", "PL", "-d", host, "--port", str(port), *extra],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                token = read_secret(host / "custodians" / "PL.token", expected_len=32)
                with RemoteCustodian(f"http://127.0.0.1:{port}", "PL", token) as pl:
                    assert pl.health()["ekmFleetDetails"][0]["healthStatus"] == "ACTIVE"
                break
            except (Unavailable, ConfigError):
                if proc.poll() is not None:
                    raise AssertionError((host / "serve.log").read_text()) from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def gateway(template: tuple[Path, str], tmp_path: Path) -> tuple[Path, Path, str]:
    """A copy of the deployment whose PL custodian is a service on another host's files:
    (gateway folder, custodian host folder, record id); the test starts the service."""
    root, rid = template
    gw = tmp_path / "gateway"
    shutil.copytree(root, gw)
    host = tmp_path / "custodian-host"
    _custodian_host(root, host)
    # The gateway keeps no custodian keys of its own: it calls the service.
    for name in ("PL.key", "PL.subjects.db"):
        (gw / "custodians" / name).unlink()
    return gw, host, rid


def _read_through(gw: Path, host: Path, port: int, rid: str) -> str:
    (gw / "custodians" / "PL.url").write_text(f"http://127.0.0.1:{port}\n")
    token = gw / "custodians" / "PL.token"
    token.write_bytes(read_secret(host / "custodians" / "PL.token", expected_len=32))
    token.chmod(0o600)
    dep = Deployment.open(gw)
    try:
        svc = dep.store.get_principal("svc-pl")
        return dep.gateway.access(svc, purpose="customer-support", record_ids=[rid]).records[rid]
    finally:
        dep.close()


def test_a_custodian_host_without_the_log_signing_key_serves_reads(gateway):
    gw, host, rid = gateway
    vkey = host / "log.vkey"
    shutil.copy2(gw / LOG_VKEY, vkey)
    assert not (host / "keys").exists()  # no keys/log.key, no keys/ at all
    with serving(host, "--log-vkey", str(vkey)) as port:
        # The service checks the gateway's receipts with that key: the read goes through.
        assert _read_through(gw, host, port, rid) == NOTE
    assert "warning" not in (host / "serve.log").read_text()


def test_keys_log_vkey_is_the_default_and_the_private_key_is_not_read(gateway):
    gw, host, rid = gateway
    (host / "keys").mkdir()
    shutil.copy2(gw / LOG_VKEY, host / LOG_VKEY)
    # A signing key that is not the log's: were it read, no receipt would check.
    generate_ed25519(host / "keys" / "log.key")
    with serving(host) as port:
        assert _read_through(gw, host, port, rid) == NOTE


def test_a_verifier_key_of_another_log_releases_nothing(gateway, tmp_path):
    gw, host, rid = gateway
    other = tmp_path / "other"
    Deployment.init(other, jurisdictions=["PL"], origin="sovra.test/vkey", custodians="in-process")
    foreign = (other / LOG_VKEY).read_text().strip()
    with (
        serving(host, "--log-vkey", foreign) as port,
        pytest.raises(Denied, match="receipt signature is not the log's"),
    ):
        _read_through(gw, host, port, rid)


def test_without_a_verifier_key_the_service_does_not_start(template, tmp_path):
    root, _ = template
    host = tmp_path / "host"
    _custodian_host(root, host)
    result = CliRunner().invoke(app, ["custodian", "serve", "-j", "PL", "-d", str(host)])
    assert result.exit_code == 1
    assert "no log verifier key: give --log-vkey" in " ".join(result.output.split())
    assert not (host / "custodians" / "PL.token").exists()


def test_a_verifier_key_naming_another_log_is_refused(template, tmp_path):
    root, _ = template
    host = tmp_path / "host"
    _custodian_host(root, host)
    shutil.copy2(root / "sovra.toml", host / "sovra.toml")
    other = tmp_path / "other"
    Deployment.init(
        other, jurisdictions=["PL"], origin="sovra.test/another", custodians="in-process"
    )
    result = CliRunner().invoke(
        app,
        ["custodian", "serve", "-j", "PL", "-d", str(host), "--log-vkey", str(other / LOG_VKEY)],
    )
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "names the log 'sovra.test/another', not this deployment's origin" in text
    assert not (host / "custodians" / "PL.token").exists()


def test_an_old_deployment_without_log_vkey_falls_back_with_a_warning(template, tmp_path):
    root, _ = template
    host = tmp_path / "host"
    _custodian_host(root, host)
    (host / "keys").mkdir()
    shutil.copy2(root / "keys" / "log.key", host / "keys" / "log.key")
    result = CliRunner().invoke(app, ["keys", "transport-key", "-j", "PL", "-d", str(host)])
    assert result.exit_code == 0, result.output
    assert '"sovra-transport-keys"' in result.stdout
    assert "reading the log's public key from its signing key" in " ".join(result.stderr.split())
