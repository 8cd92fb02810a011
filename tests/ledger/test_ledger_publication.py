"""The log stays published: checkpoints after each batch and on a schedule, and an audit
that covers the newest one, says how far it got, and names an altered entry by its index.

The end-to-end cases run a real deployment behind uvicorn on a loopback port and the real
``sovra log verify`` command against it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sovra.cli import app as cli
from sovra.client import Client
from sovra.deployment import Deployment
from sovra.errors import ConfigError
from sovra.ledger import NoteSigner, SQLiteLogStorage, TransparencyLog, verify_checkpoint
from sovra.ledger.storage import LogStorage, MemoryLogStorage
from sovra.server import create_app
from sovra.server.background import publishing, running

ORIGIN = "sovra.test/publication"


def _signer() -> NoteSigner:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return NoteSigner(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


ORIGIN_VKEY = _signer().vkey


def _published_size(log: TransparencyLog) -> int:
    note = log.latest_checkpoint()
    return -1 if note is None else verify_checkpoint(note, log.verifier_key).size


def _verify(url: str) -> tuple[int, str]:
    ran = CliRunner().invoke(cli, ["log", "verify", "--url", url])
    if ran.exception is not None and not isinstance(ran.exception, SystemExit):
        raise AssertionError("sovra log verify crashed") from ran.exception
    return ran.exit_code, " ".join((ran.stdout + ran.stderr).split())


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    """Wait (bounded, generously: the machine may be loaded) until *condition* holds."""
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.01)


# -- the log publishes after every batch -----------------------------------------------------


def test_a_checkpoint_is_published_after_every_batch(storage: LogStorage) -> None:
    log = TransparencyLog(storage, _signer(), ORIGIN, publish_after_batch=True)
    log.append(b'{"n":0}')
    assert _published_size(log) == 1
    log.append_many([(b'{"n":%d}' % i, ()) for i in range(1, 40)])
    assert _published_size(log) == 40
    # Concurrent appends share batches; whichever batch comes last is published.
    threads = [threading.Thread(target=log.append, args=(b'{"t":%d}' % i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.size == 72
    assert _published_size(log) == 72
    sizes = [verify_checkpoint(n, log.verifier_key).size for n in log.checkpoints()]
    assert sizes == sorted(sizes) and sizes[0] == 1


def test_without_publication_after_batches_nothing_is_published(storage: LogStorage) -> None:
    log = TransparencyLog(storage, _signer(), ORIGIN)
    log.append_many([(b'{"n":%d}' % i, ()) for i in range(5)])
    assert log.latest_checkpoint() is None


class _NoCheckpoints(MemoryLogStorage):
    """Storage whose checkpoint writes fail (a full disk, say) while entries still land."""

    def add_checkpoint(self, size: int, note: str, *, durable: bool = True) -> None:
        raise ConfigError("log database error: disk I/O error")


def test_a_failed_publication_never_fails_the_batch(caplog: pytest.LogCaptureFixture) -> None:
    log = TransparencyLog(_NoCheckpoints(), _signer(), ORIGIN, publish_after_batch=True)
    with caplog.at_level(logging.ERROR, logger="sovra.ledger"):
        receipt = log.append(b'{"n":0}')
    receipt.verify(log.public_key, b'{"n":0}')
    assert log.size == 1
    assert "publishing a checkpoint after a batch failed" in caplog.text
    assert "disk I/O error" in caplog.text


# -- and on a schedule -------------------------------------------------------------------------


def test_the_schedule_publishes_what_batches_did_not(tmp_path: Path) -> None:
    log = TransparencyLog(SQLiteLogStorage(tmp_path / "log.db"), _signer(), ORIGIN)
    try:
        with publishing(log.checkpoint, 0.01):
            log.append_many([(b'{"n":%d}' % i, ()) for i in range(7)])
            _wait_for(lambda: _published_size(log) == 7, "a checkpoint of size 7")
            log.append(b'{"n":7}')
            _wait_for(lambda: _published_size(log) == 8, "a checkpoint of size 8")
    finally:
        log.close()


def test_the_schedule_goes_on_after_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def publish() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ConfigError("log database error: database is locked")

    with caplog.at_level(logging.ERROR, logger="sovra.server"), publishing(publish, 0.01):
        _wait_for(lambda: len(calls) >= 3, "three rounds of the schedule")
    assert "scheduled checkpoint publication failed" in caplog.text
    assert "database is locked" in caplog.text


@pytest.mark.parametrize("every", [0, -1.0, float("nan")])
def test_the_schedule_needs_a_positive_interval(every: float) -> None:
    with pytest.raises(ConfigError, match="must be positive"), publishing(lambda: None, every):
        pass


# -- end to end: a gateway over HTTP and `sovra log verify` --------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("publication") / "deployment"
    Deployment.init(root, jurisdictions=("PL",), origin=ORIGIN, custodians="in-process")
    return root


@pytest.fixture
def gateway(template: Path, tmp_path: Path) -> Iterator[tuple[str, Deployment]]:
    import shutil

    root = tmp_path / "deployment"
    shutil.copytree(template, root)
    dep = Deployment.open(root)
    try:
        with running(create_app(dep)) as url:
            yield url, dep
    finally:
        dep.close()


def _ingest(url: str, dep: Deployment, count: int) -> None:
    client = Client(url, "svc-pl", dep.principal_key("svc-pl"))
    with client:
        for n in range(count):
            client.ingest(f"subject-{n}@example.pl", "PL", f"note {n}")


def test_verify_covers_every_ingest_without_a_checkpoint_request(
    gateway: tuple[str, Deployment],
) -> None:
    url, dep = gateway
    log = dep.gateway.log
    _ingest(url, dep, 3)
    log.checkpoint()  # someone asked once, long ago
    _ingest(url, dep, 40)
    size = log.size
    assert size >= 43
    # Published by the server's schedule (every publish_every_s, 1 s by default): no one
    # asks for this checkpoint.
    _wait_for(lambda: _published_size(log) == size, "the schedule publishes the new size")
    code, said = _verify(url)
    assert code == 0, said
    assert f"verified {size} entries" in said
    assert f"up to size {size} of the {size} entries the log held" in said


class _Overriding:
    """A gateway that answers some paths its own way (a stale cache serving an old
    checkpoint, a proxy that is not sovra's); every other request goes to the real one."""

    def __init__(self, app: Any, answers: dict[str, tuple[bytes, bytes]]) -> None:
        self._app = app
        self._answers = answers  # path -> (content type, body)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        answer = self._answers.get(scope.get("path", "")) if scope["type"] == "http" else None
        if answer is None:
            await self._app(scope, receive, send)
            return
        kind, body = answer
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", kind)]}
        )
        await send({"type": "http.response.body", "body": body})


_TEXT = b"text/plain; charset=utf-8"


def test_verify_fails_when_the_newest_checkpoint_is_stale(template: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "deployment"
    shutil.copytree(template, root)
    (root / "sovra.toml").write_text(
        (root / "sovra.toml")
        .read_text()
        # Nothing published but the test's own checkpoint: the server's schedule would
        # publish the newest size once a second, and a loaded machine can take that long
        # between the appends and the audit (the audit then sees a newer checkpoint).
        .replace("publish_every_s = 1\n", "publish_every_s = 86400\n"),
        encoding="utf-8",
    )
    assert "publish_every_s = 86400\n" in (root / "sovra.toml").read_text(encoding="utf-8")
    dep = Deployment.open(root)
    try:
        log = dep.gateway.log
        first = log.size  # the entries of sovra init
        log.append_many([(b'{"n":%d}' % i, ()) for i in range(5)])
        old = log.checkpoint()
        log.append_many([(b'{"n":%d}' % i, ()) for i in range(5, 12)])
        stale = {"/v1/log/checkpoint": (_TEXT, old.encode())}
        with running(_Overriding(create_app(dep), stale)) as url:
            code, said = _verify(url)
    finally:
        dep.close()
    assert code == 3, said
    covered, held = first + 5, first + 12
    assert f"stale log: its newest checkpoint covers {covered} entries, but it held {held}" in said
    assert f"entries {covered} to {held - 1} are not verified" in said


@pytest.mark.parametrize("altered", [37, 262])
def test_verify_names_the_altered_entry_inside_its_bundle(
    gateway: tuple[str, Deployment], altered: int
) -> None:
    url, dep = gateway
    log = dep.gateway.log
    log.append_many([(b'{"kind":"test","n":%d}' % i, ()) for i in range(300)])
    log.checkpoint()  # published before the alteration, however publication is set up
    with sqlite3.connect(dep.root / "sovra.db") as db:
        db.execute(
            "UPDATE log_entries SET entry = ? WHERE idx = ?", (b'{"kind":"forged"}', altered)
        )
    code, said = _verify(url)
    assert code == 3, said
    assert f"entry {altered} does not hash to its leaf hash" in said
    assert f"first bad index {altered})" in said


def test_an_unsynced_checkpoint_leaves_the_connection_synced(tmp_path: Path) -> None:
    storage = SQLiteLogStorage(tmp_path / "log.db", sync="full")
    log = TransparencyLog(storage, _signer(), ORIGIN, publish_after_batch=True)
    try:
        log.append(b'{"n":0}')
        assert _published_size(log) == 1
        # Every later batch is still fsynced at its commit (2 is FULL).
        assert storage._db.execute("PRAGMA synchronous").fetchone() == (2,)
    finally:
        log.close()


def test_verify_refuses_a_gateway_that_states_no_log_size(
    gateway: tuple[str, Deployment],
) -> None:
    _, dep = gateway
    sizeless = {"/v1/info": (b"application/json", b'{"origin": "x"}')}
    with running(_Overriding(create_app(dep), sizeless)) as other:
        code, said = _verify(other)
    assert code == 1, said
    assert "states no log size" in said


def test_an_altered_bundle_is_served_as_stored_and_never_cached(
    gateway: tuple[str, Deployment],
) -> None:
    import httpx

    url, dep = gateway
    log = dep.gateway.log
    log.append_many([(b'{"kind":"test","n":%d}' % i, ()) for i in range(300)])
    with sqlite3.connect(dep.root / "sovra.db") as db:
        db.execute("UPDATE log_entries SET entry = ? WHERE idx = 260", (b'{"kind":"forged"}',))
    with httpx.Client(base_url=url) as http:
        intact = http.get("/v1/log/tile/entries/000")
        altered = http.get(f"/v1/log/tile/entries/001.p/{log.size - 256}")
    assert intact.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert altered.status_code == 200
    assert altered.headers["cache-control"] == "no-store"
    assert b'{"kind":"forged"}' in altered.content


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_writers_of_one_storage_publish_without_refusing_each_other(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Two gateway replicas over one database: each publishes after its own batches, and
    # a larger checkpoint the other published meanwhile is the newest, never an error.
    def storage() -> LogStorage:
        if backend == "postgres":
            from sovra.ledger.postgres import PostgresLogStorage

            return PostgresLogStorage(request.getfixturevalue("pg_dsn"))
        return SQLiteLogStorage(tmp_path / "shared.db")

    logs = [TransparencyLog(storage(), _signer(), ORIGIN, publish_after_batch=True) for _ in "ab"]
    failures: list[BaseException] = []

    def work(log: TransparencyLog, name: str) -> None:
        try:
            for n in range(60):
                log.append(b'{"w":"%s","n":%d}' % (name.encode(), n))
                log.checkpoint()
        except BaseException as exc:
            failures.append(exc)

    threads = [
        threading.Thread(target=work, args=(log, f"{n}{t}"))
        for n, log in enumerate(logs)
        for t in range(3)
    ]
    try:
        with caplog.at_level(logging.ERROR, logger="sovra.ledger"):
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert failures == []
        assert "failed" not in caplog.text
        for log in logs:
            assert verify_checkpoint(log.checkpoint(), log.verifier_key).size == 360
        sizes = [verify_checkpoint(n, ORIGIN_VKEY).size for n in logs[0].checkpoints()]
        assert sizes == sorted(sizes)
    finally:
        for log in logs:
            log.close()
