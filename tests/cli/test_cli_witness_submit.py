"""`sovra witness cosign --submit` and `sovra log verify --witness` against a live gateway.

Witnesses made with `sovra witness init` cosign a uvicorn-served gateway's checkpoints and
hand the cosignatures back; the gateway publishes them, and a client checks the quorum.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sovra.deployment import Deployment
from sovra.ledger import verify_cosignatures
from sovra.server import create_app
from sovra.server.background import running


@dataclass
class Gateway:
    url: str
    dep: Deployment
    witnesses: dict[str, tuple[Path, str]]

    def grow(self, count: int) -> None:
        log = self.dep.gateway.log
        start = log.size
        log.append_many([(b'{"kind":"test","n":%d}' % (start + n), ()) for n in range(count)])


@pytest.fixture
def gateway(sovra, template: Path, tmp_path: Path) -> Iterator[Gateway]:
    root = tmp_path / "deployment"
    shutil.copytree(template, root)
    dep = Deployment.open(root)
    log_vkey = dep.gateway.log.verifier_key
    dep.close()
    witnesses = {}
    for name in ("w1", "w2", "w3"):
        directory = tmp_path / name
        ran = sovra(
            "witness", "init", directory, "--name", f"witness.test/{name}", "--log", log_vkey
        )
        assert ran.code == 0, ran.err
        witnesses[name] = (directory, ran.out.strip())
    config = root / "sovra.toml"
    keys = ", ".join(f'"{witnesses[n][1]}"' for n in ("w1", "w2"))
    config.write_text(config.read_text().replace("keys = []\n", f"keys = [{keys}]\n", 1))
    dep = Deployment.open(root)
    try:
        with running(create_app(dep)) as url:
            yield Gateway(url, dep, witnesses)
    finally:
        dep.close()


def test_witnesses_submit_and_a_client_checks_the_quorum(sovra, gateway: Gateway) -> None:
    url, log_vkey = gateway.url, gateway.dep.gateway.log.verifier_key
    (w1, v1), (w2, v2) = gateway.witnesses["w1"], gateway.witnesses["w2"]
    trust = ["--url", url, "--vkey", log_vkey, "--witness", v1, "--witness", v2]
    gateway.grow(5)
    size = gateway.dep.gateway.log.size  # sovra init's entries and these five

    first = sovra("witness", "cosign", w1, "--url", url, "--submit")
    assert first.code == 0, first.err
    assert f"holds 1 of the 2 cosignatures it needs for size {size}" in first.message
    unmet = sovra("log", "verify", *trust)
    assert unmet.code == 1 and "no checkpoint is cosigned by 2 of the 2" in unmet.message

    second = sovra("witness", "cosign", w2, "--url", url, "--submit")
    assert second.code == 0, second.err
    assert "holds 2 of the 2" in second.message
    # What w2 printed is what the gateway now serves: both cosignatures on one note.
    cp, names = verify_cosignatures(second.out, log_vkey, [v1, v2], quorum=2)
    assert cp.size == size and sorted(names) == ["witness.test/w1", "witness.test/w2"]
    met = sovra("log", "verify", *trust, "--quorum", "2")
    assert met.code == 0, met.err
    assert f"checkpoint at size {size}: 2 trusted witnesses cosigned it, 2 required" in met.out

    # The log grows and only w1 cosigns: the client still gets the older, quorate one.
    gateway.grow(300)
    assert sovra("witness", "cosign", w1, "--url", url, "--submit").code == 0
    older = sovra("log", "verify", *trust)
    assert older.code == 0, older.err
    assert f"verified {size + 300} entries" in older.out
    assert f"at size {size}: 2 trusted witnesses" in older.out
    one = sovra("log", "verify", *trust, "--quorum", "1")
    assert one.code == 0 and "cosigned it, 1 required" in one.out


def test_refusals_on_both_sides(sovra, gateway: Gateway) -> None:
    url, log_vkey = gateway.url, gateway.dep.gateway.log.verifier_key
    (w1, v1), (w3, _) = gateway.witnesses["w1"], gateway.witnesses["w3"]
    gateway.grow(3)
    stranger = sovra("witness", "cosign", w3, "--url", url, "--submit")
    assert stranger.code == 4
    assert "not a witness this log collects cosignatures from" in stranger.message
    assert sovra("witness", "cosign", w1, "--url", url, "--submit").code == 0
    # w1 alone is no quorum for the gateway; the client's own quorum cannot be met either.
    assert sovra("log", "verify", "--url", url, "--witness", v1).code == 1
    too_many = sovra("log", "verify", "--url", url, "--witness", v1, "--quorum", "2")
    assert too_many.code == 1 and "quorum of 2 out of 1" in too_many.message
    alone = sovra("log", "verify", "--url", url, "--quorum", "1")
    assert alone.code == 1 and "--quorum needs at least one --witness key" in alone.message
    bad = sovra("log", "verify", "--url", url, "--witness", log_vkey)
    assert bad.code == 1 and "witness key" in bad.message
