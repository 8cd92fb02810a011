"""The deployment's configuration: a TOML file a person can read and edit.

Parsing is strict: unknown sections or keys are refused (a typo in a rule must not
silently weaken it), and every value is checked when the file is read.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sovra.errors import BadRequest, ConfigError, SovraError
from sovra.keys.transport import DEFAULT_SUITE, check_suite
from sovra.model import Role, check_jurisdiction, check_purpose, field_problem
from sovra.store.pg_timeouts import PgTimeouts
from sovra.store.s3 import parse_s3_url
from sovra_verify.cosignature import CosignatureVerifier

__all__ = [
    "DEFAULT_JURISDICTIONS",
    "Config",
    "JurisdictionConfig",
    "OidcConfig",
    "RegionConfig",
    "TilesConfig",
    "check_tiles_location",
    "render_default_config",
    "render_region",
    "render_tiles",
]

_ACTIONS = frozenset({"keep", "redact", "tokenize", "seal", "refuse"})
_PLACEMENTS = frozenset({"first", "by-subject"})
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")
_REGION_KEY_ORDER = (
    "blobs",
    "endpoint",
    "signing_region",
    "access_key_env",
    "secret_key_env",
    "credentials_file",
    "provider",
    "provider_home",
    "sse",
    "sse_kms_key_id",
)
_REGION_KEYS = frozenset(_REGION_KEY_ORDER)


@dataclass(frozen=True, slots=True)
class RegionConfig:
    """One storage region (``[regions.NAME]``): where its blobs live and who runs that.

    A region without a table, or without ``blobs``, is the folder ``<blobs>/<name>`` of the
    deployment. ``blobs = "s3://bucket/prefix"`` puts it in an S3-compatible bucket; the
    credentials are never in this file: the names of two environment variables, or a file
    of the deployment readable by its owner only (``credentials_file``), or neither
    (the S3 client's own chain: an instance role, ``AWS_*`` variables).
    """

    name: str
    blobs: str | None = None
    endpoint: str | None = None
    signing_region: str = "us-east-1"
    access_key_env: str | None = None
    secret_key_env: str | None = None
    credentials_file: str | None = None
    # Who operates the storage, and the jurisdiction whose laws reach that operator
    # (a jurisdiction's rules may exclude providers by it).
    provider: str | None = None
    provider_home: str | None = None
    sse: str | None = None
    sse_kms_key_id: str | None = None

    @property
    def is_s3(self) -> bool:
        """Whether the region's blobs are in an S3 bucket rather than a folder."""
        return self.blobs is not None and self.blobs.startswith("s3://")


@dataclass(frozen=True, slots=True)
class TilesConfig:
    """``[log.tiles]``: where the log's tiles, entry bundles and checkpoint are published as
    static files (C2SP tlog-tiles) for a web server or a CDN to serve.

    ``location`` is a folder of the deployment, or ``s3://bucket/prefix`` with the bucket's
    endpoint, credentials and encryption in *bucket* (the keys of a ``[regions.NAME]``
    table). The server publishes every ``every_s`` seconds when the log grew. With
    ``remove_partial_tiles`` false, partial tiles stay once their full tile is there (a
    store that allows writes but not deletes).
    """

    location: str
    every_s: float = 1.0
    bucket: RegionConfig | None = None
    remove_partial_tiles: bool = True

    @property
    def is_s3(self) -> bool:
        """Whether the files go to an S3 bucket rather than a folder."""
        return self.bucket is not None


# Asymmetric JWS algorithms only: "none" and the HMAC ones (HS*) are never accepted, so a
# token cannot be "signed" with nothing, nor with the issuer's public key as an HMAC secret.
OIDC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_OIDC_KEYS = frozenset(
    {
        "issuer",
        "audience",
        "jwks_url",
        "algorithms",
        "leeway_s",
        "max_token_bytes",
        "jwks_cache_s",
        "jwks_refresh_s",
        "principal_claim",
        "principal_prefix",
        "role",
        "role_claim",
        "role_values",
        "roles",
        "jurisdiction",
        "jurisdiction_claim",
        "jurisdictions",
        "writes",
        "subject_claim",
    }
)
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_ID_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}")


@dataclass(frozen=True, slots=True)
class OidcConfig:
    """``[auth.oidc]``: OAuth 2.0 / OpenID Connect bearer access tokens (JWTs) from one
    issuer, checked against its JWKS, and how their claims map to a sovra principal.

    A caller is ``principal_prefix + claims[principal_claim]``, with the role and the
    jurisdiction either fixed here (``role``, ``jurisdiction``) or read from a claim
    (``role_claim``, its values renamed by ``role_values``; ``jurisdiction_claim``), and
    only among ``roles`` and ``jurisdictions``. Bearer tokens do not bind the request,
    so unless ``writes`` they may only read (see :mod:`sovra.oidc`).
    """

    issuer: str
    audience: str
    jwks_url: str
    jurisdictions: tuple[str, ...]
    algorithms: tuple[str, ...] = ("RS256", "PS256", "ES256", "EdDSA")
    leeway_s: int = 30
    max_token_bytes: int = 8192
    jwks_cache_s: int = 300
    jwks_refresh_s: int = 30
    principal_claim: str = "sub"
    principal_prefix: str = "oidc:"
    role: str | None = None
    role_claim: str | None = None
    role_values: Mapping[str, str] = field(default_factory=dict)
    roles: tuple[str, ...] = ("service", "analyst", "auditor")
    jurisdiction: str | None = None
    jurisdiction_claim: str | None = None
    writes: bool = False
    # The claim naming the data subject a ``subject`` token stands for (None: no subject
    # signs in with a bearer token).
    subject_claim: str | None = None


@dataclass(frozen=True, slots=True)
class JurisdictionConfig:
    """One jurisdiction's rules: where its data may live, why it may be read, what to minimise."""

    code: str
    name: str
    regions: tuple[str, ...]
    purposes: tuple[str, ...]
    minimisation: Mapping[str, str] = field(default_factory=dict)
    # purpose -> kind -> action, over ``minimisation`` for data collected for that purpose
    minimisation_for: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Regions whose provider is at home in one of these jurisdictions never hold this
    # jurisdiction's data (empty: every provider is accepted, as it holds ciphertext only).
    exclude_provider_homes: tuple[str, ...] = ()
    # How a record's region is picked among the allowed ones: the first (``regions`` is an
    # order of preference) or one per subject (a subject's records stay together).
    placement: str = "first"
    # The HPKE suite of keys that leave this jurisdiction's custodian over a network:
    # the transport key clients seal to, and the weakest recipient key released to
    # (``x25519``, ``mlkem768-x25519``, ``mlkem1024-p384``; docs/keys.md).
    key_transport: str = DEFAULT_SUITE

    def rules_for(self, purpose: str | None) -> dict[str, str]:
        """The minimisation rule for data collected for *purpose* (None: the base rule).

        Raises:
            BadRequest: *purpose* is not one this jurisdiction lists.
        """
        if purpose is None:
            return dict(self.minimisation)
        if purpose not in self.purposes:
            raise BadRequest(
                f"{self.code} collects data for {', '.join(self.purposes)}, not {purpose!r}"
            )
        return {**self.minimisation, **self.minimisation_for.get(purpose, {})}


@dataclass(frozen=True, slots=True)
class Config:
    """The whole deployment configuration."""

    origin: str
    database: str
    blobs: str
    max_body_bytes: int
    max_record_bytes: int
    max_records_per_request: int
    token_max_age_s: int
    request_subject_limit: int
    window_subject_limit: int
    window_s: int
    jurisdictions: Mapping[str, JurisdictionConfig]
    # [witnesses]: C2SP vkeys of the witnesses whose cosignatures the log collects, and
    # how many must cosign a checkpoint (0 when none is configured).
    witnesses: tuple[str, ...] = ()
    witness_quorum: int = 0
    # [witnesses] policy: a C2SP tlog-policy file (relative to the deployment) whose
    # witnesses with a URL cosign each batch's checkpoint synchronously (ADR 0022).
    witness_policy: str | None = None
    witness_timeout_s: float = 5.0
    # The longest an HTTP request body may take to arrive, so a slow sender cannot hold a
    # connection and its buffer for ever (408 after it).
    body_timeout_s: int = 30
    # [log]: how often the server publishes a checkpoint when the log grew, and whether
    # one is published after every batch of entries as well.
    log_publish_every_s: float = 1.0
    log_publish_after_batch: bool = False
    # [log.tiles]: the log published as static tlog-tiles files (None: served by the
    # server alone).
    log_tiles: TilesConfig | None = None
    # [limits]: a sealed record of up to this many bytes shares its region's small-blob
    # file (one write per batch); a larger one gets a file of its own.
    small_blob_bytes: int = 64 << 10
    # [regions.NAME]: storage regions configured beyond the folder default.
    regions: Mapping[str, RegionConfig] = field(default_factory=dict)
    # [auth.oidc]: bearer JWTs from an OpenID Connect issuer (None: signed tokens only).
    oidc: OidcConfig | None = None
    # [postgres]: how long a PostgreSQL session may wait for a lock, run a statement, or
    # sit idle in a transaction (used only when the database is PostgreSQL).
    postgres: PgTimeouts = field(default_factory=PgTimeouts)

    def region(self, name: str) -> RegionConfig:
        """The settings of region *name* (the folder default when it has no table)."""
        return self.regions.get(name) or RegionConfig(name)

    @classmethod
    def load(cls, path: Path) -> Config:
        """Read and check ``sovra.toml``.

        Raises:
            ConfigError: missing file, bad TOML, unknown key or bad value; names the key.
        """
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                f"{path} not found: create a deployment with `sovra init DIR`"
            ) from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        return cls.from_text(text, str(path))

    @classmethod
    def from_text(cls, text: str, where: str) -> Config:
        """Parse and check the text of a ``sovra.toml``; *where* names it in errors.

        Raises:
            ConfigError: bad TOML, unknown key or bad value; names the key.
        """
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{where} is not valid TOML: {exc}") from None
        try:
            return cls._from_dict(raw)
        except SovraError as exc:
            raise ConfigError(f"{where}: {exc.message}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # AttributeError: a section that should be a table is a string or a list.
            raise ConfigError(f"{where}: bad or missing setting {exc}") from None

    @classmethod
    def _from_dict(cls, raw: dict[str, Any]) -> Config:
        _only(
            raw,
            {
                "deployment",
                "limits",
                "bulk",
                "jurisdictions",
                "witnesses",
                "log",
                "regions",
                "auth",
                "postgres",
            },
            "top level",
        )
        dep, lim, bulk = raw["deployment"], raw.get("limits", {}), raw.get("bulk", {})
        _only(dep, {"origin", "database", "blobs"}, "[deployment]")
        _only(
            lim,
            {
                "max_body_bytes",
                "max_record_bytes",
                "max_records_per_request",
                "token_max_age_s",
                "body_timeout_s",
                "small_blob_bytes",
            },
            "[limits]",
        )
        _only(bulk, {"request_subject_limit", "window_subject_limit", "window_s"}, "[bulk]")
        jurisdictions = {}
        for code, body in raw["jurisdictions"].items():
            check_jurisdiction(code)
            _only(
                body,
                {
                    "name",
                    "regions",
                    "purposes",
                    "minimisation",
                    "minimisation_for",
                    "exclude_provider_homes",
                    "placement",
                    "key_transport",
                },
                f"[jurisdictions.{code}]",
            )
            purposes = tuple(check_purpose(p) for p in body["purposes"])
            rules = _rules(body.get("minimisation", {}), f"[jurisdictions.{code}.minimisation]")
            by_purpose = {}
            for purpose, table in body.get("minimisation_for", {}).items():
                where = f"[jurisdictions.{code}.minimisation_for.{purpose}]"
                if purpose not in purposes:
                    raise ConfigError(f"{where}: {purpose!r} is not one of {code}'s purposes")
                by_purpose[purpose] = _rules(table, where)
            regions = tuple(body["regions"])
            if not regions:
                raise ConfigError(f"[jurisdictions.{code}] needs at least one storage region")
            placement = body.get("placement", "first")
            if placement not in _PLACEMENTS:
                raise ConfigError(
                    f"[jurisdictions.{code}] placement must be one of "
                    f"{', '.join(sorted(_PLACEMENTS))}, got {placement!r}"
                )
            jurisdictions[code] = JurisdictionConfig(
                code=code,
                name=str(body.get("name", code)),
                regions=regions,
                purposes=purposes,
                minimisation=rules,
                minimisation_for=by_purpose,
                exclude_provider_homes=_homes(body, code),
                placement=placement,
                key_transport=_key_transport(body, code),
            )
        if not jurisdictions:
            raise ConfigError("no jurisdictions configured")
        regions_cfg = _regions(raw.get("regions", {}), jurisdictions)
        config = cls(
            origin=str(dep["origin"]),
            database=str(dep.get("database", "sovra.db")),
            blobs=str(dep.get("blobs", "blobs")),
            max_body_bytes=_positive(lim, "max_body_bytes", 1 << 20),
            max_record_bytes=_positive(lim, "max_record_bytes", 512 << 10),
            max_records_per_request=_positive(lim, "max_records_per_request", 10_000),
            token_max_age_s=_positive(lim, "token_max_age_s", 300),
            body_timeout_s=_positive(lim, "body_timeout_s", 30),
            small_blob_bytes=_positive(lim, "small_blob_bytes", 64 << 10),
            request_subject_limit=_positive(bulk, "request_subject_limit", 50),
            window_subject_limit=_positive(bulk, "window_subject_limit", 500),
            window_s=_positive(bulk, "window_s", 3600),
            jurisdictions=jurisdictions,
            regions=regions_cfg,
            oidc=_auth(raw.get("auth", {}), tuple(jurisdictions)),
            postgres=PgTimeouts.from_table(raw.get("postgres", {})),
            **_witnesses(raw.get("witnesses", {})),
            **_log(raw.get("log", {})),
        )
        if "\n" in config.origin or not config.origin.strip():
            raise ConfigError("[deployment] origin must be one non-empty line")
        return config

    def jurisdiction(self, code: str) -> JurisdictionConfig:
        """The configuration of *code*.

        Raises:
            BadRequest: the jurisdiction is not configured in this deployment.
        """
        check_jurisdiction(code)
        try:
            return self.jurisdictions[code]
        except KeyError:
            known = ", ".join(sorted(self.jurisdictions))
            raise BadRequest(
                f"unknown jurisdiction {code!r}; this deployment serves {known}"
            ) from None


def _only(section: Mapping[str, Any], allowed: set[str], where: str) -> None:
    problem = field_problem(section, frozenset(), allowed, where, noun="key")
    if problem is not None:
        raise ConfigError(problem)


def _rules(table: object, where: str) -> dict[str, str]:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table of kind = action")
    for kind, action in table.items():
        if action not in _ACTIONS:
            raise ConfigError(
                f"{where} {kind} = {action!r}: use one of {', '.join(sorted(_ACTIONS))}"
            )
    return dict(table)


def _key_transport(body: Mapping[str, Any], code: str) -> str:
    value = body.get("key_transport", DEFAULT_SUITE)
    try:
        return check_suite(value) if isinstance(value, str) else check_suite(repr(value))
    except BadRequest as exc:
        raise ConfigError(f"[jurisdictions.{code}] key_transport: {exc.message}") from None


def _homes(body: Mapping[str, Any], code: str) -> tuple[str, ...]:
    homes = body.get("exclude_provider_homes", [])
    where = f"[jurisdictions.{code}] exclude_provider_homes"
    if not isinstance(homes, list):
        raise ConfigError(f"{where} must be a list of jurisdiction codes")
    try:
        return tuple(check_jurisdiction(h) for h in homes)
    except BadRequest as exc:
        raise ConfigError(f"{where}: {exc.message}") from None


def _regions(
    section: Mapping[str, Any], jurisdictions: Mapping[str, JurisdictionConfig]
) -> dict[str, RegionConfig]:
    """``[regions.NAME]`` tables, each checked; every jurisdiction keeps a region left."""
    if not isinstance(section, Mapping):
        raise ConfigError("[regions] must be a table of [regions.NAME] tables")
    used = {r for j in jurisdictions.values() for r in j.regions}
    out: dict[str, RegionConfig] = {}
    for name, body in section.items():
        where = f"[regions.{name}]"
        if name not in used:
            raise ConfigError(f"{where}: no jurisdiction lists region {name!r}")
        if not isinstance(body, Mapping):
            raise ConfigError(f"{where} must be a table")
        _only(body, set(_REGION_KEYS), where)
        for key, value in body.items():
            if not isinstance(value, str) or not value or "\n" in value:
                raise ConfigError(f"{where} {key} must be a non-empty one-line string")
        region = RegionConfig(name=name, **body)
        _check_region(region, where)
        out[name] = region
    for code, j in jurisdictions.items():
        left = [
            r
            for r in j.regions
            if (out.get(r) or RegionConfig(r)).provider_home not in j.exclude_provider_homes
        ]
        if not left:
            raise ConfigError(
                f"[jurisdictions.{code}]: every region it allows has a provider at home in "
                f"{', '.join(j.exclude_provider_homes)}, which it excludes"
            )
    return out


def _check_region(region: RegionConfig, where: str) -> None:
    if region.blobs is not None and not region.is_s3:
        raise ConfigError(
            f"{where} blobs must be s3://bucket[/prefix] (leave it out for the folder)"
        )
    s3_only = (
        "endpoint",
        "access_key_env",
        "secret_key_env",
        "credentials_file",
        "sse",
        "sse_kms_key_id",
    )
    if not region.is_s3:
        for key in s3_only:
            if getattr(region, key) is not None:
                raise ConfigError(f'{where} {key} needs blobs = "s3://..."')
    if (region.access_key_env is None) != (region.secret_key_env is None):
        raise ConfigError(f"{where} needs both access_key_env and secret_key_env, or neither")
    if region.access_key_env is not None and region.credentials_file is not None:
        raise ConfigError(f"{where}: give access_key_env/secret_key_env or credentials_file")
    for key in ("access_key_env", "secret_key_env"):
        value = getattr(region, key)
        if value is not None and not _ENV_NAME.fullmatch(value):
            raise ConfigError(
                f"{where} {key} names an environment variable (upper case), got {value!r}; "
                "never put a credential itself in this file"
            )
    if region.provider_home is not None:
        try:
            check_jurisdiction(region.provider_home)
        except BadRequest as exc:
            raise ConfigError(f"{where} provider_home: {exc.message}") from None


def _witnesses(section: Mapping[str, Any]) -> dict[str, Any]:
    _only(section, {"keys", "quorum", "policy", "timeout_s"}, "[witnesses]")
    policy, timeout = section.get("policy"), section.get("timeout_s", 5.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 600:
        raise ConfigError(f"[witnesses] timeout_s must be seconds in 0..600, not {timeout!r}")
    if policy is not None:
        if not isinstance(policy, str) or not policy or "keys" in section or "quorum" in section:
            raise ConfigError("[witnesses] policy names a tlog-policy file, instead of keys/quorum")
        return {"witness_policy": policy, "witness_timeout_s": float(timeout)}
    keys = section.get("keys", [])
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ConfigError("[witnesses] keys must be a list of witness vkeys")
    names = [CosignatureVerifier.from_vkey(k).name for k in keys]
    if len(set(names)) != len(names):
        raise ConfigError("[witnesses] names one witness twice")
    if not keys and "quorum" in section:
        raise ConfigError("[witnesses] quorum needs witness keys")
    quorum = _positive(section, "quorum", len(keys)) if keys else 0
    if quorum > len(keys):
        raise ConfigError(f"[witnesses] quorum {quorum} is more than the {len(keys)} keys")
    return {"witnesses": tuple(keys), "witness_quorum": quorum, "witness_timeout_s": float(timeout)}


def _log(section: Mapping[str, Any]) -> dict[str, Any]:
    _only(section, {"publish_every_s", "publish_after_batch", "tiles"}, "[log]")
    every = section.get("publish_every_s", 1)
    if not isinstance(every, int | float) or isinstance(every, bool) or not 0 < every <= 86400:
        raise ConfigError(f"[log] publish_every_s must be seconds in (0, 86400], got {every!r}")
    after = section.get("publish_after_batch", False)
    if not isinstance(after, bool):
        raise ConfigError(f"[log] publish_after_batch must be true or false, got {after!r}")
    tiles = _tiles(section["tiles"]) if "tiles" in section else None
    return {
        "log_publish_every_s": float(every),
        "log_publish_after_batch": after,
        "log_tiles": tiles,
    }


def _tiles(body: object) -> TilesConfig:
    where = "[log.tiles]"
    if not isinstance(body, Mapping):
        raise ConfigError(f"{where} must be a table")
    own = {"location", "every_s", "remove_partial_tiles"}
    _only(body, own | (_REGION_KEYS - {"blobs"}), where)
    location, every = body.get("location"), body.get("every_s", 1)
    remove = body.get("remove_partial_tiles", True)
    if not isinstance(location, str):
        raise ConfigError(
            f'{where} location must be a folder of the deployment or "s3://bucket/prefix"'
        )
    check_tiles_location(location, f"{where} location")
    if isinstance(every, bool) or not isinstance(every, int | float) or not 0 < every <= 3600:
        raise ConfigError(f"{where} every_s must be seconds in (0, 3600], got {every!r}")
    if not isinstance(remove, bool):
        raise ConfigError(f"{where} remove_partial_tiles must be true or false, got {remove!r}")
    settings = {k: v for k, v in body.items() if k not in own}
    for key, value in settings.items():
        if not isinstance(value, str) or not value or "\n" in value:
            raise ConfigError(f"{where} {key} must be a non-empty one-line string")
    if not location.startswith("s3://"):
        if settings:
            raise ConfigError(f'{where} {", ".join(sorted(settings))} needs location = "s3://..."')
        return TilesConfig(location, float(every), remove_partial_tiles=remove)
    bucket = RegionConfig(name="log.tiles", blobs=location, **settings)
    _check_region(bucket, where)
    return TilesConfig(location, float(every), bucket, remove)


def check_tiles_location(location: str, what: str) -> None:
    """Refuse a ``[log.tiles]`` location that is neither a folder inside the deployment
    nor an ``s3://bucket[/prefix]`` URL; *what* names the setting in the message.

    Raises:
        ConfigError: an empty or multi-line value, an absolute path, one with ``..``, a
            URL of another scheme, or an S3 URL that is not valid.
    """
    if not location or "\n" in location:
        raise ConfigError(f'{what} must be a folder of the deployment or "s3://bucket/prefix"')
    if location.startswith("s3://"):
        try:
            parse_s3_url(location)
        except ConfigError as exc:
            raise ConfigError(f"{what}: {exc.message}") from None
    elif location.startswith("/") or ".." in location.split("/") or "://" in location:
        raise ConfigError(
            f"{what} {location!r} must be a folder inside the deployment "
            '(e.g. "tiles") or "s3://bucket/prefix"'
        )


def _auth(section: Mapping[str, Any], known: tuple[str, ...]) -> OidcConfig | None:
    _only(section, {"oidc"}, "[auth]")
    if "oidc" not in section:
        return None
    body, where = section["oidc"], "[auth.oidc]"
    _only(body, set(_OIDC_KEYS), where)
    for key in ("issuer", "audience", "jwks_url"):
        if key not in body:
            raise ConfigError(f"{where} needs {key}")
    texts = {key: _oidc_text(body, key) for key in _OIDC_TEXTS if key in body}
    jwks = urlsplit(texts["jwks_url"])
    if jwks.scheme != "https" and not (jwks.scheme == "http" and jwks.hostname in _LOOPBACK):
        raise ConfigError(f"{where} jwks_url must be https:// (http:// only on loopback)")
    lists = {key: _oidc_list(body, key, default) for key, default in _oidc_lists(known).items()}
    refused = sorted(set(lists["algorithms"]) - OIDC_ALGORITHMS)
    if refused:
        raise ConfigError(
            f"{where} algorithms {', '.join(refused)} refused: only asymmetric signatures "
            f"({', '.join(sorted(OIDC_ALGORITHMS))})"
        )
    bearer_roles = {r.value for r in Role}
    if "subject_claim" not in texts:
        bearer_roles.discard(Role.SUBJECT.value)
    if not set(lists["roles"]) <= bearer_roles:
        raise ConfigError(
            f"{where} roles: one of {', '.join(sorted(bearer_roles))} each (subject only "
            "with subject_claim, the claim naming her subject id)"
        )
    if not set(lists["jurisdictions"]) <= set(known):
        raise ConfigError(f"{where} jurisdictions: only jurisdictions configured here")
    role_values = body.get("role_values", {})
    if not isinstance(role_values, Mapping) or not all(
        v in lists["roles"] for v in role_values.values()
    ):
        raise ConfigError(f"{where} role_values must map claim values to roles in roles")
    writes = body.get("writes", False)
    if not isinstance(writes, bool):
        raise ConfigError(f"{where} writes must be true or false")
    numbers = {key: _positive(body, key, _oidc_default(key)) for key in _OIDC_NUMBERS}
    if numbers["leeway_s"] > _MAX_LEEWAY_S:
        raise ConfigError(f"{where} leeway_s is at most {_MAX_LEEWAY_S}")
    settings: dict[str, Any] = {**texts, **lists, **numbers}
    oidc = OidcConfig(**settings, role_values=dict(role_values), writes=writes)
    _check_oidc_mapping(oidc, where)
    return oidc


_OIDC_TEXTS = (
    "issuer",
    "audience",
    "jwks_url",
    "principal_claim",
    "principal_prefix",
    "role",
    "role_claim",
    "jurisdiction",
    "jurisdiction_claim",
    "subject_claim",
)
_OIDC_NUMBERS = ("leeway_s", "max_token_bytes", "jwks_cache_s", "jwks_refresh_s")
_MAX_LEEWAY_S = 300


def _oidc_default(key: str) -> Any:
    return next(f.default for f in fields(OidcConfig) if f.name == key)


def _oidc_lists(known: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """The list settings of ``[auth.oidc]`` and their defaults."""
    return {
        "algorithms": _oidc_default("algorithms"),
        "roles": _oidc_default("roles"),
        "jurisdictions": known,
    }


def _oidc_text(body: Mapping[str, Any], key: str) -> str:
    value = body[key]
    if not isinstance(value, str) or not value or "\n" in value:
        raise ConfigError(f"[auth.oidc] {key} must be a non-empty one-line string")
    return value


def _oidc_list(body: Mapping[str, Any], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = body.get(key, list(default))
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"[auth.oidc] {key} must be a non-empty list of strings")
    return tuple(value)


def _check_oidc_mapping(oidc: OidcConfig, where: str) -> None:
    """The claims name a principal, one role and one jurisdiction, each allowed."""
    if not _ID_PREFIX.fullmatch(oidc.principal_prefix):
        raise ConfigError(
            f"{where} principal_prefix: a letter or digit, then letters, digits, ._:@- (64 at most)"
        )
    if (oidc.role is None) == (oidc.role_claim is None):
        raise ConfigError(f"{where} needs role (the same for every caller) or role_claim")
    if oidc.role is not None and oidc.role not in oidc.roles:
        raise ConfigError(f"{where} role {oidc.role!r} is not one of roles")
    if (oidc.jurisdiction is None) == (oidc.jurisdiction_claim is None):
        raise ConfigError(f"{where} needs jurisdiction or jurisdiction_claim")
    if oidc.jurisdiction is not None and oidc.jurisdiction not in oidc.jurisdictions:
        raise ConfigError(f"{where} jurisdiction {oidc.jurisdiction!r} is not one of jurisdictions")


def _positive(section: Mapping[str, Any], key: str, default: int) -> int:
    value = section.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{key} must be a positive integer, got {value!r}")
    return value


# code, name, storage regions, purposes its services may read for
DEFAULT_JURISDICTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "PL": ("Poland", ("eu-central-pl",)),
    "VN": ("Viet Nam", ("ap-southeast-vn",)),
    "DE": ("Germany", ("eu-central-de",)),
    "US": ("United States", ("us-east",)),
    "CN": ("China", ("cn-north",)),
}
_DEFAULT_PURPOSES = ("customer-support", "service-operation", "billing")
_DEFAULT_RULES = {
    "PL": {"email": "keep", "phone": "keep", "pl_pesel": "tokenize", "iban": "redact"},
    "DE": {"email": "keep", "phone": "keep", "iban": "redact"},
}
# purpose -> rules over the base ones, for data collected for that purpose
_DEFAULT_PURPOSE_RULES = {
    "PL": {"billing": {"iban": "seal"}},
    "DE": {"billing": {"iban": "seal"}},
}


def render_default_config(
    origin: str,
    jurisdictions: list[str],
    *,
    database: str | None = None,
    region_settings: Sequence[RegionConfig] = (),
    tiles: TilesConfig | None = None,
) -> str:
    """The commented ``sovra.toml`` that ``sovra init`` writes (with *database*, a
    PostgreSQL URL, in place of the SQLite file, a ``[regions.NAME]`` table for each of
    *region_settings*, and *tiles* as the ``[log.tiles]`` table)."""
    tables = [line for region in region_settings for line in ["", *render_region(region)]]
    if tiles is None:
        tiles_table = [
            "# [log.tiles]",
            '# location = "tiles"                      # or "s3://sovra-log/prod"',
            '# endpoint = "https://s3.eu-central-1.amazonaws.com"',
            '# access_key_env = "SOVRA_S3_LOG_ACCESS_KEY"',
            '# secret_key_env = "SOVRA_S3_LOG_SECRET_KEY"',
            "# every_s = 1",
            "# remove_partial_tiles = true           # false: a store that may not delete",
        ]
    else:
        tiles_table = render_tiles(tiles)
    lines = [
        "# sovra deployment configuration. Edit and restart `sovra serve` to apply.",
        "",
        "[deployment]",
        "# The transparency log's origin line: names this log in every checkpoint.",
        f'origin = "{origin}"',
        "# Metadata database (SQLite, WAL) and blob folder, relative to this file.",
        "# A postgresql:// URL also works for the database: the metadata, the log and the",
        "# bulk guard's journal then live there, shared by every replica. Keep its password",
        "# out of this file (libpq reads ~/.pgpass and PGPASSWORD).",
        f"database = {json.dumps(database or 'sovra.db')}",
        'blobs = "blobs"',
        "",
        "[limits]",
        "max_body_bytes = 1048576        # HTTP request bodies",
        "max_record_bytes = 524288       # one record's content",
        "max_records_per_request = 10000",
        "token_max_age_s = 300           # longest lifetime of a request token",
        "body_timeout_s = 30             # longest time a request body may take to arrive",
        "small_blob_bytes = 65536        # sealed records up to this size share one file",
        "",
        "[bulk]",
        "# No mass surveillance: distinct subjects per request, and per requester per window.",
        "request_subject_limit = 50",
        "window_subject_limit = 500",
        "window_s = 3600",
        "",
        "[witnesses]",
        "# Witnesses whose cosignatures the log collects (POST /v1/log/cosignatures), each",
        "# by its vkey (`sovra witness vkey DIR` prints it), and how many must cosign a",
        "# checkpoint for GET /v1/log/checkpoint/cosigned (default: all of them).",
        "keys = []",
        "# quorum = 1",
        "# Or a C2SP tlog-policy file (witness groups, k of n) instead of keys and quorum: the",
        "# witnesses it gives a URL cosign each batch's checkpoint before its receipts return.",
        '# policy = "witnesses.policy"',
        "# timeout_s = 5",
        "",
        "[log]",
        "# Checkpoints: an auditor verifies up to the newest one. The server publishes one",
        "# every publish_every_s seconds when the log grew (one checkpoint per interval for",
        "# all workers and replicas), and after every batch of entries as well when",
        "# publish_after_batch is true (one signature and one write per batch of each).",
        "# Receipts that wait for a cosigned checkpoint ([witnesses] policy) get one anyway.",
        "publish_every_s = 1",
        "publish_after_batch = false",
        "",
        "# The log's tiles, entry bundles and checkpoint (C2SP tlog-tiles) published as static",
        "# files for a web server or a CDN, every every_s seconds when the log grew (and by",
        "# `sovra log publish-tiles`); a folder of this deployment, or an S3 bucket with the",
        "# settings of a [regions.NAME] table below (docs/ledger.md). Partial tiles are",
        "# removed once their full tile is there, unless remove_partial_tiles is false.",
        *tiles_table,
        "",
        "# With a postgresql:// database: how long a session waits for a lock another holds",
        "# (the log's index row, the bulk guard's journal), how long one statement may run,",
        "# and how long a session may idle in a transaction; past the first two, the request",
        "# gets a 503 with Retry-After. 0 turns the first two off.",
        "# [postgres]",
        "# lock_timeout_s = 10",
        "# statement_timeout_s = 60",
        "# idle_in_transaction_s = 30",
        "",
        "# Storage regions: each is the folder <blobs>/<region> unless a [regions.NAME] table",
        "# puts it in an S3-compatible bucket. The credentials never go in this file: name two",
        "# environment variables, or a JSON file of this deployment only its owner can read",
        '# ({"access_key": ..., "secret_key": ...}), or neither (the S3 client\'s own chain).',
        "# [regions.eu-central-pl]",
        '# blobs = "s3://sovra-pl-prod/records"',
        '# endpoint = "https://s3.eu-central-1.amazonaws.com"   # left out: AWS itself',
        '# signing_region = "eu-central-1"',
        '# access_key_env = "SOVRA_S3_PL_ACCESS_KEY"',
        '# secret_key_env = "SOVRA_S3_PL_SECRET_KEY"',
        '# credentials_file = "keys/s3-pl.json"               # instead of the two above',
        '# provider = "aws"',
        '# provider_home = "US"        # whose laws reach it (exclude_provider_homes)',
        '# sse = "aws:kms"             # server-side encryption asked for on every write',
        '# sse_kms_key_id = "arn:aws:kms:..."',
        "",
        "# Sign-in with OAuth 2.0 / OpenID Connect access tokens (Authorization: Bearer <jwt>)",
        "# from one issuer, beside the signed sovra tokens; each setting in docs/api.md. A",
        "# bearer token binds no request body, so it may only read unless writes = true.",
        "# [auth.oidc]",
        '# issuer = "https://login.example.org/realms/sovra"',
        '# audience = "sovra"',
        '# jwks_url = "https://login.example.org/realms/sovra/protocol/openid-connect/certs"',
        '# principal_claim = "sub"           # the caller is "oidc:" + this claim',
        '# role_claim = "roles"              # or role = "analyst" for every caller',
        '# jurisdiction_claim = "sovra_jurisdiction"   # or jurisdiction = "PL"',
        '# roles = ["service", "analyst", "auditor"]',
        '# subject_claim = "email"   # with "subject" in roles: data subjects sign in too',
        "# writes = false",
    ]
    for code in jurisdictions:
        name, regions = DEFAULT_JURISDICTIONS.get(code, (code, (f"region-{code.lower()}",)))
        lines += [
            "",
            f"[jurisdictions.{code}]",
            f'name = "{name}"',
            "# Storage regions this jurisdiction allows for its residents' data, in order.",
            "regions = [" + ", ".join(f'"{r}"' for r in regions) + "]",
            "# Providers at home in these jurisdictions never hold its data (default: none,",
            "# they only ever hold ciphertext); placement: first allowed region, or by-subject.",
            "# exclude_provider_homes = []",
            '# placement = "first"',
            "# HPKE suite of keys that leave its custodian over a network: x25519, or the",
            "# post-quantum hybrids mlkem768-x25519 and mlkem1024-p384 (docs/keys.md).",
            '# key_transport = "x25519"',
            "# Purposes for which this jurisdiction's own services may read its residents' data.",
            "purposes = [" + ", ".join(f'"{p}"' for p in _DEFAULT_PURPOSES) + "]",
            "",
            f"[jurisdictions.{code}.minimisation]",
            "# What to do with each kind of sensitive data found at ingest:",
            "# keep | redact | tokenize | seal | refuse. Kinds not listed are kept.",
            "# tokenize and seal put a marker only the subject's custodian turns back (for",
            "# a request allowed to reveal); tokens are the same for the same value of one",
            "# subject, sealed values are not. Both die with her key when she is shredded.",
        ]
        lines += [f'{kind} = "{action}"' for kind, action in _DEFAULT_RULES.get(code, {}).items()]
        for purpose, rules in _DEFAULT_PURPOSE_RULES.get(code, {}).items():
            lines += [
                "",
                f"[jurisdictions.{code}.minimisation_for.{purpose}]",
                f"# Over the rules above, for data collected for {purpose}.",
            ]
            lines += [f'{kind} = "{action}"' for kind, action in rules.items()]
    return "\n".join([*lines, *tables]) + "\n"


def render_region(region: RegionConfig) -> list[str]:
    """The lines of *region*'s ``[regions.NAME]`` table (its settings that are set)."""
    return [f"[regions.{region.name}]", *_render_settings(region)]


def render_tiles(tiles: TilesConfig) -> list[str]:
    """The lines of the ``[log.tiles]`` table of *tiles*."""
    lines = ["[log.tiles]", f"location = {json.dumps(tiles.location)}"]
    if tiles.bucket is not None:
        lines += _render_settings(tiles.bucket, skip="blobs")
    lines.append(f"every_s = {tiles.every_s:g}")
    lines.append(f"remove_partial_tiles = {json.dumps(tiles.remove_partial_tiles)}")
    return lines


def _render_settings(region: RegionConfig, skip: str | None = None) -> list[str]:
    """``key = value`` lines of *region*'s settings that are set (but *skip*)."""
    lines = []
    for key in _REGION_KEY_ORDER:
        value = getattr(region, key)
        if key == skip or value is None or (key == "signing_region" and value == "us-east-1"):
            continue
        lines.append(f"{key} = {json.dumps(value)}")
    return lines
