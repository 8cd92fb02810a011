"""The one error tree of sovra, defined in :mod:`sovra_verify.errors`.

The tree sits in the verifier's package so that an auditor's verification raises the
same errors without installing the gateway; every sovra module imports it from here.
"""

from __future__ import annotations

from sovra_verify.errors import (
    BadRequest,
    ClientError,
    ConfigError,
    Denied,
    IntegrityError,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    SovraError,
    Unauthenticated,
    Unavailable,
    VerificationError,
)

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
