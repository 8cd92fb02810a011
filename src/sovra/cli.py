"""The ``sovra`` command: a thin adapter over the deployment, the client and the verifier.

Errors from the tree in :mod:`sovra.errors` are printed with their diagnostics and turn
into exit code 1 (caller's fault), 2 (usage) or 3 (integrity/verification failures).
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sovra.errors import ClientError, IntegrityError, SovraError

__all__ = ["app", "main"]

app = typer.Typer(
    help="sovra: a data-sovereignty gateway. Start with `sovra init DIR` or `sovra demo`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
log_app = typer.Typer(help="Read and verify the public transparency log.", no_args_is_help=True)
app.add_typer(log_app, name="log")
out = Console()
err = Console(stderr=True)

DEFAULT_URL = os.environ.get("SOVRA_URL", "http://127.0.0.1:8750")
DeploymentDir = Annotated[Path, typer.Option("--deployment", "-d", help="deployment directory")]
Url = Annotated[str, typer.Option("--url", help="gateway URL (env SOVRA_URL)")]
As = Annotated[str, typer.Option("--as", help="principal id to act as")]
KeyOpt = Annotated[
    Path | None,
    typer.Option("--key", help="principal's key file [default: DEPLOYMENT/principals/ID.key]"),
]


def _fail(exc: SovraError) -> NoReturn:
    err.print(f"[bold red]error[/] {exc.diagnostics()}", highlight=False)
    raise typer.Exit(3 if isinstance(exc, IntegrityError) else 1)


def _client(url: str, principal: str | None, key: Path | None, deployment: Path):  # type: ignore[no-untyped-def]
    from sovra.client import Client
    from sovra.keys import load_ed25519

    if principal is None:
        return Client(url)
    path = key or deployment / "principals" / f"{principal}.key"
    return Client(url, principal, load_ed25519(path))


def _print_json(value: object) -> None:
    out.print_json(json.dumps(value, ensure_ascii=False))


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="where to create the deployment")],
    jurisdictions: Annotated[
        str, typer.Option(help="comma-separated ISO codes")
    ] = "PL,VN,DE,US,CN",
    origin: Annotated[str | None, typer.Option(help="log origin line")] = None,
) -> None:
    """Create a deployment: SQLite, blob folder, custodian and authority keys, sovra.toml."""
    from sovra.deployment import Deployment

    codes = [c.strip() for c in jurisdictions.split(",") if c.strip()]
    try:
        Deployment.init(directory, jurisdictions=codes, origin=origin)
    except SovraError as exc:
        _fail(exc)
    out.print(f"created deployment in [bold]{directory}[/] for {', '.join(codes)}")
    out.print(f"edit {directory / 'sovra.toml'}, then: sovra serve {directory}")


@app.command()
def serve(
    directory: Annotated[Path, typer.Argument(help="deployment directory")] = Path("deployment"),
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to bind")] = 8750,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from sovra.deployment import Deployment
    from sovra.server import create_app

    try:
        dep = Deployment.open(directory)
    except SovraError as exc:
        _fail(exc)
    out.print(
        f"sovra serving [bold]{directory}[/] at http://{host}:{port}  "
        f"(API docs: http://{host}:{port}/docs, log: http://{host}:{port}/v1/log/checkpoint)"
    )
    try:
        uvicorn.run(create_app(dep), host=host, port=port, log_level="warning")
    finally:
        dep.close()


@app.command()
def put(
    subject: Annotated[str, typer.Option(help="subject id")],
    jurisdiction: Annotated[str, typer.Option(help="subject's home jurisdiction")],
    source: Annotated[Path, typer.Argument(help="file with the record's text, or - for stdin")],
    principal: As = "svc-pl",
    key: KeyOpt = None,
    deployment: DeploymentDir = Path("deployment"),
    url: Url = DEFAULT_URL,
) -> None:
    """Ingest a record through a running gateway."""
    try:
        raw = sys.stdin.buffer.read() if str(source) == "-" else source.read_bytes()
    except OSError as exc:
        err.print(f"[bold red]error[/] cannot read {source}: {exc.strerror}")
        raise typer.Exit(1) from None
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        err.print(f"[bold red]error[/] {source} is not UTF-8 text (byte {exc.start})")
        raise typer.Exit(1) from None
    try:
        with _client(url, principal, key, deployment) as client:
            _print_json(client.ingest(subject, jurisdiction, content))
    except SovraError as exc:
        _fail(exc)


@app.command()
def get(
    purpose: Annotated[str, typer.Option(help="declared purpose")],
    record: Annotated[list[str] | None, typer.Option(help="record id (repeatable)")] = None,
    subject: Annotated[
        list[str] | None, typer.Option(help="JURISDICTION:SUBJECT_ID (repeatable)")
    ] = None,
    everything_of: Annotated[
        str | None, typer.Option("--all-of", help="every record of this jurisdiction")
    ] = None,
    grant_file: Annotated[Path | None, typer.Option("--grant", help="signed grant JSON")] = None,
    principal: As = "svc-pl",
    key: KeyOpt = None,
    deployment: DeploymentDir = Path("deployment"),
    url: Url = DEFAULT_URL,
) -> None:
    """Read records. A deny is printed with its reason and log index, exit code 1."""
    from sovra.model import Grant

    subjects = []
    for s in subject or []:
        j, sep, sid = s.partition(":")
        if not sep:
            err.print(f"[bold red]error[/] --subject must be JURISDICTION:SUBJECT_ID, got {s!r}")
            raise typer.Exit(2)
        subjects.append((j, sid))
    try:
        grant = Grant.from_json(grant_file.read_bytes()) if grant_file else None
        with _client(url, principal, key, deployment) as client:
            _print_json(
                client.access(
                    purpose,
                    record_ids=record or [],
                    subjects=subjects,
                    jurisdiction=everything_of,
                    grant=grant,
                )
            )
    except OSError as exc:
        err.print(f"[bold red]error[/] cannot read {grant_file}: {exc.strerror}")
        raise typer.Exit(1) from None
    except SovraError as exc:
        _fail(exc)


@app.command()
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
    try:
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
            output.write_bytes(signed.to_json())
        authority = f"authority-{approver.lower()}"
        with _client(url, authority, None, deployment) as client:
            receipt = client.register_grant(signed)
    except SovraError as exc:
        _fail(exc)
    out.print(
        f"grant [bold]{signed.grant_id}[/] registered at log index "
        f"{receipt['receipt']['index']}" + (f", written to {output}" if output else "")
    )


@app.command()
def report(
    subject: Annotated[str, typer.Option(help="subject id")],
    jurisdiction: Annotated[str, typer.Option(help="subject's home jurisdiction")],
    principal: As = "subject-anna",
    key: KeyOpt = None,
    deployment: DeploymentDir = Path("deployment"),
    url: Url = DEFAULT_URL,
) -> None:
    """Who touched this subject's data: entries verified against the log's checkpoint."""
    from sovra.ledger import verify_checkpoint, verify_entry_inclusion

    try:
        with _client(url, principal, key, deployment) as client:
            rep = client.report(jurisdiction, subject)
            vkey = client.verifier_key()
        cp = verify_checkpoint(rep["checkpoint"], vkey)
        table = Table(title=f"log entries about subject {rep['commitment'][:16]}…")
        for col in ("index", "kind", "principal", "effect", "reason", "proof"):
            table.add_column(col)
        for e in rep["entries"]:
            entry = e["entry"].encode()
            verify_entry_inclusion(entry, e["index"], [base64.b64decode(h) for h in e["proof"]], cp)
            fields = json.loads(entry)
            table.add_row(
                str(e["index"]),
                fields["kind"],
                fields["principal"],
                fields.get("effect", ""),
                fields.get("reason", "")[:60],
                "verified",
            )
    except SovraError as exc:
        _fail(exc)
    out.print(table)
    out.print(
        f"{len(rep['entries'])} entries, every inclusion proof verified against the "
        f"checkpoint of size {cp.size}"
    )


@log_app.command("checkpoint")
def log_checkpoint(url: Url = DEFAULT_URL) -> None:
    """Print the latest signed checkpoint."""
    try:
        with _client(url, None, None, Path()) as client:
            out.print(client.checkpoint(), end="", highlight=False)
    except SovraError as exc:
        _fail(exc)


@log_app.command("prove")
def log_prove(
    index: Annotated[int, typer.Argument(help="entry index")],
    url: Url = DEFAULT_URL,
) -> None:
    """Fetch and verify the inclusion proof of one entry against the latest checkpoint."""
    from sovra.ledger import verify_checkpoint, verify_entry_inclusion

    try:
        with _client(url, None, None, Path()) as client:
            cp = verify_checkpoint(client.checkpoint(), client.verifier_key())
            entry = client.entries(index, index + 1)[0]
            proof = client.inclusion_proof(index, cp.size)
        verify_entry_inclusion(entry, index, proof, cp)
    except SovraError as exc:
        _fail(exc)
    _print_json(
        {
            "index": index,
            "size": cp.size,
            "entry": json.loads(entry),
            "proof": [base64.b64encode(h).decode() for h in proof],
            "verified": True,
        }
    )


@log_app.command("verify")
def log_verify(
    url: Url = DEFAULT_URL,
    vkey: Annotated[
        str | None, typer.Option(help="trusted verifier key (default: ask the server; pin it!)")
    ] = None,
) -> None:
    """Replay the whole log, recompute every root and check every checkpoint."""
    from sovra.ledger import audit, verify_checkpoint

    try:
        with _client(url, None, None, Path()) as client:
            key = vkey or client.verifier_key()
            notes = client.checkpoints()
            size = verify_checkpoint(notes[-1], key).size if notes else 0
            entries: list[bytes] = []
            with Progress(
                TextColumn("fetching entries"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            ) as bar:
                task = bar.add_task("", total=size)
                for start in range(0, size, 1000):
                    entries += client.entries(start, min(size, start + 1000))
                    bar.update(task, completed=len(entries))
        result = audit(entries, notes, key)
        result.check()
    except SovraError as exc:
        _fail(exc)
    out.print(
        f"[bold green]verified[/] {size} entries and {result.checkpoints} "
        f"checkpoints: every root recomputed, every signature checked"
    )


@app.command()
def demo(
    deployment: Annotated[
        Path | None, typer.Option("--deployment", "-d", help="default: a fresh temporary one")
    ] = None,
    synthetic: Annotated[int, typer.Option(help="synthetic subjects to ingest")] = 300,
) -> None:
    """Run the seed scenario and print its seven outcomes; exit 1 if any is unexpected."""
    from sovra.demo import run_demo
    from sovra.deployment import Deployment

    with tempfile.TemporaryDirectory(prefix="sovra-demo-") as tmp:
        root = deployment or Path(tmp) / "deployment"
        try:
            if not (root / "sovra.toml").exists():
                Deployment.init(root)
            dep = Deployment.open(root)
            with Progress(
                TextColumn("ingesting"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            ) as bar:
                task = bar.add_task("", total=None)
                steps = run_demo(
                    dep,
                    synthetic=synthetic,
                    progress=lambda n, t: bar.update(task, completed=n, total=t),
                )
            dep.close()
        except SovraError as exc:
            _fail(exc)
    table = Table(title="sovra demo: the seed scenario", show_lines=True)
    for col in ("#", "actor", "request", "expected", "outcome", "reason", "log index"):
        table.add_column(col, overflow="fold")
    for s in steps:
        colour = "green" if s.ok else "bold red"
        table.add_row(
            str(s.number),
            s.actor,
            s.action,
            s.expected,
            f"[{colour}]{s.outcome}[/]",
            s.reason,
            "" if s.log_index is None else str(s.log_index),
        )
    out.print(table)
    bad = [s.number for s in steps if not s.ok]
    if bad:
        err.print(f"[bold red]unexpected outcome in step(s) {bad}[/]")
        raise typer.Exit(1)
    out.print("[bold green]all seven outcomes as expected[/]")


def main() -> None:
    """Entry point of the ``sovra`` console script."""
    try:
        app()
    except ClientError as exc:  # an error that escaped a command's own handling
        _fail(exc)


if __name__ == "__main__":
    main()
