"""Explanations of logged decisions, in words a compliance officer can read.

``sovra explain DECISION_ID`` finds the decision's entry in the log and renders it with
this module: who asked, for what and why (justification), the effect, each rule that
decided it with the rule's stated reason, the grant it relied on, and whether it was sent
to review. Pure: it reads an entry's fields, never the log itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sovra.errors import BadRequest
from sovra.model import id_count
from sovra.policy.decide import ACTIONS, BUILT_IN_RULES
from sovra.policy.pack import PolicyPack

__all__ = ["Explanation", "explain_entry"]


@dataclass(frozen=True, slots=True)
class Explanation:
    """One decision, explained."""

    decision_id: str
    log_index: int
    time_ms: int
    effect: str
    principal: str
    action: str
    purpose: str
    justification: str
    reason: str
    rules: tuple[tuple[str, str], ...]  # (@id, @reason) of each deciding rule
    grant: str | None
    review: str
    records: int
    subjects: int
    pack: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the API."""
        return {
            "decision_id": self.decision_id,
            "log_index": self.log_index,
            "time_ms": self.time_ms,
            "effect": self.effect,
            "principal": self.principal,
            "action": self.action,
            "purpose": self.purpose,
            "justification": self.justification,
            "reason": self.reason,
            "rules": [{"id": i, "reason": r} for i, r in self.rules],
            "grant": self.grant,
            "review": self.review,
            "records": self.records,
            "subjects": self.subjects,
            "pack": self.pack,
            "text": self.to_text(),
        }

    def to_text(self) -> str:
        """The explanation as a few plain sentences."""
        verdict = "ALLOWED" if self.effect == "allow" else "DENIED"
        asked = (
            f"{self.principal} asked to {self.action} {self.records} record(s) of "
            f"{self.subjects} subject(s) for purpose {self.purpose!r}, justified as "
            f"{self.justification or 'not stated'}."
            if self.action in ACTIONS
            else f"{self.principal} asked to {self.action} (a governance action)"
            + (f" concerning {self.subjects} subject(s)." if self.subjects else ".")
        )
        lines = [
            f"Decision {self.decision_id} (log index {self.log_index}) was {verdict}.",
            asked,
            f"Reason: {self.reason}.",
        ]
        if self.rules:
            lines.append("Rules that decided it:")
            lines += [f"  - {i}: {r}" for i, r in self.rules]
        else:
            lines.append(
                "No rule permitted it, so it was denied by default (an empty match denies)."
            )
        if self.grant:
            lines.append(f"It relied on the legal-assistance grant with digest {self.grant}.")
        if self.review:
            lines.append(f"It was queued for {self.review} review.")
        lines.append(f"Rules as worded in pack {self.pack}.")
        return "\n".join(lines)


def explain_entry(
    fields: Mapping[str, Any], *, index: int, time_ms: int, principal: str, pack: PolicyPack
) -> Explanation:
    """Explain a ``decision`` log entry's *fields* with the rules' reasons from *pack*.

    Raises:
        BadRequest: the fields are not a decision entry's.
    """
    try:
        policies = [str(p) for p in fields["policies"]]
        rules = {**BUILT_IN_RULES, **pack.rules()}
        return Explanation(
            decision_id=str(fields["decision_id"]),
            log_index=index,
            time_ms=time_ms,
            effect=str(fields["effect"]),
            principal=principal,
            action=str(fields.get("action", "read")),
            purpose=str(fields["purpose"]),
            justification=str(fields.get("justification", "")),
            reason=str(fields["reason"]),
            rules=tuple((p, rules.get(p, "(rule not in the active pack)")) for p in policies),
            grant=fields.get("grant"),
            review=str(fields.get("review", "")),
            records=id_count(fields, "records"),
            subjects=id_count(fields, "subjects"),
            pack=f"{pack.name} v{pack.version}",
        )
    except (KeyError, TypeError) as exc:
        raise BadRequest(f"log entry {index} is not a decision: missing {exc}") from None
