"""The HTTP route of erasure: a subject (or her home authority) asks for a crypto-shred.

``POST /v1/subjects/erase`` runs :meth:`~sovra.governance.Governance.shred`: the policy
stage decides (by default the subject herself or her home authority may, where the active
pack has a rule permitting ``shred``), the decision is logged, allow and deny alike; on an
allow the ``shred`` entry is logged and only then her custodian destroys her key. A refusal
is a 403 naming the log index of the logged deny, and destroys nothing.

The page's subject view calls it after asking the person to confirm (see docs/page.md).
"""

from typing import Any

from fastapi import FastAPI

from sovra.governance import Governance
from sovra.server.bodies import SubjectRef

__all__ = ["ERASE", "add_erasure_routes"]

ERASE = "/v1/subjects/erase"


def add_erasure_routes(app: FastAPI, governance: Governance, caller: Any) -> None:
    """Add the erasure route to *app*; *caller* is the app's authenticated-principal type."""

    @app.post(
        ERASE,
        tags=["subjects"],
        responses={403: {"description": "refused by the policy; the refusal is logged"}},
    )
    def erase(body: SubjectRef, principal: caller) -> dict[str, Any]:
        """Erase a subject (crypto-shred): logged first, then her key is destroyed, so no
        record of hers opens again. Allowed to the subject herself or her home authority
        where the active policy pack permits erasure; a refusal is logged too (403)."""
        receipt = governance.shred(
            principal, jurisdiction=body.jurisdiction, subject_id=body.subject_id
        )
        return {
            "erased": True,
            "jurisdiction": body.jurisdiction,
            "log_index": receipt.index,
            "receipt": receipt.to_dict(),
        }
