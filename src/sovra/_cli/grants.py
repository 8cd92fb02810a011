"""``sovra grant request|approve|revoke|show``: legal-assistance grants from request to revocation.

``request`` writes the requesting authority's unsigned grant (who asks, for whom, why, on
which legal basis, which data categories, how long, how many records). ``approve`` signs it
with the approving (home) authority's key and registers it, so it is in the log before any
use; with ``--cosigner`` another authority co-signs an approved grant (bulk scope, or the
other home of a subject of two homes: approve ``--no-register``, then co-sign
``--register``, so both signatures are on the grant as registered).
``revoke`` takes effect at once; ``show`` prints a registered grant and its status.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
    error,
    need_deployment,
    out,
    print_json,
)

if TYPE_CHECKING:
    from sovra.model import Grant

__all__ = ["grant_app"]

grant_app = typer.Typer(
    help="Legal-assistance grants: request, approve (sign and register), revoke, show.",
    no_args_is_help=True,
)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        error(f"cannot read {path}: {exc.strerror}")
        raise typer.Exit(ExitCode.ERROR) from None


def _write(path: Path, data: bytes, consequence: str) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        error(f"cannot write {path}: {exc.strerror}; {consequence}")
        raise typer.Exit(ExitCode.ERROR) from None


@grant_app.command()
def request(
    grantee: Annotated[str, typer.Option(help="principal id of the requesting authority")],
    grantee_jurisdiction: Annotated[str, typer.Option(help="its jurisdiction")],
    approver: Annotated[str, typer.Option(help="subjects' home jurisdiction, which approves")],
    subject: Annotated[list[str], typer.Option(help="subject id (repeatable)")],
    output: Annotated[Path, typer.Option("--out", help="where to write the request")],
    purpose: Annotated[str, typer.Option()] = "foreign-legal-process",
    legal_basis: Annotated[str, typer.Option(help="treaty / request reference")] = "",
    category: Annotated[
        list[str] | None,
        typer.Option(help="data category the grant covers, e.g. email (repeatable; default all)"),
    ] = None,
    max_records: Annotated[int, typer.Option(help="records per request, 0: no cap")] = 0,
    days: Annotated[int, typer.Option(help="validity in days from now")] = 30,
    grant_id: Annotated[str | None, typer.Option(help="default: generated")] = None,
    deployment: DeploymentDir = None,
    url: Url = DEFAULT_URL,
) -> None:
    """Write an unsigned grant request for the approving authority to sign."""
    from sovra.model import Grant

    del deployment, url  # accepted so every grant command takes the same options
    now = int(time.time())
    body = Grant(
        grant_id=grant_id or f"mla-{approver.lower()}-{os.urandom(4).hex()}",
        grantee=grantee,
        grantee_jurisdiction=grantee_jurisdiction,
        approver=approver,
        subjects=tuple(subject),
        purpose=purpose,
        legal_basis=legal_basis or f"legal assistance requested of {approver}",
        not_before=now - 60,
        not_after=now + days * 86400,
        categories=tuple(sorted(set(category or []))),
        max_records=max_records,
    )
    _write(output, body.to_json(), "no request written")
    out.print(f"grant request [bold]{escape(body.grant_id)}[/] written to {escape(str(output))}")


@grant_app.command()
def approve(
    source: Annotated[Path, typer.Argument(help="grant request (or approved grant) JSON")],
    output: Annotated[
        Path | None, typer.Option("--out", help="also write the signed grant here")
    ] = None,
    cosigner: Annotated[
        str | None,
        typer.Option(help="co-sign an approved grant as this jurisdiction's authority"),
    ] = None,
    register: Annotated[
        bool | None,
        typer.Option(
            "--register/--no-register",
            help="register the grant (default: when approving, not when co-signing); a grant "
            "a subject's two homes sign is approved with --no-register, co-signed, then "
            "registered with --cosigner … --register",
        ),
    ] = None,
    deployment: DeploymentDir = None,
    url: Url = DEFAULT_URL,
) -> None:
    """Sign a grant as its approving authority and register it (or co-sign it)."""
    deployment = need_deployment(deployment)
    from sovra.custody import authority_key_path
    from sovra.keys import load_ed25519
    from sovra.model import Grant, check_jurisdiction
    from sovra.policy import cosign_grant, sign_grant

    grant = Grant.from_json(_read(source))
    if cosigner is not None:
        key = load_ed25519(authority_key_path(deployment, cosigner))
        cosigned = cosign_grant(grant, cosigner, key)
        target = output or source
        _write(target, cosigned.to_json(), "not co-signed")
        out.print(
            f"grant [bold]{escape(grant.grant_id)}[/] co-signed by {cosigner}, "
            f"written to {escape(str(target))}"
        )
        if register:
            _register(cosigned, deployment, url)
        return
    if register is False and not output:
        error("--no-register needs --out: the signed grant would be lost")
        raise typer.Exit(ExitCode.USAGE)
    approver = check_jurisdiction(grant.approver)
    signed = sign_grant(grant, load_ed25519(authority_key_path(deployment, approver)))
    if output:
        # Written before registering, so a registered grant is never lost to a bad --out.
        _write(output, signed.to_json(), "grant not registered")
    if register is False:
        out.print(f"grant [bold]{escape(signed.grant_id)}[/] signed by {approver}, not registered")
        return
    _register(signed, deployment, url, output)


def _register(grant: Grant, deployment: Path, url: str, output: Path | None = None) -> None:
    """Register *grant* as its approving authority, and say where it is in the log."""
    with connect(url, f"authority-{grant.approver.lower()}", None, deployment) as client:
        receipt = client.register_grant(grant)
    out.print(
        f"grant [bold]{escape(grant.grant_id)}[/] registered at log index "
        f"{receipt['receipt']['index']}" + (f", written to {escape(str(output))}" if output else "")
    )


@grant_app.command()
def revoke(
    grant_id: Annotated[str, typer.Argument(help="id of the grant to revoke")],
    principal: Annotated[str, typer.Option("--as", help="the approving or a co-signing authority")],
    key: KeyOpt = None,
    deployment: DeploymentDir = None,
    url: Url = DEFAULT_URL,
) -> None:
    """Revoke a grant; it takes effect at once (its approving authority; a co-signing
    authority withdraws its co-signature instead)."""
    with connect(url, principal, key, deployment) as client:
        done = client.revoke_grant(grant_id)
    index = done["receipt"]["index"]
    if done.get("outcome") == "cosignature-withdrawn":
        out.print(
            f"{escape(str(done.get('cosigner')))}'s co-signature of grant "
            f"[bold]{escape(grant_id)}[/] withdrawn at log index {index} (the grant itself "
            "stands)"
        )
        return
    out.print(f"grant [bold]{escape(grant_id)}[/] revoked at log index {index}")


@grant_app.command()
def show(
    grant_id: Annotated[str, typer.Argument(help="id of a registered grant")],
    principal: As = "auditor",
    key: KeyOpt = None,
    deployment: DeploymentDir = None,
    url: Url = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """Print a registered grant and whether it is revoked (JSON, with --json or without)."""
    del as_json  # JSON either way
    with connect(url, principal, key, deployment) as client:
        print_json(client.get_grant(grant_id))
