"""How long a PostgreSQL session of sovra may wait, set on every pooled session.

``sovra.toml``'s ``[postgres]`` table sets them for a deployment (:class:`PgTimeouts`):

- ``lock_timeout_s``: the longest a statement waits for a lock another session holds
  (the log's index row, which sequences the log across replicas; the bulk guard journal's
  advisory lock; a record's row). Past it the statement fails and the request gets a 503
  with Retry-After that names the wait, instead of hanging until the client gives up:
  a batch's transaction holds such a lock for milliseconds, so a wait of seconds means a
  stalled holder (a frozen replica, an operator's open ``psql`` transaction);
- ``statement_timeout_s``: the longest one statement runs, lock waits included;
- ``idle_in_transaction_s``: the longest the server lets a session sit idle inside a
  transaction before ending it and releasing its locks (ADR 0021).

Zero turns a limit off (PostgreSQL's own meaning of 0), except the idle one, which
sovra always keeps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sovra.errors import ConfigError

__all__ = ["PgTimeouts"]

_MAX_S = 86_400.0


@dataclass(frozen=True, slots=True)
class PgTimeouts:
    """The three waits of every sovra session on PostgreSQL, in seconds (0: no limit)."""

    lock_s: float = 10.0
    statement_s: float = 60.0
    idle_in_transaction_s: float = 30.0

    def __post_init__(self) -> None:
        for name, value, low in (
            ("lock_timeout_s", self.lock_s, 0.0),
            ("statement_timeout_s", self.statement_s, 0.0),
            ("idle_in_transaction_s", self.idle_in_transaction_s, 0.001),
        ):
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not low <= value <= _MAX_S
            ):
                raise ConfigError(
                    f"[postgres] {name} must be seconds in [{low:g}, {_MAX_S:g}], got {value!r}"
                )

    @classmethod
    def from_table(cls, section: Mapping[str, Any]) -> PgTimeouts:
        """The ``[postgres]`` table of ``sovra.toml``; absent keys keep their defaults.

        Raises:
            ConfigError: an unknown key, or a value that is not seconds in range.
        """
        keys = {
            "lock_timeout_s": "lock_s",
            "statement_timeout_s": "statement_s",
            "idle_in_transaction_s": "idle_in_transaction_s",
        }
        unknown = sorted(set(section) - set(keys))
        if unknown:
            raise ConfigError(
                f"[postgres] has unknown key(s) {', '.join(unknown)}; known: {', '.join(keys)}"
            )
        return cls(**{keys[k]: v for k, v in section.items()})

    def settings(self) -> dict[str, str]:
        """The session settings, as PostgreSQL's ``set_config`` takes them."""
        return {
            "lock_timeout": _ms(self.lock_s),
            "statement_timeout": _ms(self.statement_s),
            "idle_in_transaction_session_timeout": _ms(self.idle_in_transaction_s),
        }


def _ms(seconds: float) -> str:
    return "0" if seconds == 0 else f"{max(1, round(seconds * 1000))}ms"
