"""``sovra-verify``: check a sovra gateway's log with the log's key you already hold.

    sovra-verify log URL --vkey KEY [--witness W ...] [--quorum N]
                 [--from-checkpoint FILE] [--to-checkpoint FILE]
    sovra-verify tiles URL_PREFIX|FOLDER --vkey KEY [--witness W ...] [--quorum N]
                 [--from-checkpoint FILE] [--save-checkpoint FILE]
    sovra-verify prove URL INDEX --vkey KEY
    sovra-verify verify-proof FILE --vkey KEY [--witness W ... [--quorum N] | --policy FILE]
                 [--entry FILE]
    sovra-verify receipt FILE --vkey KEY [--entry FILE ...]

``--vkey`` is required: a C2SP verifier key string, or a file holding one. The key the
gateway states for itself is never used; it is compared with the given one only to say
which of the two a failure is about. Exit codes: 0 verified; 1 bad input or a refusal;
2 a usage error; 3 something did not verify (a signature, a hash, a proof, a stale or
split log, a receipt); 4 the gateway could not be reached or did not answer as one.
``receipt`` is offline: it reads files only. ``tiles`` replays a log published as static
C2SP tlog-tiles files (``checkpoint`` and ``tile/...`` under a bucket's or a CDN's URL
prefix, or in a folder), as ``log`` replays a gateway.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from sovra_verify import __version__
from sovra_verify.audit import audit_log, load_vkey, prove_entry, read_note
from sovra_verify.cosignature import CosignatureVerifier
from sovra_verify.errors import BadRequest, IntegrityError, SovraError, Unavailable
from sovra_verify.note import MAX_SIGNATURES, NoteVerifier, split_signed_note
from sovra_verify.proof import check_proof_file, proof_report, trust_policy
from sovra_verify.receipt import check_receipts
from sovra_verify.remote import LogReader
from sovra_verify.static import static_log
from sovra_verify.verify import verify_checkpoint

__all__ = ["EXIT_UNREACHABLE", "EXIT_UNVERIFIED", "main"]

EXIT_UNVERIFIED = 3
EXIT_UNREACHABLE = 4


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sovra-verify",
        description="Verify a sovra gateway's transparency log against the log key you hold.",
    )
    parser.add_argument("--version", action="version", version=f"sovra-verify {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    log = commands.add_parser(
        "log", help="replay the whole log from its tiles and check every checkpoint"
    )
    log.add_argument("url", help="the gateway's base URL")
    _audit_options(log)
    log.add_argument(
        "--to-checkpoint",
        type=Path,
        metavar="FILE",
        help="audit up to this checkpoint note (default: the newest)",
    )
    log.add_argument(
        "--save-checkpoint",
        type=Path,
        metavar="FILE",
        help="write the newest verified checkpoint note here, for the next --from-checkpoint",
    )

    tiles = commands.add_parser(
        "tiles",
        help="replay a log published as static tlog-tiles files (a bucket, a CDN, a folder)",
    )
    tiles.add_argument(
        "source", help="the URL prefix holding checkpoint and tile/, or a folder holding them"
    )
    _audit_options(tiles)
    tiles.add_argument(
        "--save-checkpoint",
        type=Path,
        metavar="FILE",
        help="write the verified checkpoint note here, for the next --from-checkpoint",
    )

    prove = commands.add_parser(
        "prove", help="check one entry's inclusion proof against the newest checkpoint"
    )
    prove.add_argument("url", help="the gateway's base URL")
    prove.add_argument("index", type=int, help="the entry's index")
    _vkey_option(prove)

    offline = commands.add_parser(
        "verify-proof",
        help="check a C2SP tlog-proof file offline: log signature, witness quorum, inclusion",
    )
    offline.add_argument("file", type=Path, help="the .tlog-proof file")
    offline.add_argument(
        "--vkey", help="the log's verifier key (vkey or file); or a log line in --policy"
    )
    offline.add_argument(
        "--witness", action="append", default=[], metavar="VKEY", help="a trusted witness"
    )
    offline.add_argument("--quorum", type=int, help="how many --witness keys must cosign")
    offline.add_argument(
        "--policy", type=Path, metavar="FILE", help="a C2SP tlog-policy file (groups, k of n)"
    )
    offline.add_argument(
        "--entry", type=Path, metavar="FILE", help="the entry expected (default: the proof's own)"
    )

    receipt = commands.add_parser(
        "receipt",
        help="check a receipt (or a gateway answer holding receipts) offline with the log key",
    )
    receipt.add_argument(
        "file",
        type=Path,
        help="JSON: a receipt, or an answer with receipt / decision_receipt / release_receipt",
    )
    _vkey_option(receipt)
    receipt.add_argument(
        "--entry",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="an entry's exact bytes (repeatable): one of the receipts must cover it",
    )
    return parser


def _audit_options(parser: argparse.ArgumentParser) -> None:
    """--vkey, --witness, --quorum and --from-checkpoint of a replay."""
    _vkey_option(parser)
    parser.add_argument(
        "--witness",
        action="append",
        default=[],
        metavar="VKEY",
        help="vkey of a trusted witness (repeatable): check the cosigned checkpoint",
    )
    parser.add_argument(
        "--quorum", type=int, help="how many of the --witness keys must cosign (default: all)"
    )
    parser.add_argument(
        "--from-checkpoint",
        type=Path,
        metavar="FILE",
        help="a checkpoint note audited before: replay only what came after it",
    )


def _vkey_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--vkey",
        required=True,
        help="the log's verifier key: a C2SP vkey string, or a file holding one",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sovra-verify``; return its exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command in ("log", "tiles"):
            _log(args)
        elif args.command == "receipt":
            _receipt(args)
        elif args.command == "prove":
            _prove(args)
        else:
            _verify_proof(args)
    except SovraError as exc:
        print(f"sovra-verify: {exc.diagnostics()}", file=sys.stderr)
        if isinstance(exc, IntegrityError):
            print("NOT VERIFIED", file=sys.stderr)
            return EXIT_UNVERIFIED
        return EXIT_UNREACHABLE if isinstance(exc, Unavailable) else 1
    return 0


def _log(args: argparse.Namespace) -> None:
    key = load_vkey(args.vkey)
    witnesses = [CosignatureVerifier.from_vkey(w) for w in args.witness]
    trusted = None if args.from_checkpoint is None else read_note(args.from_checkpoint)
    target = None
    if getattr(args, "to_checkpoint", None) is not None:
        target = read_note(args.to_checkpoint)
    source = LogReader(args.url) if args.command == "log" else static_log(args.source)
    result = audit_log(
        source,
        key,
        witnesses=witnesses,
        quorum=args.quorum,
        trusted=trusted,
        target=target,
    )
    if args.save_checkpoint is not None:
        _write(args.save_checkpoint, result.newest)
    print(
        f"verified {result.entries} entries and {result.checkpoints} checkpoints of "
        f"{key.name}, up to size {result.size} of the {result.held} entries the log held: "
        "every root recomputed, every signature checked against the given key"
    )
    if result.cosigned_size is not None:
        print(
            f"cosigned checkpoint at size {result.cosigned_size}: {len(result.witnesses)} "
            f"trusted witnesses cosigned it, {result.quorum} required "
            f"({', '.join(result.witnesses)})"
        )
        return
    others = _other_signers(result.newest, key)
    if others:
        print(
            f"the checkpoint also carries {len(others)} signature(s) by other keys "
            f"({', '.join(others)}), not checked: give --witness VKEY for each witness you "
            "trust (and --quorum N) to check them"
        )


def _other_signers(note: str, key: NoteVerifier) -> list[str]:
    """The names on a verified note's signature lines that are not *key*'s."""
    _, lines = split_signed_note(note, MAX_SIGNATURES)
    return [name for _, name, key_id, _ in lines if (name, key_id) != (key.name, key.key_id)]


def _prove(args: argparse.Namespace) -> None:
    key = load_vkey(args.vkey)
    reader = LogReader(args.url)
    note = reader.checkpoint()
    entry = reader.entry(args.index)
    size = verify_checkpoint(note, key).size
    proof = reader.inclusion_proof(args.index, size)
    checked = prove_entry(note, entry, args.index, proof, key)
    print(
        json.dumps(
            {
                "index": checked.index,
                "size": checked.checkpoint.size,
                "entry": json.loads(checked.entry),
                "proof": [base64.b64encode(h).decode() for h in checked.proof],
                "verified": True,
            },
            indent=2,
        )
    )


def _verify_proof(args: argparse.Namespace) -> None:
    policy = trust_policy(args.witness, args.quorum, args.policy)
    key = None if args.vkey is None else load_vkey(args.vkey)
    checked = check_proof_file(args.file, policy, log_vkey=key, entry=args.entry)
    print(json.dumps(proof_report(checked), indent=2))


def _receipt(args: argparse.Namespace) -> None:
    key = load_vkey(args.vkey)
    try:
        document = json.loads(_read_bytes(args.file, "receipt"))
    except (ValueError, RecursionError):
        raise BadRequest(f"{args.file} is not JSON") from None
    entries = [_read_bytes(path, "entry") for path in args.entry]
    found = check_receipts(document, key, entries)
    print(
        json.dumps(
            {
                "log": key.name,
                "receipts": [
                    {
                        "field": name,
                        "index": r.index,
                        "time_ms": r.time_ms,
                        "leaf_hash": r.leaf_hash.hex(),
                        "batch": {"start": r.batch_start, "size": r.batch_size}
                        if r.batch_size
                        else None,
                    }
                    for name, r in found
                ],
                "entries_covered": len(entries),
                "verified": True,
            },
            indent=2,
        )
    )


_MAX_FILE_BYTES = 1 << 24


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise BadRequest(f"cannot read the {what} file {path}: {exc.strerror}") from None
    if len(data) > _MAX_FILE_BYTES:
        raise BadRequest(f"the {what} file {path} is over {_MAX_FILE_BYTES} bytes")
    return data


def _write(path: Path, note: str) -> None:
    try:
        path.write_text(note, encoding="utf-8")
    except OSError as exc:
        raise BadRequest(f"cannot write {path}: {exc.strerror}") from None


if __name__ == "__main__":
    sys.exit(main())
