"""What the ingest flow works out once rather than once per record.

A jurisdiction's minimisation rule is checked once per rule, not once per record
(:class:`RuleBook`). Within one batch (:class:`BatchFacts`), records of one principal and
jurisdiction share one allow of the policy stage and the custodian's KEK version, as one
record's ingest would have them at the batch's instant; a deny is still decided and logged
for each record it refuses.
"""

from __future__ import annotations

from collections.abc import Callable

from sovra.classify.minimise import Action, Rules, parse_rules
from sovra.config import JurisdictionConfig
from sovra.model import Principal

__all__ = ["BatchFacts", "RuleBook"]

_MAX_RULES = 256
"""Rules kept at most (jurisdictions times purposes); more only means checking again."""


class RuleBook:
    """Each (jurisdiction, purpose)'s minimisation rule, parsed on first use."""

    def __init__(self) -> None:
        # Keyed by the identity of the frozen jurisdiction config, which the entry keeps
        # alive: a new configuration is a new object, and is parsed anew.
        self._rules: dict[tuple[int, str | None], tuple[JurisdictionConfig, Rules, bool]] = {}

    def rules(self, jurisdiction: JurisdictionConfig, purpose: str | None) -> tuple[Rules, bool]:
        """The rule for data about a subject of *jurisdiction* collected for *purpose*, and
        whether the jurisdiction's base rule refuses a kind (then the ingest needs a scan).

        Raises:
            BadRequest: *purpose* is not one *jurisdiction* lists.
        """
        key = (id(jurisdiction), purpose)
        hit = self._rules.get(key)
        if hit is not None and hit[0] is jurisdiction:
            return hit[1], hit[2]
        plan = jurisdiction.rules_for(purpose)
        rules = parse_rules({kind: Action(action) for kind, action in plan.items()})
        scan_required = any(a == "refuse" for a in jurisdiction.minimisation.values())
        if len(self._rules) >= _MAX_RULES:
            self._rules.clear()
        self._rules[key] = (jurisdiction, rules, scan_required)
        return rules, scan_required


class BatchFacts:
    """What the records of one ingest batch share."""

    def __init__(self) -> None:
        self._allowed: set[tuple[Principal, str, bool, bool]] = set()
        self._kek_versions: dict[str, int] = {}

    def may_ingest(
        self,
        principal: Principal,
        jurisdiction: str,
        subject: str,
        scan_required: bool,
        decide: Callable[[], None],
    ) -> None:
        """Run *decide* (the policy stage's decision, raising and logging on a deny) unless
        an ingest that it would decide alike was allowed earlier in this batch.

        The decision reads the principal, the jurisdiction, whether the subject is the
        principal itself and whether a scan is required; the key is exactly those.
        """
        key = (
            principal,
            jurisdiction,
            bool(principal.subject) and subject == principal.subject,
            scan_required,
        )
        if key in self._allowed:
            return
        decide()
        self._allowed.add(key)

    def kek_version(self, jurisdiction: str, current: Callable[[], int]) -> int:
        """The KEK version new records of *jurisdiction* carry, asked once per batch."""
        version = self._kek_versions.get(jurisdiction)
        if version is None:
            version = self._kek_versions[jurisdiction] = current()
        return version
