"""C2SP tlog-witness over HTTP (https://c2sp.org/tlog-witness): the bodies and a client.

A log obtains a cosignature by posting ``<submission prefix>/add-checkpoint`` a body of
an old-size line, the consistency proof from that size (one base64 hash a line), an
empty line, and the signed checkpoint::

    old 10
    <base64 hash>
    ...

    <origin>
    <size>
    <root>

    — <origin> <log signature>

The witness answers 200 with its cosignature lines, or 409 with the size it holds
(``text/x.tlog.size``), or 400/403/404/422 (:mod:`sovra.ledger.witness` names the
cases). :func:`encode_request` and :func:`parse_request` are the two directions of the
body; :class:`WitnessClient` is a remote witness with the same ``add_checkpoint`` as the
in-process :class:`~sovra.ledger.witness.Witness`, so the log treats both alike.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence

import httpx

from sovra.errors import (
    BadRequest,
    PayloadTooLarge,
    SovraError,
    Unavailable,
    VerificationError,
)
from sovra.ledger.witness import (
    MAX_CONSISTENCY_HASHES,
    Inconsistent,
    OldSizeConflict,
    UnknownLog,
    UntrustedCheckpoint,
)
from sovra_verify.checkpoint import Checkpoint
from sovra_verify.cosignature import CosignatureVerifier, _note_text
from sovra_verify.note import MAX_SIGNATURES, split_signed_note

__all__ = [
    "MAX_REQUEST_BYTES",
    "SIZE_MEDIA_TYPE",
    "WitnessClient",
    "encode_request",
    "parse_request",
]

MAX_REQUEST_BYTES = 256 * 1024
"""The largest add-checkpoint body ``sovra witness serve`` reads by default: a
checkpoint with a few dozen post-quantum signatures and 63 proof lines fit."""

SIZE_MEDIA_TYPE = "text/x.tlog.size"
_MAX_RESPONSE_BYTES = 64 * 1024
_OLD = re.compile(r"old (0|[1-9][0-9]{0,19})")
_SIZE_BODY = re.compile(r"(0|[1-9][0-9]{0,19})\n")


def encode_request(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    """The add-checkpoint body for *note* from *old_size* with its consistency *proof*.

    Raises:
        BadRequest: a negative size, more than 63 hashes, or a hash not of 32 bytes.
    """
    if isinstance(old_size, bool) or not isinstance(old_size, int) or old_size < 0:
        raise BadRequest(f"the old size must be a non-negative integer, not {old_size!r}")
    if len(proof) > MAX_CONSISTENCY_HASHES:
        raise BadRequest(f"a consistency proof has at most {MAX_CONSISTENCY_HASHES} hashes")
    if any(not isinstance(h, bytes) or len(h) != 32 for h in proof):
        raise BadRequest("every consistency proof hash must be 32 bytes")
    head = [f"old {old_size}", *(base64.b64encode(h).decode("ascii") for h in proof)]
    return ("".join(line + "\n" for line in head) + "\n" + note).encode("utf-8")


def parse_request(body: bytes, limit: int = MAX_REQUEST_BYTES) -> tuple[int, list[bytes], str]:
    """The old size, consistency proof and checkpoint note of an add-checkpoint body.

    Raises:
        PayloadTooLarge: over *limit* bytes.
        BadRequest: not UTF-8, no old-size line or not canonical decimal, a proof line
            that is not the base64 of 32 bytes, more than 63 of them, or no empty line
            and checkpoint after them.
    """
    if len(body) > limit:
        raise PayloadTooLarge(f"an add-checkpoint request is at most {limit} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the request body is not UTF-8") from None
    head, sep, note = text.partition("\n\n")
    if not sep or not note:
        raise BadRequest("the request needs an empty line and a checkpoint after the proof")
    lines = head.split("\n")
    match = _OLD.fullmatch(lines[0])
    if match is None:
        raise BadRequest("the request starts with 'old <size>' (decimal, no leading zeros)")
    if len(lines) - 1 > MAX_CONSISTENCY_HASHES:
        raise BadRequest(f"a consistency proof has at most {MAX_CONSISTENCY_HASHES} lines")
    proof = []
    for n, line in enumerate(lines[1:], 1):
        try:
            raw = base64.b64decode(line.encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error):
            raw = b""
        if len(raw) != 32 or base64.b64encode(raw).decode("ascii") != line:
            raise BadRequest(f"consistency proof line {n} is not the base64 of 32 bytes")
        proof.append(raw)
    return int(match.group(1)), proof, note


class WitnessClient:
    """A remote tlog-witness, called like an in-process :class:`~sovra.ledger.Witness`.

    Keeps one HTTP keep-alive connection pool (the specification asks clients to), and
    checks every answer: a 200 must carry a valid cosignature by this witness's key over
    the very checkpoint sent. Safe to share between threads.
    """

    def __init__(
        self,
        url: str,
        vkey: str | CosignatureVerifier,
        *,
        timeout_s: float = 5.0,
        consistency: Callable[[int, int], Sequence[bytes]] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """A client of the witness whose submission prefix is *url* and key is *vkey*.

        Args:
            url: the submission prefix (``add-checkpoint`` is appended).
            vkey: the witness's cosignature vkey (type 0x04).
            timeout_s: the longest one round trip may take.
            consistency: ``(old, new) -> proof`` from the log; with it, a 409 naming a
                size the log can prove consistency from is retried once from there.
            transport: an httpx transport (tests).

        Raises:
            BadRequest: a malformed vkey, URL or timeout.
        """
        self._verifier = (
            vkey if isinstance(vkey, CosignatureVerifier) else CosignatureVerifier.from_vkey(vkey)
        )
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise BadRequest(f"a witness URL is http:// or https://, not {str(url)[:100]!r}")
        if not isinstance(timeout_s, int | float) or not 0 < timeout_s <= 600:
            raise BadRequest(f"a witness timeout is 0..600 s, not {timeout_s!r}")
        self._url = url.rstrip("/") + "/add-checkpoint"
        self._consistency = consistency
        self._http = httpx.Client(
            timeout=timeout_s,
            transport=transport,
            headers={"User-Agent": "sovra-log"},
            follow_redirects=False,
        )

    @property
    def vkey(self) -> str:
        """The witness's cosignature vkey."""
        return self._verifier.vkey

    @property
    def name(self) -> str:
        """The witness's key name."""
        return self._verifier.name

    @property
    def url(self) -> str:
        """Where add-checkpoint requests go."""
        return self._url

    def add_checkpoint(self, note: str, old_size: int, proof: Sequence[bytes]) -> str:
        """Submit *note* from *old_size* with *proof*; *note* with the cosignature added.

        On 409 the witness names the size it holds: if this client has a consistency
        source and that size is at most the note's, it retries once from there.

        Raises:
            OldSizeConflict: a 409 not resolved by one retry (its ``size`` is the
                witness's).
            UnknownLog: 404, the witness does not witness this log.
            UntrustedCheckpoint: 403, the witness did not accept the log's signature.
            Inconsistent: 422, the witness found the checkpoint inconsistent with the
                one it holds (a fork, or a bad proof).
            BadRequest: 400 or another 4xx; or a malformed note or proof here.
            VerificationError: a 200 whose lines hold no valid cosignature by this
                witness over this checkpoint.
            Unavailable: the witness could not be reached in time, or answered 5xx or
                something that is not tlog-witness.
        """
        size = Checkpoint.parse(_note_text(note)).size
        try:
            return self._submit(note, old_size, proof)
        except OldSizeConflict as conflict:
            held = conflict.size
            if self._consistency is None or held > size or held == old_size:
                raise
        retry_proof = list(self._consistency(held, size)) if 0 < held < size else []
        return self._submit(note, held, retry_proof)

    def _submit(self, note: str, old_size: int, proof: Sequence[bytes]) -> str:
        body = encode_request(old_size, proof, note)
        try:
            response = self._http.post(
                self._url, content=body, headers={"Content-Type": "text/plain; charset=utf-8"}
            )
        except httpx.TimeoutException:
            raise Unavailable(f"the witness at {self._url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise Unavailable(f"cannot reach the witness at {self._url}: {exc}") from None
        data = response.content[:_MAX_RESPONSE_BYTES]
        status = response.status_code
        if status == 200:
            return note + self._cosignature(note, data)
        detail = data.decode("utf-8", "replace").strip()[:300]
        where = f"the witness {self.name} ({self._url})"
        if status == 409:
            raise _conflict(response, data, where)
        error = _ERRORS.get(status)
        if error is not None:
            raise error(f"{where} refused the checkpoint ({status}): {detail}")
        if 400 <= status < 500:
            raise BadRequest(f"{where} answered {status}: {detail}")
        raise Unavailable(f"{where} answered {status}: {detail}")

    def _cosignature(self, note: str, data: bytes) -> str:
        """This witness's verified lines of a 200 answer (other keys' lines dropped)."""
        try:
            body = data.decode("utf-8")
        except UnicodeDecodeError:
            raise VerificationError(f"the witness {self.name} answered with non-UTF-8") from None
        if not body.endswith("\n") or any(
            not line.startswith("\u2014 ") for line in body[:-1].split("\n")
        ):
            raise VerificationError(
                f"the witness {self.name} answered with something that is not signature lines"
            )
        text = _note_text(note)
        _, lines = split_signed_note(text + "\n" + body, MAX_SIGNATURES)
        mine = [
            (line, blob)
            for line, name, key_id, blob in lines
            if (name, key_id) == (self._verifier.name, self._verifier.key_id)
        ]
        if not mine:
            raise VerificationError(f"the witness {self.name} answered without its cosignature")
        for _, blob in mine:
            try:
                self._verifier.verify(text.encode("utf-8"), blob)
            except VerificationError:
                raise VerificationError(
                    f"the cosignature of {self.name} is not over this checkpoint "
                    f"(of size {Checkpoint.parse(text).size}) or does not verify"
                ) from None
        return "".join(line + "\n" for line, _ in mine)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __repr__(self) -> str:
        return f"WitnessClient({self._url!r}, {self.name!r})"


_ERRORS: dict[int, Callable[[str], SovraError]] = {
    400: BadRequest,
    403: UntrustedCheckpoint,
    404: UnknownLog,
    413: PayloadTooLarge,
    422: Inconsistent,
}


def _conflict(response: httpx.Response, data: bytes, where: str) -> SovraError:
    media = response.headers.get("content-type", "").split(";")[0].strip()
    match = _SIZE_BODY.fullmatch(data.decode("ascii", "replace"))
    if media != SIZE_MEDIA_TYPE or match is None:
        return Unavailable(f"{where} answered 409 without its size as {SIZE_MEDIA_TYPE}")
    size = int(match.group(1))
    return OldSizeConflict(f"{where} holds the log at size {size}", size)
