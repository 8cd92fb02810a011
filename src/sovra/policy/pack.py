"""Policy packs: versioned bundles of Cedar policies, the entity schema and parameters.

A :class:`PackBundle` is what parties sign: a name, a monotonically increasing version,
the parties (jurisdictions) whose authorities co-sign it and how many must (k of n), the
Cedar policies, the schema and the parameters (bulk limits, transfer bases, purposes...).
Its canonical bytes are JSON with sorted keys. :meth:`PackBundle.compile` turns it into a
:class:`PolicyPack`, the parsed, validated form the decision point evaluates.

A pack is refused before it can take effect (fail closed) when it is oversized, does not
parse, fails schema validation, has a policy without ``@id`` and ``@reason``, repeats an
``@id``, has unknown fields, or is empty. Errors name the policy and its line.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import cedarpy

from sovra.errors import BadRequest
from sovra.model import (
    canonical_json,
    check_id,
    check_jurisdiction,
    check_purpose,
    field_problem,
    parse_json,
)
from sovra.policy.bulk import BulkLimits

__all__ = [
    "PACK_FORMAT",
    "SHIPPED_PACKS",
    "PackBundle",
    "PackParameters",
    "PolicyPack",
    "default_pack",
    "shipped_bundle",
]

PACK_FORMAT = "sovra-policy-pack/v1"
SHIPPED_PACKS = ("gdsi", "gdpr-chapter-v", "pipl-cross-border")
_MAX_PACK_BYTES = 1024 * 1024
_NAME = re.compile(r"[a-z][a-z0-9-]{0,63}")
_BULK_KEYS = {
    "request_subject_limit": "request_limit",
    "window_subject_limit": "window_limit",
    "jurisdiction_subject_limit": "jurisdiction_limit",
    "foreign_subject_limit": "foreign_limit",
    "enumeration_run": "enumeration_run",
}


def _positive_int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadRequest(f"{what} must be a positive integer, got {value!r}")
    return value


def _only(obj: Mapping[str, Any], allowed: set[str], where: str) -> None:
    problem = field_problem(obj, frozenset(), allowed, where)
    if problem is not None:
        raise BadRequest(problem)


def _codes(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise BadRequest(f"{what} must be a list of jurisdiction codes")
    return tuple(sorted({check_jurisdiction(v) for v in value}))


@dataclass(frozen=True, slots=True)
class PackParameters:
    """The parameters a pack carries besides its rules.

    Attributes:
        bulk: caps for the bulk guard; a pack may only lower the deployment's caps (the
            window's length stays the deployment's ``[bulk] window_s``).
        bulk_grant_cosigners: co-signing authorities, besides the approver, that a grant
            naming more subjects than the per-request cap needs.
        adequacy: per home jurisdiction, jurisdictions its law deems adequate.
        contracts: per home jurisdiction, jurisdictions with transfer contracts on file.
        purposes: per home jurisdiction, purposes its services may read for (adds to the
            deployment's list for that jurisdiction).
        regions: per home jurisdiction, the storage regions its law allows; a record stored
            elsewhere is not released (a jurisdiction not listed is not restricted here).
        retention_days: per home jurisdiction, how long records may be used after ingest;
            older records are released to their subject only.
    """

    bulk: Mapping[str, int] = field(default_factory=dict)
    bulk_grant_cosigners: int = 1
    adequacy: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    contracts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    purposes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    regions: Mapping[str, frozenset[str]] = field(default_factory=dict)
    retention_days: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: object) -> PackParameters:
        """Parse the ``parameters`` member of a bundle.

        Raises:
            BadRequest: unknown fields or bad values.
        """
        if not isinstance(raw, dict):
            raise BadRequest("pack parameters must be an object")
        _only(
            raw,
            {"bulk", "bulk_grant_cosigners", "transfers", "purposes", "regions", "retention_days"},
            "parameters",
        )
        bulk_raw = raw.get("bulk", {})
        if not isinstance(bulk_raw, dict):
            raise BadRequest("parameters.bulk must be an object")
        _only(bulk_raw, set(_BULK_KEYS), "parameters.bulk")
        bulk = {k: _positive_int(v, f"parameters.bulk.{k}") for k, v in bulk_raw.items()}
        cosigners = raw.get("bulk_grant_cosigners", 1)
        if not isinstance(cosigners, int) or isinstance(cosigners, bool) or cosigners < 0:
            raise BadRequest("parameters.bulk_grant_cosigners must be an integer >= 0")
        transfers = raw.get("transfers", {})
        if not isinstance(transfers, dict):
            raise BadRequest("parameters.transfers must be an object")
        adequacy: dict[str, tuple[str, ...]] = {}
        contracts: dict[str, tuple[str, ...]] = {}
        for home, basis in transfers.items():
            check_jurisdiction(home)
            if not isinstance(basis, dict):
                raise BadRequest(f"parameters.transfers.{home} must be an object")
            _only(basis, {"adequacy", "contracts"}, f"parameters.transfers.{home}")
            adequacy[home] = _codes(basis.get("adequacy", []), f"transfers.{home}.adequacy")
            contracts[home] = _codes(basis.get("contracts", []), f"transfers.{home}.contracts")
        purposes_raw = raw.get("purposes", {})
        if not isinstance(purposes_raw, dict):
            raise BadRequest("parameters.purposes must be an object")
        purposes = {
            check_jurisdiction(j): tuple(sorted({check_purpose(p) for p in ps}))
            for j, ps in purposes_raw.items()
            if isinstance(ps, list) or _fail(f"parameters.purposes.{j} must be a list")
        }
        regions_raw = raw.get("regions", {})
        if not isinstance(regions_raw, dict):
            raise BadRequest("parameters.regions must be an object")
        regions = {
            check_jurisdiction(j): frozenset(check_id(r, f"parameters.regions.{j}") for r in rs)
            for j, rs in regions_raw.items()
            if (isinstance(rs, list) and rs) or _fail(f"parameters.regions.{j} must list regions")
        }
        retention_raw = raw.get("retention_days", {})
        if not isinstance(retention_raw, dict):
            raise BadRequest("parameters.retention_days must be an object")
        retention = {
            check_jurisdiction(j): _positive_int(d, f"parameters.retention_days.{j}")
            for j, d in retention_raw.items()
        }
        return cls(bulk, cosigners, adequacy, contracts, purposes, regions, retention)

    def bulk_limits(self, base: BulkLimits) -> BulkLimits:
        """*base* with each cap lowered to this pack's where the pack's is smaller."""
        values = {
            "request_limit": base.request_limit,
            "window_limit": base.window_limit,
            "window_s": base.window_s,
            "jurisdiction_limit": base.jurisdiction_limit,
            "foreign_limit": base.foreign_limit,
            "enumeration_run": base.enumeration_run,
        }
        for key, value in self.bulk.items():
            name = _BULK_KEYS[key]
            values[name] = min(values[name], value)
        return BulkLimits(**values)


def _fail(message: str) -> bool:
    raise BadRequest(message)


@dataclass(frozen=True)
class PackBundle:
    """A versioned, signable policy pack: rules, schema and parameters in one document."""

    name: str
    version: int
    parties: tuple[str, ...]
    threshold: int
    policies: str
    schema: str
    parameters: Mapping[str, Any]
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise BadRequest(f"pack name must match {_NAME.pattern}, got {self.name!r}")
        _positive_int(self.version, "pack version")
        if not self.parties:
            raise BadRequest("a pack must name the parties that co-sign it")
        for p in self.parties:
            check_jurisdiction(p)
        if len(set(self.parties)) != len(self.parties):
            raise BadRequest("a pack names each party once")
        if not (1 <= self.threshold <= len(self.parties)):
            raise BadRequest(
                f"pack threshold must be between 1 and {len(self.parties)} (its parties), "
                f"got {self.threshold}"
            )
        if not isinstance(self.policies, str) or not isinstance(self.schema, str):
            raise BadRequest("pack policies and schema must be text")
        if not isinstance(self.description, str) or len(self.description) > 1000:
            raise BadRequest("pack description must be text of at most 1000 characters")

    def body(self) -> dict[str, Any]:
        """The bundle as a JSON object."""
        return {
            "format": PACK_FORMAT,
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "parties": list(self.parties),
            "threshold": self.threshold,
            "policies": self.policies,
            "schema": self.schema,
            "parameters": dict(self.parameters),
        }

    def to_bytes(self) -> bytes:
        """Canonical bytes: what every party signs."""
        return canonical_json(self.body())

    def digest(self) -> str:
        """SHA-256 of :meth:`to_bytes`, hex: how the log names a pack."""
        return hashlib.sha256(self.to_bytes()).hexdigest()

    @classmethod
    def from_bytes(cls, data: bytes) -> PackBundle:
        """Parse :meth:`to_bytes` output (any JSON layout; unknown fields refused).

        Raises:
            BadRequest: oversized, not JSON, unknown or missing fields, bad values.
        """
        obj = parse_json(data, limit=_MAX_PACK_BYTES, what="policy pack")
        if not isinstance(obj, dict):
            raise BadRequest("policy pack must be a JSON object")
        required = {"format", "name", "version", "parties", "threshold", "policies", "schema"}
        missing = required - obj.keys()
        if missing:
            raise BadRequest(f"policy pack is missing {', '.join(sorted(missing))}")
        _only(obj, required | {"parameters", "description"}, "policy pack")
        if obj["format"] != PACK_FORMAT:
            raise BadRequest(f"policy pack format must be {PACK_FORMAT!r}, got {obj['format']!r}")
        if not isinstance(obj["parties"], list):
            raise BadRequest("policy pack parties must be a list of jurisdiction codes")
        return cls(
            name=obj["name"],
            version=obj["version"],
            parties=tuple(obj["parties"]),
            threshold=_positive_int(obj["threshold"], "pack threshold"),
            policies=obj["policies"],
            schema=obj["schema"],
            parameters=obj.get("parameters", {}),
            description=obj.get("description", ""),
        )

    def compile(self) -> PolicyPack:
        """Parse and validate the bundle into an evaluable pack.

        Raises:
            BadRequest: see :meth:`PolicyPack.load`.
        """
        return PolicyPack.load(
            self.policies,
            self.schema,
            parameters=PackParameters.from_dict(self.parameters),
            name=self.name,
            version=self.version,
            digest=self.digest(),
            parties=self.parties,
            threshold=self.threshold,
        )


@dataclass(frozen=True)
class PolicyPack:
    """A parsed, validated policy pack.

    ``annotations`` maps Cedar's policy id (``policy0``...) to ``(@id, @reason)``;
    ``review`` maps it to the ``@review`` queue name for rules that send decisions to
    human review; ``alerts`` to the ``@alert`` channel for rules whose refusals raise an
    alert on the metrics endpoint.
    """

    text: str
    policy_set: Any  # cedarpy.PolicySet, an opaque handle
    schema: Any  # cedarpy.Schema
    annotations: dict[str, tuple[str, str]]
    review: dict[str, str] = field(default_factory=dict)
    alerts: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    parameters: PackParameters = field(default_factory=PackParameters)
    name: str = "custom"
    version: int = 1
    digest: str = ""
    parties: tuple[str, ...] = ()
    threshold: int = 0

    @classmethod
    def load(
        cls,
        text: str,
        schema_text: str | None = None,
        *,
        parameters: PackParameters | None = None,
        name: str = "custom",
        version: int = 1,
        digest: str = "",
        parties: tuple[str, ...] = (),
        threshold: int = 0,
    ) -> PolicyPack:
        """Parse and validate Cedar policies against the schema.

        Raises:
            BadRequest: oversized, unparsable, failing the schema, unannotated, a repeated
                ``@id``, or empty. The message names the policy and its line.
        """
        if len(text.encode()) > _MAX_PACK_BYTES:
            raise BadRequest(f"policy pack is over {_MAX_PACK_BYTES} bytes")
        schema_text = schema_text if schema_text is not None else _packaged("schema.cedarschema")
        starts = _statement_lines(text)
        try:
            policy_set = cedarpy.PolicySet.from_str(text)
            parsed = json.loads(cedarpy.policies_to_json_str(text))
        except ValueError as exc:
            raise BadRequest(
                f"policy pack does not parse: {_locate_parse_error(text, exc)}"
            ) from None
        try:
            schema = cedarpy.Schema.from_str(schema_text)
        except ValueError as exc:
            raise BadRequest(f"pack schema does not parse: {exc}") from None
        static = parsed.get("staticPolicies", {})
        lines = {pid: starts[int(pid[6:])] for pid in static if _is_positional(pid, starts)}
        annotations: dict[str, tuple[str, str]] = {}
        review: dict[str, str] = {}
        alerts: dict[str, str] = {}
        seen: dict[str, str] = {}
        for pid, policy in static.items():
            where = f"policy {pid} (line {lines.get(pid, '?')})"
            ann = policy.get("annotations") or {}
            if not ann.get("id") or not ann.get("reason"):
                raise BadRequest(f"{where} needs both @id and @reason annotations")
            if ann["id"] in seen:
                raise BadRequest(
                    f"{where} repeats @id({ann['id']!r}) of policy {seen[ann['id']]}; "
                    "every rule needs its own name"
                )
            seen[ann["id"]] = pid
            annotations[pid] = (ann["id"], ann["reason"])
            if ann.get("review"):
                review[pid] = ann["review"]
            if ann.get("alert"):
                alerts[pid] = ann["alert"]
        if not annotations:
            raise BadRequest("an empty policy pack would deny everything; refusing it")
        if parsed.get("templates") or parsed.get("templateLinks"):
            raise BadRequest("policy packs may not contain templates")
        result = cedarpy.validate_policies(text, schema_text)
        if not result.validation_passed:
            details = "; ".join(
                f"{annotations.get(e.policy_id, (e.policy_id, ''))[0]} "
                f"(line {lines.get(e.policy_id, '?')}): {e.error}"
                for e in result.errors
            )
            raise BadRequest(f"policy pack fails schema validation: {details}")
        return cls(
            text=text,
            policy_set=policy_set,
            schema=schema,
            annotations=annotations,
            review=review,
            alerts=alerts,
            lines=lines,
            parameters=parameters or PackParameters(),
            name=name,
            version=version,
            digest=digest,
            parties=parties,
            threshold=threshold,
        )

    def name_of(self, cedar_id: str) -> str:
        """The ``@id`` of a policy."""
        return self.annotations[cedar_id][0]

    def reason_of(self, cedar_id: str) -> str:
        """The ``@reason`` of a policy."""
        return self.annotations[cedar_id][1]

    def rules(self) -> dict[str, str]:
        """``@id`` -> ``@reason`` for every rule, in the pack's order."""
        return dict(self.annotations.values())


def _is_positional(pid: str, starts: list[int]) -> bool:
    return pid.startswith("policy") and pid[6:].isdigit() and int(pid[6:]) < len(starts)


def _statement_lines(text: str) -> list[int]:
    """The line on which each top-level statement (policy) starts, annotations included.

    Skips ``//`` comments and string literals, so a ``;`` inside them does not split.
    """
    starts: list[int] = []
    line, i, n, begun = 1, 0, len(text), False
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
        elif c == "/" and text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
            continue
        elif c == '"':
            if not begun:
                starts.append(line)
                begun = True
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\":
                    i += 1
                elif text[i] == "\n":
                    line += 1
                i += 1
        elif c == ";":
            begun = False
        elif not c.isspace() and not begun:
            starts.append(line)
            begun = True
        i += 1
    return starts


def _locate_parse_error(text: str, exc: ValueError) -> str:
    """Find the statement that does not parse, so the error can name its line."""
    lines = text.split("\n")
    starts = [*_statement_lines(text), len(lines) + 1]
    for n in range(len(starts) - 1):
        chunk = "\n".join(lines[starts[n] - 1 : starts[n + 1] - 1])
        try:
            cedarpy.policies_to_json_str(chunk)
        except ValueError as inner:
            return f"policy {n} (line {starts[n]}): {inner}"
    return str(exc)


def _packaged(name: str) -> str:
    return (resources.files("sovra.policy") / "packs" / name).read_text(encoding="utf-8")


def shipped_bundle(name: str) -> PackBundle:
    """A pack shipped with sovra (``gdsi``, ``gdpr-chapter-v``, ``pipl-cross-border``).

    Raises:
        BadRequest: no shipped pack by that name.
    """
    if name not in SHIPPED_PACKS:
        raise BadRequest(f"no shipped pack {name!r}; shipped: {', '.join(SHIPPED_PACKS)}")
    manifest = json.loads(_packaged(f"{name}.json"))
    policies = "\n".join(_packaged(f) for f in manifest["policies"])
    return PackBundle(
        name=manifest["name"],
        version=manifest["version"],
        parties=tuple(manifest["parties"]),
        threshold=manifest["threshold"],
        policies=policies,
        schema=_packaged("schema.cedarschema"),
        parameters=manifest.get("parameters", {}),
        description=manifest.get("description", ""),
    )


def default_pack() -> PolicyPack:
    """The shipped pack encoding the Global Data Security Initiative principles."""
    return shipped_bundle("gdsi").compile()
