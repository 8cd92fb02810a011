"""Where sovra keeps things: metadata stores, the bulk guard's journal and blob stores.

Small protocols (:mod:`sovra.store.protocols`: records, grants, principals and nonces,
whose union is :class:`MetadataStore`; :class:`GuardJournal`; :class:`BlobStore`) and
their backends: SQLite and a local folder for one machine, PostgreSQL for many
(``sovra.store.postgres``, imported on demand so psycopg stays an optional dependency).
Schemas are versioned (:mod:`sovra.store.migrations`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sovra.errors import ConfigError
from sovra.store._sql import PENDING, QUARANTINED
from sovra.store.blobs import (
    DEFAULT_MAX_BLOB_BYTES,
    DEFAULT_SMALL_BLOB_BYTES,
    SMALL_BLOBS_NAME,
    BlobStoreBase,
    FilesystemBlobStore,
    MemoryBlobStore,
)
from sovra.store.journal import SQLiteGuardJournal, seal_key
from sovra.store.pg_timeouts import PgTimeouts
from sovra.store.protocols import (
    BlobStore,
    GrantStore,
    GuardJournal,
    MetadataStore,
    NonceStore,
    PrincipalStore,
    RecordStore,
)
from sovra.store.sqlite import SQLiteMetadataStore

__all__ = [
    "DEFAULT_MAX_BLOB_BYTES",
    "DEFAULT_SMALL_BLOB_BYTES",
    "PENDING",
    "QUARANTINED",
    "SMALL_BLOBS_NAME",
    "BlobStore",
    "BlobStoreBase",
    "FilesystemBlobStore",
    "GrantStore",
    "GuardJournal",
    "MemoryBlobStore",
    "MetadataStore",
    "NonceStore",
    "PgTimeouts",
    "PrincipalStore",
    "RecordStore",
    "SQLiteGuardJournal",
    "SQLiteMetadataStore",
    "is_postgres_url",
    "open_guard_journal",
    "open_metadata_store",
    "seal_key",
]


def is_postgres_url(setting: str) -> bool:
    """Whether a ``database`` setting names PostgreSQL (``postgresql://``, ``postgres://``)."""
    return "://" in setting and setting.split("://", 1)[0].lower() in ("postgresql", "postgres")


def _postgres() -> Any:
    try:
        import sovra.store.postgres as pg
    except ImportError:
        raise ConfigError(
            "a postgresql:// store needs psycopg and psycopg_pool: pip install 'sovra[postgres]'"
        ) from None
    return pg


def open_guard_journal(
    database: str,
    sqlite_path: str | os.PathLike[str],
    key: bytes,
    *,
    timeouts: PgTimeouts | None = None,
) -> GuardJournal:
    """The bulk guards' journal of a deployment: in its PostgreSQL *database* when that is
    one (shared by replicas), else the SQLite file at *sqlite_path* (shared by the workers
    of one machine). Events are sealed under *key*.

    Raises:
        ConfigError: the journal cannot be opened, or was written by a newer sovra.
        Unavailable: the PostgreSQL server cannot be reached.
    """
    if is_postgres_url(database):
        journal: GuardJournal = _postgres().PostgresGuardJournal(database, key, timeouts=timeouts)
        return journal
    return SQLiteGuardJournal(sqlite_path, key)


def open_metadata_store(
    url_or_path: str | os.PathLike[str], *, timeouts: PgTimeouts | None = None
) -> MetadataStore:
    """Open the metadata store a deployment's ``database`` setting names (PostgreSQL's
    sessions wait as *timeouts* say).

    Accepts ``sqlite:///absolute/path.db``, a bare filesystem path (SQLite), or a
    ``postgresql://`` / ``postgres://`` URL.

    Raises:
        ConfigError: empty or unsupported setting, PostgreSQL asked for without psycopg
            installed, or the store cannot be opened.
    """
    if isinstance(url_or_path, os.PathLike):
        return SQLiteMetadataStore(Path(url_or_path))
    if not isinstance(url_or_path, str) or not url_or_path.strip():
        raise ConfigError("the metadata store setting is empty")
    if "://" not in url_or_path:
        return SQLiteMetadataStore(url_or_path)
    scheme = url_or_path.split("://", 1)[0].lower()
    if scheme in ("postgresql", "postgres"):
        store: MetadataStore = _postgres().PostgresMetadataStore(url_or_path, timeouts=timeouts)
        return store
    if scheme == "sqlite":
        parts = urlsplit(url_or_path)
        if parts.netloc or not parts.path or parts.query or parts.fragment:
            raise ConfigError(
                "a SQLite URL is sqlite:///PATH (three slashes, then the file's path)"
            )
        return SQLiteMetadataStore(unquote(parts.path))
    # Only the scheme is echoed: the rest of a URL may carry a password.
    raise ConfigError(
        f"unsupported metadata store scheme {scheme!r}: use sqlite:///PATH, a path, "
        "or postgresql://..."
    )
