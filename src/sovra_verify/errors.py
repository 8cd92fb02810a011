"""The one error tree of sovra (re-exported by :mod:`sovra.errors`).

Split by whose fault it is, translated once at each edge (HTTP status in ``server/``,
exit code and message in ``cli``)::

    SovraError
    ├── ClientError                 the caller sent something wrong (4xx)
    │   ├── BadRequest              400 malformed, unknown field, unknown jurisdiction
    │   ├── Unauthenticated         401 unknown, expired, replayed or forged credential
    │   ├── Denied                  403 a logged decision (or the custodian) said no
    │   ├── NotFound                404 no such record, grant, entry or checkpoint
    │   ├── RequestTimeout          408 a request body did not arrive in time
    │   └── PayloadTooLarge         413 over a configured size limit
    ├── IntegrityError              stored bytes or a proof failed authentication (500)
    │   └── VerificationError       a proof, checkpoint or signature does not verify
    ├── ConfigError                 the deployment on disk is missing or inconsistent (500)
    └── Unavailable                 the gateway, or a database or bucket behind it, cannot
                                    be reached now (503, with Retry-After when it knows when)

Decryption and unwrapping raise one opaque :class:`IntegrityError` whatever went wrong,
so no oracle leaks; details go to the server log only.
"""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "ClientError",
    "ConfigError",
    "Denied",
    "IntegrityError",
    "NotFound",
    "PayloadTooLarge",
    "RequestTimeout",
    "SovraError",
    "Unauthenticated",
    "Unavailable",
    "VerificationError",
]


class SovraError(Exception):
    """Base of every error sovra raises on purpose."""

    status: int = 500
    code: str = "internal"

    def __init__(self, message: str, *, log_index: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        # The log index of the entry that recorded this refusal, when one was written.
        self.log_index = log_index

    def diagnostics(self) -> str:
        """A one-paragraph explanation fit for a terminal."""
        text = f"{self.code}: {self.message}"
        if self.log_index is not None:
            text += f" (logged at index {self.log_index})"
        return text

    def to_dict(self) -> dict[str, object]:
        """The JSON body an edge sends for this error."""
        body: dict[str, object] = {"error": self.code, "message": self.message}
        if self.log_index is not None:
            body["log_index"] = self.log_index
        return body


class ClientError(SovraError):
    """The request was wrong; retrying it unchanged will fail the same way."""

    status = 400
    code = "bad_request"


class BadRequest(ClientError):
    """Malformed or semantically invalid input."""


class Unauthenticated(ClientError):
    """The credential is missing, unknown, expired, replayed or forged."""

    status = 401
    code = "unauthenticated"


class Denied(ClientError):
    """A decision refused the request; the refusal is in the log."""

    status = 403
    code = "denied"


class NotFound(ClientError):
    """The named thing does not exist."""

    status = 404
    code = "not_found"


class RequestTimeout(ClientError):
    """The request body did not arrive within the configured time."""

    status = 408
    code = "request_timeout"


class PayloadTooLarge(ClientError):
    """Input over a configured size limit."""

    status = 413
    code = "payload_too_large"


class IntegrityError(SovraError):
    """Stored bytes failed authentication: tampering, corruption or a wrong key."""

    status = 500
    code = "integrity"


class VerificationError(IntegrityError):
    """A Merkle proof, checkpoint, receipt or signature does not verify."""

    code = "verification_failed"


class ConfigError(SovraError):
    """The deployment directory or its configuration is missing or inconsistent."""

    status = 500
    code = "config"


class Unavailable(SovraError):
    """A client could not reach a gateway, or what answered is not one, or the gateway
    could not reach a database or an S3 endpoint it stores in; retrying may help.

    Attributes:
        retry_after_s: when to retry, if known (the HTTP edge sends it as Retry-After).
    """

    status = 503
    code = "unavailable"

    def __init__(
        self, message: str, *, log_index: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, log_index=log_index)
        self.retry_after_s = retry_after_s
