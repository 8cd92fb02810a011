"""Record routes: ingest one record, read records under a logged decision.

``POST /v1/records`` and ``POST /v1/access`` are the two flows of the gateway; their
common case is served by :mod:`sovra.server.direct`, the batch forms by
:mod:`sovra.server.batch`, which render each result as :func:`receipt_json` and
:func:`access_json` do here.
"""

from typing import Any

from fastapi import FastAPI

from sovra.gateway import AccessResult, Gateway, IngestReceipt
from sovra.model import Grant
from sovra.server.answers import JSONBytes
from sovra.server.bodies import AccessBody, IngestBody

__all__ = ["access_json", "add_record_routes", "receipt_json"]


def add_record_routes(app: FastAPI, gateway: Gateway, caller: Any) -> None:
    """Add the record routes; *caller* is the app's authenticated-principal type."""
    gw = gateway

    @app.post("/v1/records", status_code=201, tags=["records"], response_class=JSONBytes)
    def ingest(body: IngestBody, principal: caller) -> JSONBytes:
        """Ingest a record: classify, minimise, place, seal, wrap, store, log."""
        receipt = gw.ingest(
            principal,
            subject_id=body.subject_id,
            jurisdiction=body.jurisdiction,
            content=body.content,
            purpose=body.purpose,
            other_homes=body.other_homes,
        )
        return JSONBytes(receipt_json(receipt), status_code=201)

    @app.post("/v1/access", tags=["records"], response_class=JSONBytes)
    def access(body: AccessBody, principal: caller) -> JSONBytes:
        """Read records. The decision, allow or deny, is logged before anything is released."""
        grant = Grant.from_json(body.grant) if body.grant is not None else None
        return JSONBytes(
            access_json(
                gw.access(
                    principal,
                    purpose=body.purpose,
                    record_ids=body.record_ids,
                    subjects=[(s.jurisdiction, s.subject_id) for s in body.subjects],
                    jurisdiction=body.jurisdiction,
                    grant=grant,
                    justification=body.justification,
                    reveal=body.reveal,
                )
            )
        )


def receipt_json(r: IngestReceipt) -> dict[str, Any]:
    """An ingest receipt as ``POST /v1/records`` answers it."""
    return {
        "record_id": r.record_id,
        "region": r.region,
        "log_index": r.receipt.index,
        "receipt": r.receipt.to_dict(),
        "findings": dict(r.findings),
        "actions": dict(r.actions),
    }


def access_json(r: AccessResult) -> dict[str, Any]:
    """An access result as ``POST /v1/access`` answers it."""
    d = r.decision
    return {
        "decision": {
            "decision_id": d.decision_id,
            "action": d.action,
            "effect": "allow" if d.allow else "deny",
            "reason": d.reason,
            "policies": list(d.policies),
            "grant": d.grant,
            "justification": d.justification,
            "review": d.review,
        },
        "log_index": r.decision_receipt.index,
        "decision_receipt": r.decision_receipt.to_dict(),
        "release_receipt": r.release_receipt.to_dict(),
        "records": dict(r.records),
    }
