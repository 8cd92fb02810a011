"""Policy packs: Cedar policies validated against sovra's entity schema.

Each policy carries ``@id`` (stable name) and ``@reason`` (what a compliance officer
reads when it decides). A pack that fails schema validation, or a policy missing either
annotation, is refused before it can take effect (fail closed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import cedarpy

from sovra.errors import BadRequest

__all__ = ["PolicyPack", "default_pack"]

_MAX_PACK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class PolicyPack:
    """A parsed, validated policy pack."""

    text: str
    policy_set: Any  # cedarpy.PolicySet, an opaque handle
    schema: Any  # cedarpy.Schema
    annotations: dict[str, tuple[str, str]]  # cedar policy id -> (@id, @reason)

    @classmethod
    def load(cls, text: str, schema_text: str | None = None) -> PolicyPack:
        """Parse and validate a pack.

        Raises:
            BadRequest: oversized, unparsable, failing the schema, or unannotated.
        """
        if len(text.encode()) > _MAX_PACK_BYTES:
            raise BadRequest(f"policy pack is over {_MAX_PACK_BYTES} bytes")
        schema_text = schema_text if schema_text is not None else _packaged("schema.cedarschema")
        try:
            policy_set = cedarpy.PolicySet.from_str(text)
            schema = cedarpy.Schema.from_str(schema_text)
            parsed = json.loads(cedarpy.policies_to_json_str(text))
        except ValueError as exc:
            raise BadRequest(f"policy pack does not parse: {exc}") from None
        result = cedarpy.validate_policies(text, schema_text)
        if not result.validation_passed:
            details = "; ".join(str(e) for e in result.errors)
            raise BadRequest(f"policy pack fails schema validation: {details}")
        annotations: dict[str, tuple[str, str]] = {}
        for pid, policy in parsed.get("staticPolicies", {}).items():
            ann = policy.get("annotations") or {}
            if not ann.get("id") or not ann.get("reason"):
                raise BadRequest(f"policy {pid} needs both @id and @reason annotations")
            annotations[pid] = (ann["id"], ann["reason"])
        if not annotations:
            raise BadRequest("an empty policy pack would deny everything; refusing it")
        return cls(text=text, policy_set=policy_set, schema=schema, annotations=annotations)

    def name_of(self, cedar_id: str) -> str:
        """The ``@id`` of a policy."""
        return self.annotations[cedar_id][0]

    def reason_of(self, cedar_id: str) -> str:
        """The ``@reason`` of a policy."""
        return self.annotations[cedar_id][1]


def _packaged(name: str) -> str:
    return (resources.files("sovra.policy") / "packs" / name).read_text(encoding="utf-8")


def default_pack() -> PolicyPack:
    """The shipped pack encoding the Global Data Security Initiative principles."""
    return PolicyPack.load(_packaged("default.cedar"))
