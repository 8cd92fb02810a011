"""Request authentication: principals sign short-lived, single-use request tokens.

A token is ``v1.<claims>.<signature>`` (both base64url, no padding). The claims bind it
to one principal, one HTTP method, one path and one body (SHA-256), a time window and a
nonce, and the signature is the principal's Ed25519 signature over
``b"sovra-token/v1." + claims``. So a token cannot be replayed, moved to another request
or outlive its lifetime, and the gateway never holds a secret a thief could reuse.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from sovra._group import GroupCommit
from sovra.errors import BadRequest, NotFound, SovraError, Unauthenticated
from sovra.model import Principal, canonical_json, parse_json

__all__ = ["Authenticator", "make_token"]

_MAX_TOKEN_CHARS = 2048
_CLOCK_SKEW_S = 30
_DOMAIN = b"sovra-token/v1."
_MAX_SPENT_TOGETHER = 64
"""Nonces spent in one transaction at most."""
_MAX_KNOWN = 4096
"""Principals remembered per process; past it the memory starts afresh."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signed_by(key: Ed25519PublicKey, signature: bytes, signed: bytes) -> bool:
    try:
        key.verify(signature, signed)
    except InvalidSignature:
        return False
    return True


def make_token(
    key: Ed25519PrivateKey,
    principal_id: str,
    method: str,
    path: str,
    body: bytes,
    *,
    now_s: int,
    lifetime_s: int = 60,
) -> str:
    """Sign a token for exactly one request."""
    claims = canonical_json(
        {
            "sub": principal_id,
            "htm": method.upper(),
            "htu": path,
            "bh": hashlib.sha256(body).hexdigest(),
            "iat": now_s,
            "exp": now_s + lifetime_s,
            "nonce": _b64(os.urandom(16)),
        }
    )
    encoded = _b64(claims)
    return f"v1.{encoded}.{_b64(key.sign(_DOMAIN + encoded.encode()))}"


@dataclass(frozen=True, slots=True)
class _Claims:
    sub: str
    htm: str
    htu: str
    bh: str
    iat: int
    exp: int
    nonce: str


class Authenticator:
    """Checks tokens against registered principals and a replay store."""

    def __init__(
        self,
        lookup: Callable[[str], Principal],
        spend_nonces: Callable[
            [list[tuple[str, str, int, int]]], Sequence[Principal | SovraError | None]
        ],
        *,
        max_age_s: int,
        clock: Callable[[], float],
    ) -> None:
        """Create an authenticator.

        Args:
            lookup: principal id -> Principal; raises NotFound for an unknown id.
            spend_nonces: ``[(principal, nonce, expires_ms, now_ms), ...]`` -> for each,
                the principal as registered when its nonce was spent (None if it is
                not), or the error (Unauthenticated if the nonce was seen before); in
                one transaction, so concurrent requests share one (group commit).
            max_age_s: the longest lifetime a token may claim.
            clock: UNIX seconds.
        """
        self._lookup = lookup
        self._spends: GroupCommit[tuple[str, str, int, int], Principal | None] = GroupCommit(
            spend_nonces, _MAX_SPENT_TOGETHER
        )
        self._max_age_s = max_age_s
        self._clock = clock
        # Principals as last read, with their loaded public keys (loading one costs a
        # good part of a verify). Only a hint: the principal read where the nonce is
        # spent is the one a request is accepted for (see authenticate).
        self._known: dict[str, tuple[Principal, Ed25519PublicKey]] = {}

    def authenticate(self, token: str | None, method: str, path: str, body: bytes) -> Principal:
        """Return the principal that signed *token* for this very request.

        The signature is checked against the principal as this authenticator last read
        it; the store reads it again in the transaction that spends the nonce, and if it
        changed meanwhile (a new key, a new role, gone), the request is judged against
        what it is now. So a rotated-out key is refused as soon as the rotation is
        committed, by every worker process, without a read of its own per request.

        Raises:
            Unauthenticated: missing, malformed, unknown principal, forged, expired,
                not yet valid, made for another request, or replayed.
        """
        if not token:
            raise Unauthenticated("missing credential: send 'Authorization: Sovra <token>'")
        claims, signed, signature = self._parse(token)
        principal, key = self._known.get(claims.sub) or self._load(claims.sub)
        if not _signed_by(key, signature, signed):
            # Perhaps signed with a key registered since this process last looked.
            principal, key = self._load(claims.sub)
            if not _signed_by(key, signature, signed):
                raise Unauthenticated(f"token signature is not {claims.sub}'s: forged or corrupted")
        now = int(self._clock())
        if claims.exp - claims.iat > self._max_age_s:
            raise Unauthenticated(f"token lifetime over the {self._max_age_s} s maximum")
        if now >= claims.exp + _CLOCK_SKEW_S:
            raise Unauthenticated(f"token expired {now - claims.exp} s ago")
        if claims.iat > now + _CLOCK_SKEW_S:
            raise Unauthenticated("token issued in the future: check the client's clock")
        if claims.htm != method.upper() or claims.htu != path:
            raise Unauthenticated(
                f"token was made for {claims.htm} {claims.htu}, not {method} {path}"
            )
        if claims.bh != hashlib.sha256(body).hexdigest():
            raise Unauthenticated("token was made for another request body")
        current = self._spends.submit(
            (claims.sub, claims.nonce, (claims.exp + _CLOCK_SKEW_S) * 1000, now * 1000)
        )
        if current == principal:
            return principal
        # Changed since it was read: the nonce is spent all the same (a replay stays a
        # replay), and the request is judged against the principal as it is now.
        self._known.pop(claims.sub, None)
        if current is None:
            raise Unauthenticated(f"unknown principal {claims.sub!r}")
        if current.public_key != principal.public_key and not _signed_by(
            Ed25519PublicKey.from_public_bytes(current.public_key), signature, signed
        ):
            raise Unauthenticated(f"token signature is not {claims.sub}'s: forged or corrupted")
        return current

    def _load(self, principal_id: str) -> tuple[Principal, Ed25519PublicKey]:
        try:
            principal = self._lookup(principal_id)
        except (NotFound, BadRequest):
            self._known.pop(principal_id, None)
            raise Unauthenticated(f"unknown principal {principal_id!r}") from None
        if len(self._known) >= _MAX_KNOWN:
            self._known.clear()
        known = self._known[principal_id] = (
            principal,
            Ed25519PublicKey.from_public_bytes(principal.public_key),
        )
        return known

    @staticmethod
    def _parse(token: str) -> tuple[_Claims, bytes, bytes]:
        if len(token) > _MAX_TOKEN_CHARS:
            raise Unauthenticated(f"token longer than {_MAX_TOKEN_CHARS} characters")
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != "v1":
            raise Unauthenticated("malformed token: expected v1.<claims>.<signature>")
        try:
            # Bounded like every untrusted JSON: the claims are read before any signature
            # check, so anyone on the network can send them.
            raw = parse_json(_unb64(parts[1]), limit=_MAX_TOKEN_CHARS, what="token claims")
            signature = _unb64(parts[2])
            claims = _Claims(**raw)
        except (binascii.Error, ValueError, TypeError, BadRequest):
            raise Unauthenticated("malformed token: claims or signature do not decode") from None
        if not all(isinstance(v, int) for v in (claims.iat, claims.exp)) or not all(
            isinstance(v, str)
            for v in (claims.sub, claims.htm, claims.htu, claims.bh, claims.nonce)
        ):
            raise Unauthenticated("malformed token: claims have the wrong types")
        return claims, _DOMAIN + parts[1].encode(), signature
