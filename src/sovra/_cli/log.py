"""``sovra log``: read and verify the public transparency log from any gateway."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Annotated

import typer

from sovra._cli.common import (
    DEFAULT_URL,
    DeploymentDir,
    JsonOpt,
    Url,
    VkeyOpt,
    connect,
    need_deployment,
    out,
    print_json,
    progress,
    trusted_key,
)
from sovra.errors import BadRequest

__all__ = ["log_app"]

log_app = typer.Typer(help="Read and verify the public transparency log.", no_args_is_help=True)


@log_app.command("key")
def log_key(deployment: DeploymentDir = None) -> None:
    """Print the log's verifier key, read from the deployment's own files (no server asked).

    Publish it where auditors find it apart from the gateway (a web page, a contract, a
    DNS record); they pin it with ``--vkey``.
    """
    from sovra.config import Config
    from sovra.deployment import CONFIG_NAME
    from sovra.keys.files import load_ed25519
    from sovra_verify.note import NoteSigner

    deployment = need_deployment(deployment)
    config = Config.load(deployment / CONFIG_NAME)
    signer = NoteSigner(config.origin, load_ed25519(deployment / "keys" / "log.key"))
    out.out(signer.vkey, highlight=False)


@log_app.command("checkpoint")
def log_checkpoint(url: Url = DEFAULT_URL, as_json: JsonOpt = False) -> None:
    """Print the latest signed checkpoint (not verified: `sovra log verify` does that)."""
    with connect(url) as client:
        note = client.checkpoint()
    if as_json:
        # The note's own first three lines: its origin, size and root hash (base64).
        origin, size, root = [*note.split("\n", 3), "", ""][:3]
        if not size.isdigit():
            raise BadRequest("the gateway's checkpoint is not a checkpoint note")
        print_json({"origin": origin, "size": int(size), "root_hash": root, "note": note})
        return
    # Byte for byte: a signed note that is wrapped or restyled no longer verifies.
    out.out(note, end="", highlight=False)


@log_app.command("prove")
def log_prove(
    index: Annotated[int, typer.Argument(help="entry index")],
    url: Url = DEFAULT_URL,
    vkey: VkeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fetch and verify the inclusion proof of one entry against the latest checkpoint.

    Prints JSON, with --json or without."""
    del as_json  # JSON either way; taken as every command that reads takes it
    from sovra_verify.audit import prove_entry
    from sovra_verify.verify import verify_checkpoint

    with connect(url) as client:
        key = trusted_key(vkey, client.verifier_key)
        note = client.checkpoint()
        size = verify_checkpoint(note, key).size
        entry = client.entries(index, index + 1)[0]
        proof = client.inclusion_proof(index, size)
    checked = prove_entry(note, entry, index, proof, key)
    print_json(
        {
            "index": index,
            "size": checked.checkpoint.size,
            "entry": json.loads(entry),
            "proof": [base64.b64encode(h).decode() for h in checked.proof],
            "verified": True,
        }
    )


@log_app.command("verify")
def log_verify(
    url: Url = DEFAULT_URL,
    vkey: VkeyOpt = None,
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
    as_json: JsonOpt = False,
) -> None:
    """Replay the log from its tiles, up to its newest checkpoint.

    Asks the log for its size and its newest checkpoint (a log that grew since its last
    one publishes one for its current size), fetches every entry bundle and hash tile
    (C2SP tlog-tiles), recomputes every hash, checks every published checkpoint's
    signature and root and the consistency of each with the next, and reports the bad
    entry by its own index. An audit that ends short of the entries the log held when
    asked fails, unless ``--to-checkpoint`` asked for that end. With ``--witness`` it
    also fetches the newest cosigned checkpoint, checks that a quorum of those
    witnesses cosigned it, and audits it with the rest. The same check runs in
    ``sovra-verify log``, which installs with cryptography alone.
    """
    from sovra_verify.audit import audit_log, check_quorum, load_vkey, read_note
    from sovra_verify.cosignature import CosignatureVerifier

    # Malformed keys and an impossible quorum are refused before any request.
    pinned = None if vkey is None else load_vkey(vkey)
    witnesses = [CosignatureVerifier.from_vkey(w) for w in witness or ()]
    check_quorum(witnesses, quorum)
    trusted = None if from_checkpoint is None else read_note(from_checkpoint)
    target = None if to_checkpoint is None else read_note(to_checkpoint)
    with connect(url) as client:
        key = pinned or trusted_key(None, client.verifier_key)
        with progress("replaying entries") as bar:
            task = bar.add_task("", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = audit_log(
                client,
                key,
                witnesses=witnesses,
                quorum=quorum,
                trusted=trusted,
                target=target,
                progress=advance,
            )
    if as_json:
        cosigned = None
        if result.cosigned_size is not None:
            cosigned = {
                "size": result.cosigned_size,
                "witnesses": list(result.witnesses),
                "quorum": result.quorum,
            }
        print_json(
            {
                "verified": True,
                "entries": result.entries,
                "checkpoints": result.checkpoints,
                "size": result.size,
                "held": result.held,
                "cosigned": cosigned,
            }
        )
        return
    out.print(
        f"[bold green]verified[/] {result.entries} entries and {result.checkpoints} "
        f"checkpoints, up to size {result.size} of the {result.held} entries the log held: "
        "every root recomputed, every signature checked",
        highlight=False,
    )
    if result.cosigned_size is not None:
        out.print(
            f"[bold green]cosigned[/] checkpoint at size {result.cosigned_size}: "
            f"{len(result.witnesses)} trusted witnesses cosigned it, {result.quorum} required "
            f"({', '.join(result.witnesses)})",
            highlight=False,
        )


WitnessOpt = Annotated[
    list[str] | None, typer.Option(help="vkey of a trusted witness (repeatable)")
]
QuorumOpt = Annotated[
    int | None, typer.Option(help="how many of the --witness keys must cosign (default: all)")
]
PolicyOpt = Annotated[
    Path | None,
    typer.Option(help="a C2SP tlog-policy file (logs, witnesses, groups, quorum) instead"),
]


@log_app.command("export-proof")
def log_export_proof(
    index: Annotated[
        int, typer.Argument(help="the entry's index (a receipt's, decision's or release's)")
    ],
    url: Url = DEFAULT_URL,
    vkey: VkeyOpt = None,
    witness: WitnessOpt = None,
    quorum: QuorumOpt = None,
    policy: PolicyOpt = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write the proof here, not to stdout")
    ] = None,
) -> None:
    """Export one entry as a C2SP tlog-proof that anyone checks offline.

    The proof holds the entry itself, its inclusion proof and the gateway's newest
    checkpoint cosigned by its witness quorum (the newest checkpoint when it has no
    witnesses). It is verified here against the keys given before it is written; check
    it anywhere with ``sovra log verify-proof`` or ``sovra-verify verify-proof``.
    """
    from sovra_verify.proof import TlogProof, trust_policy

    trust = trust_policy(witness or (), quorum, policy)
    with connect(url) as client:
        key = trusted_key(vkey, client.verifier_key)
        note = client.cosigned_checkpoint() if trust.witnesses else client.checkpoint()
        size = trust.check(note, key).checkpoint.size
        if not 0 <= index < size:
            raise BadRequest(f"entry {index} is not covered by the checkpoint of size {size}")
        entry = client.entries(index, index + 1)[0]
        path = client.inclusion_proof(index, size)
    proof = TlogProof(index, tuple(path), note, entry)
    proof.verify(trust, log_vkey=key)
    text = proof.to_text()
    if output is None:
        out.out(text, end="", highlight=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise BadRequest(f"cannot write {output}: {exc.strerror}") from None


@log_app.command("verify-proof")
def log_verify_proof(
    file: Annotated[Path, typer.Argument(help="the .tlog-proof file")],
    vkey: Annotated[
        str | None, typer.Option(help="the log's verifier key (vkey or file); or a policy log line")
    ] = None,
    witness: WitnessOpt = None,
    quorum: QuorumOpt = None,
    policy: PolicyOpt = None,
    entry: Annotated[
        Path | None, typer.Option(help="the entry you expect (default: the one the proof carries)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a C2SP tlog-proof offline: the log's signature, the witness quorum, inclusion.

    Nothing is fetched: the trust is what the options say (the log key, the witness keys
    and quorum, or a tlog-policy file). Prints what was verified as JSON; exit 3 when
    anything does not verify, 1 for bad input.
    """
    del as_json  # JSON either way; taken as every command that reads takes it
    from sovra_verify.audit import load_vkey
    from sovra_verify.proof import check_proof_file, proof_report, trust_policy

    trust = trust_policy(witness or (), quorum, policy)
    key = None if vkey is None else load_vkey(vkey)
    print_json(proof_report(check_proof_file(file, trust, log_vkey=key, entry=entry)))


@log_app.command("publish-tiles")
def log_publish_tiles(
    deployment: DeploymentDir = None,
    repair: Annotated[
        bool,
        typer.Option(
            help="replace files the store holds with other bytes than the log's (after an "
            "audit named them)"
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Publish the log's tiles, entry bundles and checkpoint where ``[log.tiles]`` says.

    Backfills an existing log (or catches up after the store was unreachable): writes
    every C2SP tlog-tiles file the store lacks, up to the log's newest checkpoint (with
    witnesses in [witnesses], the newest their quorum cosigned, with their lines), then
    the checkpoint, then removes the partial tiles whose full tile it holds and that the
    checkpoint no longer names. Files already there with the same bytes are left alone;
    one with other bytes is refused (exit 3) unless --repair, which also removes every
    partial tile left behind whose full tile is there. `sovra serve` does the same in
    the background as the log grows.
    """
    from sovra._regions import open_tile_store
    from sovra.config import Config
    from sovra.deployment import CONFIG_NAME, open_witnessed_log
    from sovra.errors import ConfigError
    from sovra.ledger.tiles_publish import TilePublisher

    deployment = need_deployment(deployment)
    config = Config.load(deployment / CONFIG_NAME)
    store = open_tile_store(deployment, config)
    if store is None:
        raise ConfigError(
            f"{deployment / CONFIG_NAME} has no [log.tiles] table: say where to publish, "
            'e.g. [log.tiles] location = "tiles" or "s3://bucket/prefix"'
        )
    log, cosignatures = open_witnessed_log(deployment, config)
    try:
        with progress("publishing tiles") as bar:
            task = bar.add_task("", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            remove = config.log_tiles is None or config.log_tiles.remove_partial_tiles
            publisher = TilePublisher(log, store, cosignatures, remove_partials=remove)
            result = publisher.publish(progress=advance, repair=repair)
    finally:
        log.close()
        store.close()
    facts = {
        "where": store.where,
        "size": result.size,
        "previous": result.previous,
        "files_written": result.files,
        "bytes_written": result.bytes,
        "checkpoint_replaced": result.checkpoint,
        "partials_removed": result.removed,
        "cosignatures": result.cosignatures,
    }
    if as_json:
        print_json(facts)
        return
    out.print(
        f"[bold green]published[/] the log up to size {result.size} (was {result.previous}) "
        f"to {store.where}: {result.files} files, {result.bytes} bytes written, "
        f"{result.removed} partial tiles removed",
        highlight=False,
    )
