"""Versioned schema migrations for the SQL stores, the same steps on SQLite and PostgreSQL.

Each *component* (the metadata tables, the bulk guard's journal, a custodian's subject
keys) has its row in ``schema_versions`` and a list of numbered steps; step *n* takes a
database at version *n - 1* to version *n*. :func:`migrate` runs, inside the caller's
transaction, every step the database lacks and records the new version, so a database is
at a version exactly when every step up to it ran, or at the old one when a step failed.
The caller holds the engine's lock for it (PostgreSQL: an advisory transaction lock;
SQLite: ``BEGIN IMMEDIATE``), so two processes opening one database at once migrate it
once. A database at a version above the last step was written by a newer sovra: it is
refused, never read with an older idea of its tables.

A step is a constant list of statements written for both engines; the column types that
differ are the :class:`Dialect`'s. A released step MUST NOT change: add a step instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sovra.errors import ConfigError
from sovra.model import SPLIT_KEY_FORMAT

if TYPE_CHECKING:
    from sovra.store._sql import Run

__all__ = [
    "GUARD_JOURNAL_STEPS",
    "METADATA_STEPS",
    "POSTGRES",
    "SQLITE",
    "Dialect",
    "Step",
    "migrate",
    "schema_version",
]


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the engines in a table definition."""

    name: str
    int_type: str
    blob_type: str
    real_type: str
    serial_key: str
    table_suffix: str


SQLITE = Dialect(
    "sqlite", "INTEGER", "BLOB", "REAL", "INTEGER PRIMARY KEY AUTOINCREMENT", " STRICT"
)
"""STRICT tables: SQLite refuses a value of the wrong type instead of storing it as-is."""
POSTGRES = Dialect("postgresql", "BIGINT", "BYTEA", "DOUBLE PRECISION", "BIGSERIAL PRIMARY KEY", "")

Step = Callable[[Dialect], Sequence[str]]
"""One migration step: the statements it runs, for a dialect."""


def _metadata_1(d: Dialect) -> list[str]:
    """The tables of the first release (as ``schema_versions`` version 1 holds them)."""
    i, b, s = d.int_type, d.blob_type, d.table_suffix
    return [
        f"""CREATE TABLE records (
            record_id TEXT PRIMARY KEY,
            subject TEXT NOT NULL,
            jurisdiction TEXT NOT NULL,
            region TEXT NOT NULL,
            kek_version {i} NOT NULL,
            content_type TEXT NOT NULL,
            format {i} NOT NULL,
            wrapped_jurisdiction TEXT NOT NULL,
            wrapped_kek_version {i} NOT NULL,
            wrapped_key {b} NOT NULL,
            blob_size {i} NOT NULL,
            created_ms {i} NOT NULL,
            findings TEXT NOT NULL,
            actions TEXT NOT NULL,
            log_index {i} NOT NULL
        ){s}""",
        "CREATE INDEX records_by_subject ON records (subject, created_ms, record_id)",
        "CREATE INDEX records_by_jurisdiction ON records (jurisdiction, created_ms, record_id)",
        f"""CREATE TABLE grants (
            grant_id TEXT PRIMARY KEY,
            digest TEXT NOT NULL UNIQUE,
            grant_json {b} NOT NULL,
            revoked_ms {i}
        ){s}""",
        f"""CREATE TABLE principals (
            principal_id TEXT PRIMARY KEY,
            jurisdiction TEXT NOT NULL,
            role TEXT NOT NULL,
            public_key {b} NOT NULL,
            subject TEXT NOT NULL DEFAULT ''
        ){s}""",
        # Nonces are chosen by clients, so they are stored as a hash: a fixed-size key
        # whatever characters or length a client sent.
        f"""CREATE TABLE token_nonces (
            principal_id TEXT NOT NULL,
            nonce_sha256 TEXT NOT NULL,
            expires_ms {i} NOT NULL,
            PRIMARY KEY (principal_id, nonce_sha256)
        ){s}""",
        "CREATE INDEX token_nonces_by_expiry ON token_nonces (expires_ms)",
    ]


def _metadata_2(d: Dialect) -> list[str]:
    """Rows whose ingest entry is not (yet) in the log: few at any time, found without a
    scan by the start-up reconciliation.

    Version 1 databases of later releases already hold the index (it was added in place,
    without a version of its own, before this table of steps), hence IF NOT EXISTS.
    """
    return [
        "CREATE INDEX IF NOT EXISTS records_unlogged ON records (created_ms, record_id) "
        "WHERE log_index < 0",
    ]


def _metadata_3(d: Dialect) -> list[str]:
    """Co-signatures withdrawn from registered grants: one row per co-signing home that
    took its co-signature back, the first withdrawal's time standing."""
    return [
        f"""CREATE TABLE grant_withdrawals (
            grant_id TEXT NOT NULL,
            jurisdiction TEXT NOT NULL,
            withdrawn_ms {d.int_type} NOT NULL,
            PRIMARY KEY (grant_id, jurisdiction)
        ){d.table_suffix}""",
    ]


def _metadata_4(d: Dialect) -> list[str]:
    """Records of two homes by their second home (the first two bytes of a split wrapped
    key, :mod:`sovra.keys.split`), so a listing by jurisdiction finds them under either
    home without a scan. Both engines take ``substr`` of a blob and a partial index."""
    return [
        "CREATE INDEX records_by_second_home ON records "
        f"(substr(wrapped_key, 1, 2), created_ms, record_id) WHERE format = {SPLIT_KEY_FORMAT}",
    ]


METADATA_STEPS: tuple[Step, ...] = (_metadata_1, _metadata_2, _metadata_3, _metadata_4)
"""The metadata tables: records, grants (and withdrawn co-signatures), principals, token
nonces."""


def _guard_journal_1(d: Dialect) -> list[str]:
    # IF NOT EXISTS: a SQLite journal file of the first release holds this table without
    # a version row.
    return [
        f"""CREATE TABLE IF NOT EXISTS guard_journal (
            seq {d.serial_key},
            kind TEXT NOT NULL,
            time_s {d.real_type} NOT NULL,
            data TEXT NOT NULL
        ){d.table_suffix}""",
        "CREATE INDEX IF NOT EXISTS guard_journal_by_kind ON guard_journal (kind, seq)",
        # The first journal's table held its events unsealed: not read, not kept.
        "DROP TABLE IF EXISTS guard_events",
    ]


GUARD_JOURNAL_STEPS: tuple[Step, ...] = (_guard_journal_1,)
"""The bulk guards' shared journal."""


def _versions_table(d: Dialect) -> str:
    return (
        "CREATE TABLE IF NOT EXISTS schema_versions ("
        f"component TEXT PRIMARY KEY, version {d.int_type} NOT NULL){d.table_suffix}"
    )


def schema_version(run: Run, dialect: Dialect, component: str) -> int:
    """The version *component* is at in this database (0: none of its tables exist)."""
    run(_versions_table(dialect), ())
    row = run("SELECT version FROM schema_versions WHERE component = ?", (component,)).fetchone()
    return 0 if row is None else int(row[0])


def migrate(run: Run, dialect: Dialect, component: str, steps: Sequence[Step]) -> int:
    """Bring *component* to the last of *steps*, in the caller's transaction; the version
    it was at before.

    The caller MUST hold the engine's exclusive lock for the transaction.

    Raises:
        ConfigError: the database is at a version newer than the last step (written by a
            newer sovra), naming both versions.
    """
    found = schema_version(run, dialect, component)
    latest = len(steps)
    if found > latest:
        raise ConfigError(
            f"the {component} schema in this database is version {found}, newer than the "
            f"version {latest} this sovra knows: it was written by a newer release; run "
            "that release (or newer), since this one cannot read it safely"
        )
    for number in range(found + 1, latest + 1):
        for statement in steps[number - 1](dialect):
            run(statement, ())
    if found == 0:
        run(
            "INSERT INTO schema_versions (component, version) VALUES (?, ?)",
            (component, latest),
        )
    elif found < latest:
        run("UPDATE schema_versions SET version = ? WHERE component = ?", (latest, component))
    return found
