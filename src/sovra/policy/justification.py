"""Access justification codes: the fixed, documented set of reasons an access may give.

In the spirit of Key Access Justifications: every access request carries one machine-readable
code, the policy pack decides on it, and the code is written into the logged decision. The
set is closed; an unknown code is refused, never mapped to a default.

=============================  ===============================================================
code                           meaning
=============================  ===============================================================
customer-initiated-support     the subject (customer) asked for help; support reads her data
service-operation              running the service the subject signed up for (billing, ...)
subject-request                the subject exercising her own right of access
domestic-legal-process         the home jurisdiction's authority under its own law
foreign-legal-process          a foreign authority through judicial assistance (a grant)
compelled-third-party          a demand that compels the operator directly (e.g. a foreign
                               provider-disclosure order); never auto-allowed when it conflicts
                               with the subject's home law: denied and queued for legal review
emergency                      imminent risk to life or safety; allowed to home parties only,
                               and every such allow is queued for review after the fact
=============================  ===============================================================
"""

from __future__ import annotations

import enum

from sovra.errors import BadRequest
from sovra.model import Role

__all__ = ["Justification", "default_justification", "parse_justification"]


class Justification(enum.StrEnum):
    """Why an access is made (see the module docstring for each code)."""

    CUSTOMER_INITIATED_SUPPORT = "customer-initiated-support"
    SERVICE_OPERATION = "service-operation"
    SUBJECT_REQUEST = "subject-request"
    DOMESTIC_LEGAL_PROCESS = "domestic-legal-process"
    FOREIGN_LEGAL_PROCESS = "foreign-legal-process"
    COMPELLED_THIRD_PARTY = "compelled-third-party"
    EMERGENCY = "emergency"


_BY_PURPOSE = {
    "customer-support": Justification.CUSTOMER_INITIATED_SUPPORT,
    "billing": Justification.SERVICE_OPERATION,
    "own-request": Justification.SUBJECT_REQUEST,
    **{j.value: j for j in Justification},
}


def parse_justification(code: object) -> Justification:
    """Return the :class:`Justification` named by *code*.

    Raises:
        BadRequest: *code* is not one of the fixed set.
    """
    try:
        return Justification(str(code))
    except ValueError:
        known = ", ".join(j.value for j in Justification)
        raise BadRequest(f"unknown justification {code!r}; use one of: {known}") from None


def default_justification(role: Role, purpose: str, foreign: bool) -> Justification:
    """The code a request that names none is decided under.

    A purpose that names a code (or a well-known purpose such as ``customer-support``) maps
    to it; otherwise the requester's role does. Authorities default to *foreign* legal
    process when any record is foreign, so that a missing code never widens access.
    """
    if purpose in _BY_PURPOSE:
        return _BY_PURPOSE[purpose]
    if role is Role.SUBJECT:
        return Justification.SUBJECT_REQUEST
    if role is Role.AUTHORITY:
        if foreign:
            return Justification.FOREIGN_LEGAL_PROCESS
        return Justification.DOMESTIC_LEGAL_PROCESS
    return Justification.SERVICE_OPERATION
