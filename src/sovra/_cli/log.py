"""``sovra log``: read and verify the public transparency log from any gateway."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sovra._cli.common import DEFAULT_URL, Url, connect, out, print_json, progress
from sovra.errors import BadRequest

if TYPE_CHECKING:
    from sovra.ledger import CosignatureVerifier

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
    witness: Annotated[
        list[str] | None,
        typer.Option(help="vkey of a trusted witness (repeatable): check the cosigned checkpoint"),
    ] = None,
    quorum: Annotated[
        int | None,
        typer.Option(help="how many of the --witness keys must cosign (default: all)"),
    ] = None,
) -> None:
    """Replay the log from its tiles, up to its newest checkpoint.

    Asks the log for its size and its newest checkpoint (a log that grew since its last
    one publishes one for its current size), fetches every entry bundle and hash tile
    (C2SP tlog-tiles), recomputes every hash, checks every published checkpoint's
    signature and root and the consistency of each with the next, and reports the bad
    entry by its own index. An audit that ends short of the entries the log held when
    asked fails, unless ``--to-checkpoint`` asked for that end. With ``--witness`` it
    also fetches the newest cosigned checkpoint, checks that a quorum of those
    witnesses cosigned it, and audits it with the rest.
    """
    from sovra.errors import VerificationError
    from sovra.ledger import CosignatureVerifier, NoteVerifier, audit_tiles, verify_checkpoint

    if vkey is not None:
        NoteVerifier.from_vkey(vkey)  # a malformed key is refused before any request
    witnesses = [CosignatureVerifier.from_vkey(w) for w in witness or ()]
    if quorum is not None and not witnesses:
        raise BadRequest("--quorum needs at least one --witness key")
    needed = len(witnesses) if quorum is None else quorum
    if witnesses and not 0 < needed <= len(witnesses):
        raise BadRequest(f"a quorum of {needed} out of {len(witnesses)} witnesses is not possible")
    cosigned: tuple[int, list[str]] | None = None
    trusted = None if from_checkpoint is None else _read_note(from_checkpoint)
    target = None if to_checkpoint is None else _read_note(to_checkpoint)
    with connect(url) as client:
        key = vkey or client.verifier_key()
        # The size first: the newest checkpoint, asked for after it, must cover it.
        held = _log_size(client.info())
        notes = client.checkpoints()
        if target is not None:
            last = verify_checkpoint(target, key).size
            notes = [n for n in notes if verify_checkpoint(n, key).size <= last] + [target]
        else:
            notes.append(client.checkpoint())
        if witnesses:
            notes, cosigned = _with_cosigned(
                client.cosigned_checkpoint(), notes, key, witnesses, needed
            )
        with progress("replaying entries") as bar:
            task = bar.add_task("", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = audit_tiles(client.log_file, notes, key, trusted=trusted, progress=advance)
    report.check()
    if target is None and report.size < held:
        raise VerificationError(
            f"stale log: its newest checkpoint covers {report.size} entries, but it held "
            f"{held} when asked; entries {report.size} to {held - 1} are not verified"
        )
    out.print(
        f"[bold green]verified[/] {report.entries} entries and {report.checkpoints} "
        f"checkpoints, up to size {report.size} of the {held} entries the log held: every "
        "root recomputed, every signature checked",
        highlight=False,
    )
    if cosigned is not None:
        size, names = cosigned
        out.print(
            f"[bold green]cosigned[/] checkpoint at size {size}: {len(names)} trusted "
            f"witnesses cosigned it, {needed} required ({', '.join(names)})",
            highlight=False,
        )


def _log_size(info: dict[str, object]) -> int:
    """The log size a gateway states in ``/v1/info``.

    Raises:
        BadRequest: the answer names no size (not a sovra gateway, or a broken one).
    """
    size = info.get("log_size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BadRequest("the gateway's /v1/info states no log size")
    return size


def _with_cosigned(
    note: str, notes: list[str], key: str, witnesses: list[CosignatureVerifier], quorum: int
) -> tuple[list[str], tuple[int, list[str]]]:
    """*notes* with the cosigned *note* among them, in order, after checking its quorum.

    Raises:
        BadRequest: the cosigned checkpoint lies beyond the audited range.
        VerificationError: too few cosignatures, or another root for an audited size.
    """
    from sovra.errors import VerificationError
    from sovra.ledger import verify_checkpoint, verify_cosignatures

    cp, names = verify_cosignatures(note, key, witnesses, quorum=quorum)
    sizes = [verify_checkpoint(n, key) for n in notes]
    for audited in sizes:
        if audited.size == cp.size and audited.root_hash != cp.root_hash:
            raise VerificationError(
                f"split view: the cosigned checkpoint at size {cp.size} has another root "
                "than the published one"
            )
    if sizes and cp.size > sizes[-1].size:
        raise BadRequest(
            f"the cosigned checkpoint (size {cp.size}) is beyond the audited one "
            f"(size {sizes[-1].size})"
        )
    if any(a.size == cp.size for a in sizes):
        return notes, (cp.size, names)
    at = next(n for n, a in enumerate(sizes) if a.size > cp.size)
    return [*notes[:at], note, *notes[at:]], (cp.size, names)


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
