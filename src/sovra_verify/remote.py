"""Reading a sovra gateway's public log over HTTP with nothing but the standard library.

:class:`LogReader` asks a gateway for what an auditor needs and nothing else: its stated
log size (``/v1/info``), its checkpoints, its cosigned checkpoint, one entry's inclusion
proof, and the tlog-tiles files under ``/v1/log/``. Nothing it returns is trusted: every
answer is checked by the caller against the log's key given on the command line.

Every answer is bounded in size, and every failure becomes an error of the tree in
:mod:`sovra_verify.errors`: a 4xx answer the one of its status, anything else that
keeps the answer from arriving :class:`~sovra_verify.errors.Unavailable`.
"""

from __future__ import annotations

import base64
import binascii
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from sovra_verify.errors import (
    BadRequest,
    ClientError,
    Denied,
    NotFound,
    PayloadTooLarge,
    SovraError,
    Unauthenticated,
    Unavailable,
)

__all__ = ["MAX_ANSWER_BYTES", "LogReader"]

#: The largest answer read: an entry bundle holds at most 256 entries of 64 KiB.
MAX_ANSWER_BYTES = 64 << 20

_BY_STATUS: dict[int, type[ClientError]] = {
    400: BadRequest,
    401: Unauthenticated,
    403: Denied,
    404: NotFound,
    413: PayloadTooLarge,
}


class LogReader:
    """The public log endpoints of the gateway at *url*, read over HTTP(S) with urllib.

    Args:
        url: the gateway's base URL, e.g. ``https://sovra.example``.
        timeout_s: how long one request may take.

    Raises:
        BadRequest: *url* is not an http or https URL.
    """

    def __init__(self, url: str, *, timeout_s: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise BadRequest(f"not an http(s) URL of a gateway: {url!r}")
        self._base = url.rstrip("/")
        self._timeout_s = timeout_s

    @property
    def url(self) -> str:
        """The gateway's base URL."""
        return self._base

    def _get(self, path: str) -> bytes:
        request = urllib.request.Request(self._base + path, headers={"accept": "*/*"})  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as answer:  # noqa: S310
                body: bytes = answer.read(MAX_ANSWER_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise _error(exc) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Unavailable(f"cannot reach the log at {self._base}: {reason}") from None
        if len(body) > MAX_ANSWER_BYTES:
            raise Unavailable(
                f"{self._base}{path} answered with more than {MAX_ANSWER_BYTES} bytes"
            )
        return body

    def _text(self, path: str) -> str:
        body = self._get(path)
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise Unavailable(
                f"{self._base}{path} answered with bytes that are not UTF-8"
            ) from None

    def _json(self, path: str) -> Any:
        try:
            return json.loads(self._text(path))
        except ValueError:
            raise Unavailable(f"{self._base}{path} answered with something not JSON") from None

    def info(self) -> dict[str, Any]:
        """The gateway's public facts, among them the log size it states."""
        facts = self._json("/v1/info")
        if not isinstance(facts, dict):
            raise Unavailable(f"{self._base}/v1/info is not a JSON object")
        return facts

    def verifier_key(self) -> str:
        """The vkey the gateway states for its log: to compare with a pinned one, not to trust."""
        return self._text("/v1/log/key").strip()

    def checkpoint(self) -> str:
        """The newest signed checkpoint note."""
        return self._text("/v1/log/checkpoint")

    def checkpoints(self) -> list[str]:
        """Every published checkpoint note, oldest first."""
        page = self._json("/v1/log/checkpoints")
        notes = page.get("checkpoints") if isinstance(page, dict) else None
        if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
            raise Unavailable(f"{self._base}/v1/log/checkpoints is not a list of notes")
        return notes

    def cosigned_checkpoint(self) -> str:
        """The newest checkpoint cosigned by the gateway's quorum of witnesses.

        Raises:
            NotFound: the gateway has no witnesses, or no checkpoint has its quorum yet.
        """
        return self._text("/v1/log/checkpoint/cosigned")

    def entry(self, index: int) -> bytes:
        """The entry at *index*, as the log stores it."""
        page = self._json(f"/v1/log/entries?start={index}&end={index + 1}")
        entries = page.get("entries") if isinstance(page, dict) else None
        if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], str):
            raise Unavailable(f"{self._base} did not answer with entry {index}")
        return entries[0].encode("utf-8")

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """The inclusion proof of entry *index* in the tree of *size* entries."""
        page = self._json(f"/v1/log/proof/inclusion?index={index}&size={size}")
        proof = page.get("proof") if isinstance(page, dict) else None
        if not isinstance(proof, list) or not all(isinstance(h, str) for h in proof):
            raise Unavailable(f"{self._base} did not answer with an inclusion proof")
        try:
            return [base64.b64decode(h, validate=True) for h in proof]
        except binascii.Error:
            raise Unavailable(f"{self._base} sent a proof that is not base64") from None

    def log_file(self, path: str) -> bytes:
        """The bytes of a tlog-tiles hash tile or entry bundle at ``/v1/log/<path>``."""
        return self._get("/v1/log/" + path)


def _error(exc: urllib.error.HTTPError) -> SovraError:
    try:
        text = exc.read(1 << 16).decode("utf-8", "replace")
    except OSError:
        text = ""
    message = text or str(exc.reason)
    try:
        body = json.loads(text)
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            message = body["message"]
    except ValueError:
        pass
    cls = _BY_STATUS.get(exc.code)
    if cls is None:
        return Unavailable(f"{exc.url} answered {exc.code}: {message}")
    return cls(message)
