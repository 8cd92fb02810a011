"""A deployment whose database is PostgreSQL keeps its log there too."""

from __future__ import annotations

from pathlib import Path

from sovra.deployment import Deployment
from sovra.ledger import verify_checkpoint
from sovra.ledger.postgres import PostgresLogStorage


def test_a_postgres_deployment_logs_to_postgres(tmp_path: Path, pg_dsn: str) -> None:
    root = tmp_path / "deployment"
    Deployment.init(root, origin="pg.sovra.test/log", custodians="in-process")
    config = root / "sovra.toml"
    text = config.read_text(encoding="utf-8")
    assert 'database = "sovra.db"' in text
    config.write_text(text.replace('database = "sovra.db"', f'database = "{pg_dsn}"'))
    dep = Deployment.open(root)
    try:
        log = dep.gateway.log
        receipt = log.append(b'{"kind":"test"}', ["pg"])
        receipt.verify(log.public_key, b'{"kind":"test"}')
        note = log.checkpoint()
    finally:
        dep.close()
    storage = PostgresLogStorage(pg_dsn)
    try:
        assert storage.find("pg") == [receipt.index]
        assert storage.latest_checkpoint() == note
        assert verify_checkpoint(note, log.verifier_key).size == storage.size()
    finally:
        storage.close()
