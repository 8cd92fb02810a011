"""The ``sovra`` command: a thin adapter over the deployment, the client and the verifier.

Errors are translated once, at this edge: an error from the tree in :mod:`sovra.errors`
that leaves a command is printed with its diagnostics and becomes exit code 1 (the
caller's fault: a refusal, bad input, a missing or broken deployment) or 3 (an integrity
or verification failure); 2 is a usage error. A gateway that cannot be reached is exit
code 1 with the URL in the message. No expected failure prints a traceback.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from sovra.errors import IntegrityError, SovraError

if TYPE_CHECKING:
    from sovra.client import Client

__all__ = ["app", "main"]


class _Edge(TyperGroup):
    """The root command group; turns a sovra error leaving any command into a message."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except SovraError as exc:
            _fail(exc)


app = typer.Typer(
    cls=_Edge,
    help="sovra: a data-sovereignty gateway. Start with `sovra init DIR` or `sovra demo`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
log_app = typer.Typer(help="Read and verify the public transparency log.", no_args_is_help=True)
app.add_typer(log_app, name="log")
# soft_wrap: a line of text is never broken at the console's width, so a path or a
# message can be copied or grepped whole; tables still fit the width.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

DEFAULT_URL = "http://127.0.0.1:8750"
DeploymentDir = Annotated[Path, typer.Option("--deployment", "-d", help="deployment directory")]
Url = Annotated[str, typer.Option("--url", envvar="SOVRA_URL", help="gateway URL")]
As = Annotated[str, typer.Option("--as", help="principal id to act as")]
KeyOpt = Annotated[
    Path | None,
    typer.Option("--key", help="principal's key file [default: DEPLOYMENT/principals/ID.key]"),
]


def _error(message: str) -> None:
    # Plain Text, not markup: messages quote user input, which may contain brackets.
    err.print(Text.assemble(("error", "bold red"), " ", message))


def _fail(exc: SovraError) -> NoReturn:
    _error(exc.diagnostics())
    raise typer.Exit(3 if isinstance(exc, IntegrityError) else 1)


@contextmanager
def _client(
    url: str,
    principal: str | None = None,
    key: Path | None = None,
    deployment: Path = Path(),
) -> Iterator[Client]:
    """A client for *url*, signing as *principal* when given."""
    from sovra.client import Client
    from sovra.keys import load_ed25519
    from sovra.model import check_id

    signing_key = None
    if principal is not None:
        path = key or deployment / "principals" / f"{check_id(principal, 'principal')}.key"
        signing_key = load_ed25519(path)
    with Client(url, principal, signing_key) as client:
        yield client


def _progress(label: str) -> Progress:
    """A progress bar on stderr, shown only on a terminal so pipes stay clean."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


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
    Deployment.init(directory, jurisdictions=codes, origin=origin)
    shown = escape(str(directory))
    out.print(f"created deployment in [bold]{shown}[/] for {', '.join(codes)}")
    out.print(f"edit {escape(str(directory / 'sovra.toml'))}, then: sovra serve {shown}")


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

    dep = Deployment.open(directory)
    out.print(
        f"sovra serving [bold]{escape(str(directory))}[/] at http://{host}:{port}  "
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
    stdin = str(source) == "-"
    name = "standard input" if stdin else str(source)
    try:
        raw = sys.stdin.buffer.read() if stdin else source.read_bytes()
    except OSError as exc:
        _error(f"cannot read {name}: {exc.strerror}")
        raise typer.Exit(1) from None
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        _error(f"{name} is not UTF-8 text (byte {exc.start})")
        raise typer.Exit(1) from None
    with _client(url, principal, key, deployment) as client:
        _print_json(client.ingest(subject, jurisdiction, content))


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
            _error(f"--subject must be JURISDICTION:SUBJECT_ID, got {s!r}")
            raise typer.Exit(2)
        subjects.append((j, sid))
    grant = None
    if grant_file is not None:
        try:
            raw = grant_file.read_bytes()
        except OSError as exc:
            _error(f"cannot read {grant_file}: {exc.strerror}")
            raise typer.Exit(1) from None
        grant = Grant.from_json(raw)
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
            _error(f"cannot write {output}: {exc.strerror}; grant not registered")
            raise typer.Exit(1) from None
    with _client(url, f"authority-{approver.lower()}", None, deployment) as client:
        receipt = client.register_grant(signed)
    out.print(
        f"grant [bold]{escape(signed.grant_id)}[/] registered at log index "
        f"{receipt['receipt']['index']}" + (f", written to {escape(str(output))}" if output else "")
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
    out.print(table, markup=False, soft_wrap=False)
    out.print(
        f"{len(rep['entries'])} entries, every inclusion proof verified against the "
        f"checkpoint of size {cp.size}"
    )


@log_app.command("checkpoint")
def log_checkpoint(url: Url = DEFAULT_URL) -> None:
    """Print the latest signed checkpoint."""
    with _client(url) as client:
        note = client.checkpoint()
    # Byte for byte: a signed note that is wrapped or restyled no longer verifies.
    out.out(note, end="", highlight=False)


@log_app.command("prove")
def log_prove(
    index: Annotated[int, typer.Argument(help="entry index")],
    url: Url = DEFAULT_URL,
) -> None:
    """Fetch and verify the inclusion proof of one entry against the latest checkpoint."""
    from sovra.ledger import verify_checkpoint, verify_entry_inclusion

    with _client(url) as client:
        cp = verify_checkpoint(client.checkpoint(), client.verifier_key())
        entry = client.entries(index, index + 1)[0]
        proof = client.inclusion_proof(index, cp.size)
    verify_entry_inclusion(entry, index, proof, cp)
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
    from sovra.ledger import NoteVerifier, audit, verify_checkpoint

    if vkey is not None:
        NoteVerifier.from_vkey(vkey)  # a malformed key is refused before any request
    with _client(url) as client:
        key = vkey or client.verifier_key()
        notes = client.checkpoints()
        size = verify_checkpoint(notes[-1], key).size if notes else 0
        entries: list[bytes] = []
        with _progress("fetching entries") as bar:
            task = bar.add_task("", total=size)
            for start in range(0, size, 1000):
                entries += client.entries(start, min(size, start + 1000))
                bar.update(task, completed=len(entries))
    result = audit(entries, notes, key)
    result.check()
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
        if not (root / "sovra.toml").exists():
            Deployment.init(root)
        dep = Deployment.open(root)
        try:
            with _progress("ingesting") as bar:
                task = bar.add_task("", total=None)
                steps = run_demo(
                    dep,
                    synthetic=synthetic,
                    progress=lambda n, t: bar.update(task, completed=n, total=t),
                )
        finally:
            dep.close()
    table = Table(title="sovra demo: the seed scenario", show_lines=True)
    for col in ("#", "actor", "request", "expected", "outcome", "reason", "log index"):
        table.add_column(col, overflow="fold")
    for s in steps:
        table.add_row(
            str(s.number),
            s.actor,
            s.action,
            s.expected,
            Text(s.outcome, style="green" if s.ok else "bold red"),
            s.reason,
            "" if s.log_index is None else str(s.log_index),
        )
    out.print(table, markup=False, soft_wrap=False)
    bad = [s.number for s in steps if not s.ok]
    if bad:
        _error(f"unexpected outcome in step(s) {bad}")
        raise typer.Exit(1)
    out.print("[bold green]all seven outcomes as expected[/]")


def main() -> None:
    """Entry point of the ``sovra`` console script."""
    app(prog_name="sovra")


if __name__ == "__main__":
    main()
