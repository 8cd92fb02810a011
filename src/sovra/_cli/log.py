"""``sovra log``: read and verify the public transparency log from any gateway."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Annotated

import typer

from sovra._cli.common import DEFAULT_URL, Url, connect, out, print_json, progress
from sovra.errors import BadRequest

__all__ = ["log_app"]

log_app = typer.Typer(help="Read and verify the public transparency log.", no_args_is_help=True)


@log_app.command("checkpoint")
def log_checkpoint(url: Url = DEFAULT_URL) -> None:
    """Print the latest signed checkpoint."""
    with connect(url) as client:
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

    with connect(url) as client:
        cp = verify_checkpoint(client.checkpoint(), client.verifier_key())
        entry = client.entries(index, index + 1)[0]
        proof = client.inclusion_proof(index, cp.size)
    verify_entry_inclusion(entry, index, proof, cp)
    print_json(
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
    from_checkpoint: Annotated[
        Path | None,
        typer.Option(help="a checkpoint note audited before: replay only what came after it"),
    ] = None,
    to_checkpoint: Annotated[
        Path | None, typer.Option(help="audit up to this checkpoint note (default: the latest)")
    ] = None,
) -> None:
    """Replay the log from its tiles: every leaf, tile, root and consistency proof.

    Fetches every entry bundle and hash tile (C2SP tlog-tiles), recomputes every hash,
    checks every published checkpoint's signature and root and the consistency of each
    with the next, and reports the first bad index if there is one.
    """
    from sovra.ledger import NoteVerifier, audit_tiles, verify_checkpoint

    if vkey is not None:
        NoteVerifier.from_vkey(vkey)  # a malformed key is refused before any request
    trusted = None if from_checkpoint is None else _read_note(from_checkpoint)
    target = None if to_checkpoint is None else _read_note(to_checkpoint)
    with connect(url) as client:
        key = vkey or client.verifier_key()
        # With nothing published yet, asking for the checkpoint publishes one.
        notes = client.checkpoints() or [client.checkpoint()]
        if target is not None:
            last = verify_checkpoint(target, key).size
            notes = [n for n in notes if verify_checkpoint(n, key).size <= last] + [target]
        with progress("replaying entries") as bar:
            task = bar.add_task("", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = audit_tiles(client.log_file, notes, key, trusted=trusted, progress=advance)
    report.check()
    out.print(
        f"[bold green]verified[/] {report.entries} entries and {report.checkpoints} "
        f"checkpoints: every root recomputed, every signature checked"
    )


def _read_note(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadRequest(f"cannot read the checkpoint note {path}: {exc.strerror}") from None
    if len(data) > 1 << 16:
        raise BadRequest(f"{path} is too large to be a checkpoint note")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"{path} is not UTF-8 text") from None
