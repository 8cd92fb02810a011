"""Governance routes: judicial-assistance grants, and the report of who touched a subject's data."""

from typing import Any

from fastapi import FastAPI

from sovra.governance import Governance, SubjectReport
from sovra.model import Grant
from sovra.server.answers import b64_list
from sovra.server.bodies import SubjectRef

__all__ = ["add_governance_routes"]


def add_governance_routes(app: FastAPI, governance: Governance, caller: Any) -> None:
    """Add the grant and subject routes; *caller* is the app's authenticated-principal type."""
    gov = governance

    @app.post("/v1/grants", status_code=201, tags=["grants"])
    def register_grant(body: dict[str, Any], principal: caller) -> dict[str, Any]:
        """Register a legal-assistance grant signed by the subjects' home authority."""
        return {"receipt": gov.register_grant(principal, Grant.from_json(body)).to_dict()}

    @app.get("/v1/grants/{grant_id}", tags=["grants"])
    def show_grant(grant_id: str, principal: caller) -> dict[str, Any]:
        """A registered grant, with its revocation status."""
        status = gov.grant_status(principal, grant_id)
        return {
            "grant": status.grant.body() | {"signature": status.grant.signature.hex()},
            "revoked": status.revoked,
        }

    @app.post("/v1/grants/{grant_id}/revoke", tags=["grants"])
    def revoke_grant(grant_id: str, principal: caller) -> dict[str, Any]:
        """Revoke a grant (its approving authority), or withdraw a co-signature of it (a
        co-signing authority); takes effect at once. The answer says which: ``outcome``
        ``revoked``, or ``cosignature-withdrawn`` with the ``cosigner``."""
        done = gov.revoke_grant(principal, grant_id)
        return {
            "receipt": done.receipt.to_dict(),
            "grant_id": done.grant_id,
            "outcome": done.outcome,
            **({"cosigner": done.cosigner} if done.cosigner is not None else {}),
        }

    @app.post("/v1/subjects/report", tags=["subjects"])
    def subject_report(body: SubjectRef, principal: caller) -> dict[str, Any]:
        """Who touched this subject's data: her log entries with inclusion proofs."""
        report = gov.subject_report(
            principal, jurisdiction=body.jurisdiction, subject_id=body.subject_id
        )
        return _report(report)


def _report(r: SubjectReport) -> dict[str, Any]:
    return {
        "commitment": r.commitment,
        "checkpoint": r.checkpoint,
        "entries": [
            {"index": e.index, "entry": e.entry.decode(), "proof": b64_list(e.proof)}
            for e in r.entries
        ],
    }
