"""Where sovra keeps things: metadata stores and blob stores.

Two small protocols (:class:`MetadataStore`, :class:`BlobStore`) and their backends:
SQLite and a local folder for one machine, PostgreSQL for many (``sovra.store.postgres``,
imported on demand so psycopg stays an optional dependency).
"""

from __future__ import annotations

import os
from pathlib import Path
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
from sovra.store.journal import SQLiteGuardJournal
from sovra.store.protocols import BlobStore, MetadataStore
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
    "MemoryBlobStore",
    "MetadataStore",
    "SQLiteGuardJournal",
    "SQLiteMetadataStore",
    "open_metadata_store",
]


def open_metadata_store(url_or_path: str | os.PathLike[str]) -> MetadataStore:
    """Open the metadata store a deployment's ``database`` setting names.

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
        try:
            from sovra.store.postgres import PostgresMetadataStore
        except ImportError:
            raise ConfigError(
                "a postgresql:// store needs psycopg: pip install 'sovra[postgres]'"
            ) from None
        return PostgresMetadataStore(url_or_path)
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
