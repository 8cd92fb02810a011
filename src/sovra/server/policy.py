"""HTTP routes of the policy stage: explanations, the active pack, activation, reviews, alerts.

``/v1/policy/metrics`` is public (Prometheus text: counts only, no requester, no subject),
like the log; everything else needs a signed request token.
"""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from sovra.deployment import Deployment
from sovra.errors import Denied
from sovra.model import Principal, Role
from sovra.policy import Envelope

__all__ = ["add_policy_routes"]

_OVERSIGHT = frozenset({Role.OPERATOR, Role.AUTHORITY, Role.AUDITOR})


def add_policy_routes(app: FastAPI, deployment: Deployment, caller: Any) -> None:
    """Add the policy routes to *app*; *caller* is the app's authenticated-principal type."""
    gw = deployment.gateway

    def _oversight(principal: Principal, what: str) -> None:
        if principal.role not in _OVERSIGHT:
            raise Denied(f"{what} is for the operator, authorities and auditors")

    @app.get("/v1/decisions/{decision_id}/explain", tags=["policy"])
    def explain(decision_id: str, principal: caller) -> dict[str, Any]:
        """A logged decision in words: the rules that decided it and their reasons."""
        return gw.explain(decision_id).to_dict()

    @app.get("/v1/policy", tags=["policy"])
    def active_pack(principal: caller) -> dict[str, Any]:
        """The active policy pack: name, version, digest, parties, threshold and rules."""
        pack = gw.decisions.pack
        return {
            "name": pack.name,
            "version": pack.version,
            "digest": pack.digest,
            "parties": list(pack.parties),
            "threshold": pack.threshold,
            "rules": pack.rules(),
        }

    @app.post("/v1/policy/activate", tags=["policy"])
    async def activate(request: Request, principal: caller) -> dict[str, Any]:
        """Activate a pack signed by k of its n parties (a DSSE envelope); logged first."""
        envelope = Envelope.from_json(await request.body())
        receipt = gw.activate_policy(principal, envelope)
        pack = gw.decisions.pack
        return {
            "pack": pack.name,
            "version": pack.version,
            "digest": pack.digest,
            "receipt": receipt.to_dict(),
        }

    @app.get("/v1/policy/reviews", tags=["policy"])
    def reviews(principal: caller) -> dict[str, Any]:
        """Decisions queued for legal (or after-the-fact) review."""
        _oversight(principal, "the review queue")
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
                for r in gw.decisions.reviews()
            ]
        }

    @app.get("/v1/policy/alerts", tags=["policy"])
    def alerts(principal: caller) -> dict[str, Any]:
        """Refusals the bulk guard decided, newest last."""
        _oversight(principal, "bulk alerts")
        return {
            "alerts": [
                {
                    "time_s": a.time_s,
                    "requester": a.requester,
                    "jurisdiction": a.jurisdiction,
                    "policies": list(a.policies),
                    "decision_id": a.decision_id,
                }
                for a in gw.decisions.guard.alerts()
            ]
        }

    @app.get("/v1/policy/metrics", response_class=PlainTextResponse, tags=["policy"])
    def metrics() -> str:
        """Prometheus metrics of the bulk guard; ``sovra_bulk_alert`` is 1 while alerting."""
        return gw.decisions.guard.metrics()
