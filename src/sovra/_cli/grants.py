"""``sovra grant``: sign a legal-assistance grant with the approving authority's key."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from sovra._cli.common import DEFAULT_URL, DeploymentDir, Url, connect, error, out

__all__ = ["grant"]


def grant(
    grantee: Annotated[str, typer.Option(help="principal id of the requesting authority")],
    grantee_jurisdiction: Annotated[str, typer.Option(help="its jurisdiction")],
    approver: Annotated[str, typer.Option(help="home jurisdiction that approves and signs")],
    subject: Annotated[list[str], typer.Option(help="subject id (repeatable)")],
    purpose: Annotated[str, typer.Option()] = "foreign-legal-process",
    legal_basis: Annotated[str, typer.Option(help="treaty / request reference")] = "",
    days: Annotated[int, typer.Option(help="validity in days from now")] = 30,
    grant_id: Annotated[str | None, typer.Option(help="default: generated")] = None,
    output: Annotated[Path | None, typer.Option("--out", help="also write the grant here")] = None,
    deployment: DeploymentDir = Path("deployment"),
    url: Url = DEFAULT_URL,
) -> None:
    """Sign a legal-assistance grant with the approver's authority key and register it."""
    from sovra.keys import load_ed25519
    from sovra.model import Grant
    from sovra.policy import sign_grant

    now = int(time.time())
    body = Grant(
        grant_id=grant_id or f"mla-{approver.lower()}-{os.urandom(4).hex()}",
        grantee=grantee,
        grantee_jurisdiction=grantee_jurisdiction,
        approver=approver,
        subjects=tuple(subject),
        purpose=purpose,
        legal_basis=legal_basis or f"legal assistance approved by {approver}",
        not_before=now - 60,
        not_after=now + days * 86400,
    )
    signed = sign_grant(body, load_ed25519(deployment / "authorities" / f"{approver}.key"))
    if output:
        # Written before registering, so a registered grant is never lost to a bad --out.
        try:
            output.write_bytes(signed.to_json())
        except OSError as exc:
            error(f"cannot write {output}: {exc.strerror}; grant not registered")
            raise typer.Exit(1) from None
    with connect(url, f"authority-{approver.lower()}", None, deployment) as client:
        receipt = client.register_grant(signed)
    out.print(
        f"grant [bold]{escape(signed.grant_id)}[/] registered at log index "
        f"{receipt['receipt']['index']}" + (f", written to {escape(str(output))}" if output else "")
    )
