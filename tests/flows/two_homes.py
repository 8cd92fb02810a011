"""Shared parts of the tests of subjects of two countries: Anna, Polish and German, in a
deployment where PL and DE both allow the region eu-central-de, with both custodians
in-process or as custodian services over HTTP (``sovra custodian serve``'s app, on loopback).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from sovra.deployment import Deployment
from sovra.keys import LocalCustodian, load_ed25519
from sovra.keys.remote import RemoteCustodian
from sovra.model import LogEntry, Role
from sovra.server.custodian import create_custodian_app

__all__ = ["ANNA", "TEXT", "TOKEN", "Two", "configure", "ingest", "read", "two"]

ANNA = "anna@example.eu"
TEXT = "Anna Kowalska, tel. +48 601 234 567, anna@example.eu"
TOKEN = b"t" * 32


@dataclass
class Two:
    """A deployment where PL and DE both allow the region eu-central-de."""

    dep: Deployment
    served: dict[str, LocalCustodian]  # the custodians that answer, by jurisdiction
    clients: list[RemoteCustodian]  # closed at the end

    @property
    def gw(self) -> Any:
        return self.dep.gateway

    def principal(self, pid: str) -> Any:
        return self.dep.store.get_principal(pid)

    def entry(self, index: int) -> LogEntry:
        return LogEntry.from_bytes(self.gw.log.entry(index))

    def entries(self, kind: str) -> list[LogEntry]:
        out = [self.entry(i) for i in range(self.gw.log.size)]
        return [e for e in out if e.kind == kind]

    def released(self, code: str) -> int:
        return sum(e.outcome == "released" for e in self.served[code].journal())


def configure(root: Path) -> None:
    toml = root / "sovra.toml"
    lines = toml.read_text().splitlines()
    section = ""
    for n, line in enumerate(lines):
        if line.startswith("["):
            section = line
        elif section == "[jurisdictions.PL]" and line.startswith("regions ="):
            lines[n] = 'regions = ["eu-central-pl", "eu-central-de"]'
        # DE redacts phone numbers, PL keeps them: the stricter rule must win.
        elif section == "[jurisdictions.DE.minimisation]" and line.startswith("phone ="):
            lines[n] = 'phone = "redact"'
        elif section == "[jurisdictions.DE]" and line.startswith("purposes ="):
            lines[n] = line.replace("]", ', "research"]')
    text = "\n".join(lines) + "\n"
    assert text.count("eu-central-de") >= 2 and 'phone = "redact"' in text
    toml.write_text(text)


def _serve(custodian: LocalCustodian) -> tuple[uvicorn.Server, threading.Thread, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_custodian_app(custodian, token=TOKEN)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the custodian service did not start"
    return server, thread, f"http://127.0.0.1:{port}"


def _stop(server: uvicorn.Server, thread: threading.Thread) -> None:
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(params=["in-process", "services"])
def two(
    template: Path, tmp_path: Path, clock: Any, request: pytest.FixtureRequest
) -> Iterator[Two]:
    root = tmp_path / "deployment"
    shutil.copytree(template, root)
    configure(root)
    dep = Deployment.open(root, clock=clock)
    anna = dep.gateway.commitment("PL", ANNA)
    dep.register("subject-anna", "PL", Role.SUBJECT, subject=anna)
    stops = []
    clients: list[RemoteCustodian] = []
    try:
        if request.param == "in-process":
            served = {j: dep.gateway.custodians[j] for j in ("PL", "DE")}
        else:
            log_public = load_ed25519(root / "keys" / "log.key").public_key()
            served, remotes = {}, {}
            for j in ("PL", "DE"):
                served[j] = LocalCustodian.open(
                    root / "custodians" / f"{j}.key",
                    j,
                    log_public,
                    clock=lambda: int(clock() * 1000),
                )
                server, thread, url = _serve(served[j])
                stops.append((server, thread, served[j]))
                remotes[j] = RemoteCustodian(url, j, TOKEN)
            dep.gateway.custodians = {**dep.gateway.custodians, **remotes}
            clients.extend(remotes.values())
        yield Two(dep, served, clients)  # type: ignore[arg-type]
    finally:
        for c in clients:
            c.close()
        dep.close()
        for server, thread, custodian in stops:
            _stop(server, thread)
            custodian.close()


def ingest(two: Two, content: str = TEXT, **kw: Any) -> str:
    receipt = two.gw.ingest(
        two.principal("svc-pl"),
        subject_id=ANNA,
        jurisdiction="PL",
        content=content,
        other_homes=kw.pop("other_homes", ["DE"]),
        **kw,
    )
    return receipt.record_id


def read(two: Two, rid: str, who: str = "subject-anna", **kw: Any) -> Any:
    if who == "subject-anna":  # her right of access
        kw = {"purpose": "subject-access", "justification": "subject-request", **kw}
    kw.setdefault("purpose", "customer-support")
    return two.gw.access(two.principal(who), record_ids=[rid], **kw)
