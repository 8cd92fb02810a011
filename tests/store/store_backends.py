"""The metadata backends the conformance suite runs against, and raw access to their tables."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg

from sovra.store import MetadataStore, SQLiteMetadataStore
from sovra.store.postgres import PostgresMetadataStore


class Backend:
    """Opens stores at one location and reads its tables directly, behind the store's back."""

    def __init__(self, kind: str, location: str) -> None:
        self.kind = kind
        self.location = location
        self.opened: list[MetadataStore] = []

    def open(self) -> MetadataStore:
        store: MetadataStore
        if self.kind == "sqlite":
            store = SQLiteMetadataStore(self.location)
        else:
            store = PostgresMetadataStore(self.location)
        self.opened.append(store)
        return store

    def sql(self, statement: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        if self.kind == "sqlite":
            conn = sqlite3.connect(self.location)
            try:
                with conn:
                    return conn.execute(statement, params).fetchall()
            finally:
                conn.close()
        with psycopg.connect(self.location, autocommit=True) as pg:
            cur = pg.execute(statement.replace("?", "%s"), params or None)
            return cur.fetchall() if cur.description else []

    def count(self, table: str) -> int:
        return int(self.sql(f"SELECT COUNT(*) FROM {table}")[0][0])
