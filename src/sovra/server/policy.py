"""HTTP routes of the policy stage: explanations, the active pack, activation, reviews, alerts.

``/v1/policy/metrics`` is public (Prometheus text: counts only, no requester, no subject),
like the log; everything else needs a signed request token.
"""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from sovra.governance import Governance
from sovra.policy import Envelope

__all__ = ["add_policy_routes"]


def add_policy_routes(app: FastAPI, governance: Governance, caller: Any) -> None:
    """Add the policy routes to *app*; *caller* is the app's authenticated-principal type."""
    gov = governance

    @app.get("/v1/decisions/{decision_id}/explain", tags=["policy"])
    def explain(decision_id: str, principal: caller) -> dict[str, Any]:
        """A logged decision in words: the rules that decided it and their reasons."""
        return gov.explain(principal, decision_id).to_dict()

    @app.get("/v1/policy", tags=["policy"])
    def active_pack(principal: caller) -> dict[str, Any]:
        """The active policy pack: name, version, digest, parties, threshold and rules."""
        return gov.active_pack()

    @app.post("/v1/policy/activate", tags=["policy"])
    async def activate(request: Request, principal: caller) -> dict[str, Any]:
        """Activate a pack signed by k of its n parties (a DSSE envelope); logged first."""
        envelope = Envelope.from_json(await request.body())
        receipt = gov.activate_policy(principal, envelope)
        active = gov.active_pack()
        return {
            "pack": active["name"],
            "version": active["version"],
            "digest": active["digest"],
            "receipt": receipt.to_dict(),
        }

    @app.get("/v1/policy/reviews", tags=["policy"])
    def reviews(principal: caller) -> dict[str, Any]:
        """Decisions queued for legal (or after-the-fact) review."""
        return {
            "reviews": [
                {
                    "decision_id": r.decision_id,
                    "queue": r.queue,
                    "time_s": r.time_s,
                    "principal": r.principal,
                    "principal_jurisdiction": r.principal_jurisdiction,
                    "justification": r.justification,
                    "effect": "allow" if r.allow else "deny",
                    "policies": list(r.policies),
                    "jurisdictions": list(r.jurisdictions),
                }
                for r in gov.reviews(principal)
            ]
        }

    @app.get("/v1/policy/alerts", tags=["policy"])
    def alerts(principal: caller) -> dict[str, Any]:
        """Refusals the bulk guard decided, newest last."""
        return {
            "alerts": [
                {
                    "time_s": a.time_s,
                    "requester": a.requester,
                    "jurisdiction": a.jurisdiction,
                    "policies": list(a.policies),
                    "decision_id": a.decision_id,
                }
                for a in gov.alerts(principal)
            ]
        }

    @app.get("/v1/policy/metrics", response_class=PlainTextResponse, tags=["policy"])
    def metrics() -> str:
        """Prometheus metrics of the bulk guard; ``sovra_bulk_alert`` is 1 while alerting."""
        return gov.metrics()
