"""``sovra policy sign|verify|activate|diff|show`` and ``sovra explain DECISION_ID | --index N``.

A pack source is a DSSE envelope file, a pack bundle JSON file, or ``shipped:NAME`` for a
pack shipped with sovra (``gdsi``, ``gdpr-chapter-v``, ``pipl-cross-border``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from sovra._cli.common import (
    DEFAULT_URL,
    As,
    DeploymentDir,
    ExitCode,
    JsonOpt,
    KeyOpt,
    Url,
    connect,
    emit,
    error,
    need_deployment,
    out,
    print_json,
    usage,
)
from sovra.errors import BadRequest, NotFound, VerificationError

if TYPE_CHECKING:  # the CLI imports stages lazily, so that start-up stays quick
    from sovra.client import Client
    from sovra.policy import Envelope

__all__ = ["explain", "policy_app"]

policy_app = typer.Typer(
    help="Policy packs: sign (k of n parties), verify, activate, diff, show.",
    no_args_is_help=True,
)

Source = Annotated[str, typer.Argument(help="envelope or bundle file, or shipped:NAME")]


def _load(source: str) -> Envelope:
    from sovra.policy import Envelope, PackBundle, shipped_bundle

    if source.startswith("shipped:"):
        return Envelope.wrap(shipped_bundle(source.removeprefix("shipped:")))
    path = Path(source)
    try:
        data = path.read_bytes()
    except OSError as exc:
        error(f"cannot read {path}: {exc.strerror}")
        raise typer.Exit(ExitCode.ERROR) from None
    if b'"payloadType"' in data:
        return Envelope.from_json(data)
    return Envelope.wrap(PackBundle.from_bytes(data))


def _authority_keys(deployment: Path) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from sovra.errors import ConfigError

    keys = {}
    for pub in sorted((deployment / "authorities").glob("*.pub")):
        try:
            keys[pub.stem] = Ed25519PublicKey.from_public_bytes(bytes.fromhex(pub.read_text()))
        except (OSError, ValueError):
            raise ConfigError(f"{pub} is not a hex Ed25519 public key") from None
    if not keys:
        raise ConfigError(f"no authority public keys under {deployment / 'authorities'}")
    return keys


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        error(f"cannot write {path}: {exc.strerror}")
        raise typer.Exit(ExitCode.ERROR) from None


@policy_app.command()
def sign(
    source: Source,
    authority: Annotated[str, typer.Option("--authority", help="sign as this jurisdiction")],
    output: Annotated[Path, typer.Option("--out", help="where to write the envelope")],
    set_version: Annotated[
        int | None, typer.Option(help="give an unsigned pack this version before signing")
    ] = None,
    deployment: DeploymentDir = None,
) -> None:
    """Add a party's signature to a pack (DSSE envelope); other signatures are kept."""
    deployment = need_deployment(deployment)
    from dataclasses import replace

    from sovra.custody import authority_key_path
    from sovra.keys import load_ed25519
    from sovra.model import check_jurisdiction
    from sovra.policy import Envelope, sign_pack

    envelope = _load(source)
    if set_version is not None:
        if envelope.signatures:
            error("--set-version changes the signed bytes; use it on an unsigned pack only")
            raise typer.Exit(ExitCode.USAGE)
        envelope = Envelope.wrap(replace(envelope.bundle(), version=set_version))
    key = load_ed25519(authority_key_path(deployment, check_jurisdiction(authority)))
    signed = sign_pack(envelope, authority, key)
    bundle = signed.bundle()
    _write(output, signed.to_json())
    out.print(
        f"pack [bold]{escape(bundle.name)}[/] v{bundle.version} signed by {authority} "
        f"({len(signed.signatures)} of {bundle.threshold} needed), "
        f"written to {escape(str(output))}"
    )


@policy_app.command()
def verify(source: Source, deployment: DeploymentDir = None, as_json: JsonOpt = False) -> None:
    """Check a pack's signatures against this deployment's authorities and validate it."""
    deployment = need_deployment(deployment)
    from sovra.policy import verify_pack

    verified = verify_pack(_load(source), _authority_keys(deployment))
    pack = verified.bundle.compile()
    if as_json:
        print_json(
            {
                "pack": pack.name,
                "version": pack.version,
                "digest": pack.digest,
                "signers": list(verified.signers),
                "parties": list(pack.parties),
                "threshold": pack.threshold,
                "rules": len(pack.annotations),
            }
        )
        return
    out.print(
        f"pack [bold]{escape(pack.name)}[/] v{pack.version} verified: signed by "
        f"{', '.join(verified.signers)} ({len(verified.signers)} of "
        f"{len(pack.parties)} parties, {pack.threshold} needed); {len(pack.annotations)} rules "
        f"valid against the schema; digest {pack.digest}"
    )


@policy_app.command()
def activate(
    source: Source,
    principal: As = "operator",
    key: KeyOpt = None,
    deployment: DeploymentDir = None,
    url: Url = DEFAULT_URL,
) -> None:
    """Activate a signed pack on a running gateway; the activation is logged first."""
    envelope = _load(source)
    with connect(url, principal, key, deployment) as client:
        result = client.activate_policy(envelope.to_json())
    out.print(
        f"pack [bold]{escape(result['pack'])}[/] v{result['version']} active, logged at "
        f"index {result['receipt']['index']}"
    )


def _rules(envelope: Envelope) -> tuple[Any, dict[str, tuple[str, str]]]:
    import cedarpy

    bundle = envelope.bundle()
    parsed = json.loads(cedarpy.policies_to_json_str(bundle.policies))
    rules = {}
    for policy in parsed.get("staticPolicies", {}).values():
        ann = policy.pop("annotations", {}) or {}
        rules[str(ann.get("id", "?"))] = (
            str(ann.get("reason", "")),
            json.dumps(policy, sort_keys=True) + json.dumps(ann, sort_keys=True),
        )
    return bundle, rules


@policy_app.command()
def diff(old: Source, new: Source, as_json: JsonOpt = False) -> None:
    """Rule by rule: what a new pack adds, removes and changes (exit 1 if any difference)."""
    old_bundle, old_rules = _rules(_load(old))
    new_bundle, new_rules = _rules(_load(new))
    if as_json:
        _diff_json(old_bundle, old_rules, new_bundle, new_rules)
        return
    lines = [f"{old_bundle.name} v{old_bundle.version} -> {new_bundle.name} v{new_bundle.version}"]
    lines += [f"+ {r}: {new_rules[r][0]}" for r in new_rules if r not in old_rules]
    lines += [f"- {r}: {old_rules[r][0]}" for r in old_rules if r not in new_rules]
    lines += [
        f"~ {r}: {new_rules[r][0]}"
        for r in new_rules
        if r in old_rules and new_rules[r] != old_rules[r]
    ]
    if (old_bundle.parties, old_bundle.threshold) != (new_bundle.parties, new_bundle.threshold):
        lines.append(
            f"~ signing: {old_bundle.threshold} of {', '.join(old_bundle.parties)} -> "
            f"{new_bundle.threshold} of {', '.join(new_bundle.parties)}"
        )
    if old_bundle.parameters != new_bundle.parameters:
        lines.append("~ parameters:")
        for k in sorted(set(old_bundle.parameters) | set(new_bundle.parameters)):
            before, after = old_bundle.parameters.get(k), new_bundle.parameters.get(k)
            if before != after:
                lines.append(f"    {k}: {json.dumps(before)} -> {json.dumps(after)}")
    if old_bundle.schema != new_bundle.schema:
        lines.append("~ schema changed")
    for line in lines:
        out.print(line, markup=False, highlight=False)
    if len(lines) > 1:
        raise typer.Exit(ExitCode.ERROR)
    out.print("no differences in rules, signing or parameters")


def _diff_json(
    old: Any, old_rules: dict[str, tuple[str, str]], new: Any, new_rules: dict[str, tuple[str, str]]
) -> None:
    """``policy diff --json``: the same differences, exit 1 if there is any."""
    changed = [r for r in new_rules if r in old_rules and new_rules[r] != old_rules[r]]
    shown = {
        "old": {"pack": old.name, "version": old.version},
        "new": {"pack": new.name, "version": new.version},
        "added": {r: new_rules[r][0] for r in new_rules if r not in old_rules},
        "removed": {r: old_rules[r][0] for r in old_rules if r not in new_rules},
        "changed": {r: new_rules[r][0] for r in changed},
        "signing": None
        if (old.parties, old.threshold) == (new.parties, new.threshold)
        else {
            "old": {"parties": list(old.parties), "threshold": old.threshold},
            "new": {"parties": list(new.parties), "threshold": new.threshold},
        },
        "parameters": {
            k: {"old": old.parameters.get(k), "new": new.parameters.get(k)}
            for k in sorted(set(old.parameters) | set(new.parameters))
            if old.parameters.get(k) != new.parameters.get(k)
        },
        "schema_changed": old.schema != new.schema,
    }
    different = any(shown[k] for k in ("added", "removed", "changed", "signing", "parameters"))
    shown["different"] = different or bool(shown["schema_changed"])
    print_json(shown)
    if shown["different"]:
        raise typer.Exit(ExitCode.ERROR)


@policy_app.command()
def show(
    principal: As = "auditor",
    key: KeyOpt = None,
    deployment: DeploymentDir = None,
    url: Url = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """The pack a running gateway decides with: name, version, digest, rules (JSON, with
    --json or without)."""
    del as_json  # JSON either way
    with connect(url, principal, key, deployment) as client:
        print_json(client.policy())


def explain(
    decision_id: Annotated[
        str | None, typer.Argument(help="decision id, from an access response")
    ] = None,
    index: Annotated[
        str | None,
        typer.Option(
            "--index",
            "-i",
            metavar="N",
            help="the decision's log index instead, as a refusal's '(logged at index N)' gives it",
        ),
    ] = None,
    principal: As = "auditor",
    key: KeyOpt = None,
    deployment: DeploymentDir = None,
    url: Url = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """Explain a logged decision: the rules that decided it, their reasons, its grant.

    By its id, or by its log index with --index N (a key release's index explains the
    decision that released the keys).
    """
    if (decision_id is None) == (index is None):
        usage("give a DECISION_ID, or --index N from a refusal's '(logged at index N)', not both")
    number = None if index is None else _log_index(index)
    at: int | None = None
    with connect(url, principal, key, deployment) as client:
        if number is not None:
            decision_id, at = _decision_at(client, number)
        assert decision_id is not None  # given, or read from the entry at its index
        explained = client.explain(decision_id)
    if at is not None and explained.get("log_index") != at:
        raise VerificationError(
            f"the gateway explained decision {decision_id} from log entry "
            f"{explained.get('log_index')}, not from entry {at} that names it"
        )
    emit(explained, as_json, lambda: out.print(explained["text"], markup=False, highlight=False))


def _log_index(text: str) -> int:
    """A log index as the command line gives it; a usage error names what is wrong."""
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        usage(f"--index {text!r} is not a log index: give a whole number from 0 up")
    return int(text)


def _decision_at(client: Client, index: int) -> tuple[str, int]:
    """The decision id the public log's entry *index* records, and that decision's index.

    Raises:
        NotFound: the log holds no entry *index*.
        BadRequest: the entry records no decision (a key release records the decision
            that released it).
    """
    from sovra.model import LogEntry

    size = client.info().get("log_size")
    if isinstance(size, int) and index >= size:
        raise NotFound(
            f"the log holds {size} entries (indexes 0 to {size - 1}); there is no entry {index}"
        )
    entry = LogEntry.from_bytes(client.entries(index, index + 1)[0])
    decision_id = entry.fields.get("decision_id")
    if entry.kind == "decision" and isinstance(decision_id, str):
        return decision_id, index
    released_by = entry.fields.get("decision_index")
    if (
        entry.kind == "key_release"
        and isinstance(decision_id, str)
        and isinstance(released_by, int)
    ):
        return decision_id, released_by
    raise BadRequest(
        f"log entry {index} is {'an' if entry.kind[0] in 'aeiou' else 'a'} {entry.kind} "
        "entry, not a decision; `sovra log prove "
        f"{index}` shows it"
        + (
            f", and `sovra explain {decision_id}` the decision that allowed it"
            if isinstance(decision_id, str)
            else ""
        )
    )
