"""Standard sign-in: OAuth 2.0 / OpenID Connect bearer access tokens (JWTs) from one issuer.

Beside sovra's own signed request tokens (:mod:`sovra.auth`), a deployment with an
``[auth.oidc]`` table accepts ``Authorization: Bearer <jwt>`` from that issuer. A token is
accepted only if all of this holds, in this order (each failure its own 401):

1. it is at most ``max_token_bytes`` long and a well-formed JWS;
2. its ``alg`` is one of the configured asymmetric algorithms (never ``none``, never an
   HMAC: the issuer's public key is no secret) and is the algorithm of the key it names;
3. its ``kid`` is in the issuer's JWKS (fetched over HTTPS, kept ``jwks_cache_s``; an
   unknown ``kid`` fetches the set again at most once per ``jwks_refresh_s``, so a flood
   of made-up key ids costs the issuer one request per period, not one per token);
4. the signature verifies; ``iss`` and ``aud`` are the configured ones; ``exp`` is in the
   future, ``nbf`` and ``iat`` not, each within ``leeway_s``;
5. its claims name a principal, one allowed role and one allowed jurisdiction; a
   ``subject`` role (only where ``subject_claim`` is set) also names her subject id, and
   the principal stands for that subject at home in the token's jurisdiction.

A bearer token, unlike a signed sovra token, binds neither the method, the path nor the
body, and works until it expires: whoever sees it (a proxy's log, a browser's history)
can replay it for any request meanwhile. So unless ``writes = true`` a bearer token may
only read (:data:`READS`); storing, granting, revoking and activating policy need a
signed token.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from typing import Any

import jwt
from jwt import PyJWK, PyJWKClient

from sovra.config import OidcConfig
from sovra.errors import BadRequest, Unauthenticated, Unavailable
from sovra.model import Principal, Role, check_id

__all__ = ["READS", "BearerAuthenticator", "bearer_scheme"]

READS = frozenset(
    {
        ("POST", "/v1/access"),
        ("POST", "/v1/access/batch"),
        ("POST", "/v1/sealed/access"),
        ("POST", "/v1/subjects/report"),
    }
)
"""The ``POST`` routes that only read (every ``GET`` does): a bearer token may call these
on a deployment whose ``[auth.oidc]`` does not allow writes. Each is still a logged
decision, allow or deny."""

Check = Callable[[bytes], Principal]


def bearer_scheme(bearer: BearerAuthenticator | None) -> Callable[[str, str, str, str], Check]:
    """For an ``Authorization`` header whose scheme is not ``Sovra``: ``(scheme, token,
    method, path)`` -> the check of the request (it takes the body, which a bearer token
    does not cover), or the refusal of the scheme.

    Raises (from the function returned):
        BadRequest: neither ``Sovra`` nor ``Bearer``.
        Unauthenticated: ``Bearer``, on a deployment without ``[auth.oidc]``.
    """

    def check(scheme: str, token: str, method: str, path: str) -> Check:
        if scheme.lower() != "bearer":
            raise BadRequest("Authorization scheme must be 'Sovra <token>' or 'Bearer <jwt>'")
        if bearer is None:
            raise Unauthenticated(
                "this deployment takes no bearer tokens (no [auth.oidc] issuer): "
                "sign the request with a sovra token"
            )
        return lambda _body: bearer.authenticate(token, method, path)

    return check


def _find(keys: list[PyJWK], kid: str) -> PyJWK | None:
    return next((k for k in keys if k.key_id == kid), None)


_NO_KEY = bytes(32)
"""A bearer principal's stand-in public key: it signs no sovra token (the store never
holds it, so no signed token can be checked against it)."""

_log = logging.getLogger("sovra.oidc")
_JWKS_TIMEOUT_S = 5.0
_RETRY_AFTER_S = 5.0


class BearerAuthenticator:
    """Checks bearer JWTs against one issuer's JWKS and maps their claims to principals."""

    def __init__(
        self,
        config: OidcConfig,
        *,
        clock: Callable[[], float],
        commitment: Callable[[str, str], str] | None = None,
    ) -> None:
        """Create an authenticator for *config*'s issuer; *clock* gives UNIX seconds.

        *commitment* (jurisdiction, subject id -> the subject's commitment) lets a token
        whose role is ``subject`` stand for the subject its ``subject_claim`` names.
        """
        self._config = config
        self._clock = clock
        self._commitment = commitment
        # The set is kept jwks_cache_s; fetching it again for an unknown kid is gated
        # here, on this authenticator's clock, rather than by the client's own cooldown.
        self._keys = PyJWKClient(
            config.jwks_url,
            cache_jwk_set=True,
            lifespan=config.jwks_cache_s,
            cooldown_duration=0,
            timeout=_JWKS_TIMEOUT_S,
        )
        self._refresh = threading.Lock()
        self._refreshed_at = -math.inf

    def authenticate(self, token: str, method: str, path: str) -> Principal:
        """The principal *token* stands for, for a *method* request to *path*.

        Raises:
            Unauthenticated: the token is refused (the message says why), or it may not
                make this request (a write, where ``writes`` is off).
            Unavailable: the issuer's JWKS could not be fetched.
        """
        c = self._config
        if (
            not c.writes
            and method.upper() not in ("GET", "HEAD")
            and ((method.upper(), path.partition("?")[0]) not in READS)
        ):
            raise Unauthenticated(
                f"a bearer token may only read here; sign {method} {path.partition('?')[0]} "
                "with a sovra token ([auth.oidc] writes = false)"
            )
        claims = self._verified(token)
        return self._principal(claims)

    def _verified(self, token: str) -> dict[str, Any]:
        c = self._config
        if len(token) > c.max_token_bytes:
            raise Unauthenticated(f"bearer token longer than {c.max_token_bytes} bytes")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise Unauthenticated("malformed bearer token: not a JWS compact JWT") from None
        alg = header.get("alg")
        if alg not in c.algorithms:
            raise Unauthenticated(
                f"bearer token algorithm {alg!r} not accepted (only {', '.join(c.algorithms)})"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("bearer token names no key (kid)")
        key = self._key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=c.audience,
                issuer=c.issuer,
                # The times are checked below against this deployment's clock.
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "require": ["iss", "aud", "exp", "iat"],
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.InvalidAlgorithmError as exc:
            raise Unauthenticated(f"bearer token algorithm refused: {exc}") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("bearer token signature does not verify") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated(f"bearer token not issued by {c.issuer}") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated(f"bearer token not meant for audience {c.audience!r}") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"bearer token has no {exc.claim!r} claim") from None
        except (jwt.InvalidTokenError, jwt.InvalidKeyError):
            raise Unauthenticated("malformed bearer token") from None
        self._check_times(claims)
        return claims

    def _key(self, kid: str) -> PyJWK:
        """The issuer's key *kid*: from the kept set, or from the set fetched again if
        that was not done in the last ``jwks_refresh_s`` (a rotated-in key is found, a
        flood of made-up kids costs the issuer one request per period)."""
        key = _find(self._signing_keys(refresh=False), kid)
        if key is None:
            with self._refresh:
                key = _find(self._signing_keys(refresh=False), kid)  # another thread's?
                now = self._clock()
                if key is None and now - self._refreshed_at >= self._config.jwks_refresh_s:
                    self._refreshed_at = now
                    key = _find(self._signing_keys(refresh=True), kid)
        if key is None:
            raise Unauthenticated(f"bearer token key {kid!r} is not in the issuer's key set")
        return key

    def _signing_keys(self, *, refresh: bool) -> list[PyJWK]:
        try:
            return self._keys.get_signing_keys(refresh=refresh)
        except jwt.PyJWTError as exc:
            # Unreachable, or what it serves is no usable key set: the issuer's fault.
            _log.warning("sign-in issuer's key set at %s: %s", self._config.jwks_url, exc)
            raise Unavailable(
                "the sign-in issuer's key set cannot be fetched", retry_after_s=_RETRY_AFTER_S
            ) from None

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        leeway = self._config.leeway_s
        now = self._clock()
        times = {k: claims[k] for k in ("exp", "nbf", "iat") if k in claims}
        for name, value in times.items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise Unauthenticated(f"bearer token {name} is not a number")
        if now >= times["exp"] + leeway:
            raise Unauthenticated(f"bearer token expired {int(now - times['exp'])} s ago")
        if "nbf" in times and now < times["nbf"] - leeway:
            raise Unauthenticated("bearer token not valid yet (nbf)")
        if now < times["iat"] - leeway:
            raise Unauthenticated("bearer token issued in the future: check the issuer's clock")

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        c = self._config
        name = claims.get(c.principal_claim)
        if not isinstance(name, str) or not name:
            raise Unauthenticated(f"bearer token has no {c.principal_claim!r} claim to name it")
        try:
            principal_id = check_id(c.principal_prefix + name, "principal id")
        except BadRequest:
            raise Unauthenticated(
                f"bearer token's {c.principal_claim!r} is not a usable principal id"
            ) from None
        jurisdiction, role = self._jurisdiction(claims), self._role(claims)
        subject = self._subject(claims, jurisdiction) if role is Role.SUBJECT else ""
        return Principal(principal_id, jurisdiction, role, _NO_KEY, subject)

    def _subject(self, claims: Mapping[str, Any], jurisdiction: str) -> str:
        """The commitment of the subject a ``subject`` token stands for: her id is the
        ``subject_claim``, her home the token's jurisdiction."""
        claim = self._config.subject_claim
        if claim is None or self._commitment is None:
            raise Unauthenticated("this deployment takes no bearer token for a data subject")
        value = claims.get(claim)
        if not isinstance(value, str) or not value:
            raise Unauthenticated(f"bearer token has no {claim!r} claim naming its subject")
        try:
            return self._commitment(jurisdiction, value)
        except BadRequest:
            raise Unauthenticated(f"bearer token's {claim!r} is not a usable subject id") from None

    def _role(self, claims: Mapping[str, Any]) -> Role:
        c = self._config
        if c.role is not None:
            return Role(c.role)
        assert c.role_claim is not None  # the configuration holds one of the two
        value = claims.get(c.role_claim)
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list):
            raise Unauthenticated(f"bearer token has no {c.role_claim!r} claim for its role")
        roles = {c.role_values.get(v, v) for v in values if isinstance(v, str)} & set(c.roles)
        if len(roles) != 1:
            raise Unauthenticated(
                f"bearer token's {c.role_claim!r} must give exactly one of "
                f"{', '.join(c.roles)}; it gives {len(roles)}"
            )
        return Role(roles.pop())

    def _jurisdiction(self, claims: Mapping[str, Any]) -> str:
        c = self._config
        if c.jurisdiction is not None:
            return c.jurisdiction
        assert c.jurisdiction_claim is not None  # the configuration holds one of the two
        value = claims.get(c.jurisdiction_claim)
        if value not in c.jurisdictions:
            raise Unauthenticated(
                f"bearer token's {c.jurisdiction_claim!r} must be one of "
                f"{', '.join(c.jurisdictions)}"
            )
        return str(value)
