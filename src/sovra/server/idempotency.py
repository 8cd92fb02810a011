"""``Idempotency-Key`` on ``POST /v1/records/batch``: a batch sent again is stored once.

A client that lost the answer to a batch (a timeout, a broken connection, a 503) sends
the same body again with the same key (the IETF httpapi draft "The Idempotency-Key HTTP
Header Field"). The gateway answers it window by window (the chunks it stores at once):

- a line answered before for good (stored, or refused) gets that answer again, byte for
  byte, and nothing is stored;
- a line whose window was being stored when a gateway died without a word gets status 409
  and the error ``outcome_unknown``: its record may be stored, so it is not stored again;
- every other line (never sent to the gateway, or answered with a 5xx: the database or a
  custodian away) is stored as a first request would store it.

Each window's answer is recorded (:mod:`sovra.store.idempotency`) once its records are
stored and before it is sent. The same key with another body is refused with 422, nothing
stored; a key whose first request is still being answered gets 409 with Retry-After.
Keys are per principal and kept for :data:`WINDOW_S` in the metadata store, so every
replica answers them.

An access batch takes no key: each access is decided and logged again on a retry, and its
answer holds plaintext, which is never kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson

from sovra.errors import BadRequest, SovraError
from sovra.store.idempotency import Claim, IdempotencyKeys

__all__ = ["HEADER", "WINDOW_S", "check_key", "keyed_answer"]

HEADER = "Idempotency-Key"
WINDOW_S = 86_400.0
"""How long a key is remembered: a batch sent again within a day is stored once."""

log = logging.getLogger("sovra.server")

_KEY = re.compile(r"[A-Za-z0-9._~+/=:-]{8,128}")

Answer = Callable[[Sequence[bytes]], Iterator[bytes]]
"""The batch route's answer to some of its lines: one piece per chunk, then a summary."""


def check_key(value: str) -> str:
    """The key of a request header, checked.

    Raises:
        BadRequest: not 8 to 128 characters of letters, digits and ``._~+/=:-``.
    """
    key = value.strip().strip('"')  # the draft writes the key as a quoted string
    if not _KEY.fullmatch(key):
        raise BadRequest(
            f"{HEADER} must be 8 to 128 characters of letters, digits and ._~+/=:- "
            "(a random value per batch, e.g. a UUID)"
        )
    return key


def keyed_answer(
    keys: IdempotencyKeys,
    principal: str,
    key: str,
    *,
    path: str,
    lines: Sequence[bytes],
    window: int,
    answer: Answer,
) -> Iterator[bytes]:
    """Claim *key* for this batch, then the batch's answer, *window* lines at a time:
    recorded answers replayed, the other lines run through *answer*, then a summary.

    Raises:
        KeyReused: the key was used with another body (before any line is answered).
        KeyInFlight: another request with the key is being answered.
    """
    digest = hashlib.sha256(path.encode() + b"\n" + b"\n".join(lines)).digest()
    claim = keys.claim(principal, key, digest, len(lines))
    return _Replay(keys, principal, key, claim).answer(lines, window, answer)


class _Replay:
    """One request's answer under a claim on its key."""

    def __init__(self, keys: IdempotencyKeys, principal: str, key: str, claim: Claim) -> None:
        self._keys, self._who, self._key, self._claim = keys, principal, key, claim
        self.ok = self.failed = self.replayed = 0
        self.stopped_at: int | None = None

    def answer(self, lines: Sequence[bytes], window: int, answer: Answer) -> Iterator[bytes]:
        claim = self._claim
        final = True  # every line so far has its final answer
        settled = True  # no window is half stored without its answer recorded
        try:
            for start in range(0, len(lines), window):
                end = min(start + window, len(lines))
                before = _parse(claim.pieces.get(start, b""))
                got = self._window(lines, start, end, before, answer)
                settled = False
                if got != before:
                    self._record(start, end, got)
                settled = True
                statuses = [status for status, _ in got.values()]
                final = final and all(status < 500 for status in statuses)
                self.ok += sum(status < 300 for status in statuses)
                self.failed += sum(status >= 300 for status in statuses)
                yield b"".join(got[n][1] for n in range(start + 1, end + 1))
            yield self._summary(len(lines))
        except GeneratorExit:
            # Closed before its end: the caller hung up between two windows, or the
            # answer was left unread and is being collected, perhaps in the middle of a
            # store transaction of this very thread, whose lock is not re-entrant. A
            # thread of its own releases the key once that transaction ends.
            if not claim.complete:
                threading.Thread(
                    target=self._release,
                    kwargs={"complete": False, "settled": settled},
                    name="sovra-idempotency-release",
                    daemon=True,
                ).start()
            raise
        except BaseException:
            if not claim.complete:
                self._release(complete=False, settled=settled)
            raise
        else:
            if not claim.complete:
                self._release(complete=final and settled, settled=settled)

    def _release(self, *, complete: bool, settled: bool) -> None:
        # Runs when the answer ends, or when an answer left unread is collected, perhaps
        # after the store closed: a release that fails only leaves the lease to lapse.
        try:
            self._keys.release(
                self._who, self._key, self._claim.owner, complete=complete, settled=settled
            )
        except Exception as exc:  # noqa: BLE001 - the answer is over either way
            log.warning("Idempotency-Key %r not released (%s): its lease lapses", self._key, exc)

    def _window(
        self,
        lines: Sequence[bytes],
        start: int,
        end: int,
        before: dict[int, tuple[int, bytes]],
        answer: Answer,
    ) -> dict[int, tuple[int, bytes]]:
        """The answers of lines *start* + 1 .. *end*, by line number."""
        got = {n: a for n, a in before.items() if a[0] < 500}
        self.replayed += len(got)
        if self._claim.crashed == (start, end):
            # Stored or not, nobody knows: say so rather than store a line twice.
            for n in range(start + 1, end + 1):
                got.setdefault(n, _unknown(n))
        todo = [n for n in range(start + 1, end + 1) if n not in got]
        if todo:
            self._keys.running(self._who, self._key, self._claim.owner, start, end)
            pieces = list(answer([lines[n - 1] for n in todo]))
            for text in b"".join(pieces[:-1]).splitlines(keepends=True):
                number, status, renumbered = _renumbered(text, todo)
                got[number] = (status, renumbered)
            stopped = orjson.loads(pieces[-1])["summary"].get("stopped_at")
            if stopped is not None and self.stopped_at is None:
                self.stopped_at = todo[stopped - 1]
        return dict(sorted(got.items()))

    def _record(self, start: int, end: int, got: dict[int, tuple[int, bytes]]) -> None:
        piece = b"".join(text for _, text in got.values())
        self._keys.record(self._who, self._key, self._claim.owner, start, end, piece=piece)

    def _summary(self, count: int) -> bytes:
        body: dict[str, int] = {
            "lines": count,
            "ok": self.ok,
            "failed": self.failed,
            "replayed": self.replayed,
        }
        if self.stopped_at is not None:
            body["stopped_at"] = self.stopped_at
        return _encode({"summary": body})


_HEAD = re.compile(rb'\{"line":(\d+),"status":(\d+),')
"""The start of an answer line as the batch route writes it (orjson, keys in this order)."""


def _renumbered(text: bytes, todo: Sequence[int]) -> tuple[int, int, bytes]:
    """An answer line of the *todo* lines sent on their own, numbered as in the batch:
    (its number there, its status, the line)."""
    match = _HEAD.match(text)
    if match is not None:
        number, status = todo[int(match[1]) - 1], int(match[2])
        return number, status, b'{"line":%d,"status":%d,' % (number, status) + text[match.end() :]
    line = orjson.loads(text)  # written escaped, by the json module
    line["line"] = todo[int(line["line"]) - 1]
    return line["line"], int(line["status"]), _encode(line)


def _parse(piece: bytes) -> dict[int, tuple[int, bytes]]:
    """A recorded window's answers, by line number."""
    answers = {}
    for text in piece.splitlines(keepends=True):
        match = _HEAD.match(text)
        if match is not None:
            answers[int(match[1])] = (int(match[2]), text)
        else:
            line = orjson.loads(text)
            answers[int(line["line"])] = (int(line["status"]), text)
    return answers


def _unknown(number: int) -> tuple[int, bytes]:
    """The answer of a line whose record may or may not be stored."""
    error = SovraError(
        "outcome unknown: a gateway stopped while storing this line's window of the batch, "
        "so its record may be stored; look it up before sending it again"
    ).to_dict()
    error["error"] = "outcome_unknown"
    return 409, _encode({"line": number, "status": 409, "error": error})


def _encode(value: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError:
        # Text orjson refuses (a lone surrogate echoed in a message) goes out escaped.
        return json.dumps(value).encode("ascii") + b"\n"
