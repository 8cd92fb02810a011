"""``sovra witness``: a small C2SP witness that cosigns a gateway's checkpoints.

A witness directory holds ``witness.key`` (0600), ``witness.json`` (its name and the
vkeys of the logs it witnesses) and ``heads.json`` (the last checkpoint cosigned per
log). ``sovra witness cosign`` pulls the latest checkpoint and a consistency proof from
the held one, and cosigns only if the log grew consistently; with ``--submit`` it gives
the cosigned checkpoint back to the gateway, which publishes the cosignature.
``sovra witness serve`` answers C2SP tlog-witness requests instead: logs (sovra's with
``[witnesses] policy`` in ``sovra.toml``, or any other) post their checkpoints to it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from sovra._cli.common import DEFAULT_URL, Url, connect, err, out
from sovra.errors import BadRequest, ConfigError

__all__ = ["witness_app"]

witness_app = typer.Typer(
    help="Witness a log: cosign checkpoints that extend the last one seen.",
    no_args_is_help=True,
)

WitnessDir = Annotated[Path, typer.Argument(help="the witness directory")]


def _config(directory: Path) -> dict[str, Any]:
    path = directory / "witness.json"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{path}: {exc.strerror} (create it with `sovra witness init {directory}`)"
        ) from None
    try:
        config = json.loads(data)
    except ValueError as exc:
        raise ConfigError(f"{path} is not JSON: {exc}") from None
    if (
        not isinstance(config, dict)
        or not isinstance(config.get("name"), str)
        or not isinstance(config.get("logs"), list)
    ):
        raise ConfigError(f"{path} needs a name and a list of log vkeys")
    return config


def _open(directory: Path) -> Any:
    from sovra.keys import load_ed25519
    from sovra.ledger import CosignatureSigner, Witness

    config = _config(directory)
    signer = CosignatureSigner(config["name"], load_ed25519(directory / "witness.key"))
    return Witness(signer, config["logs"], directory / "heads.json")


@witness_app.command("init")
def witness_init(
    directory: WitnessDir,
    name: Annotated[str, typer.Option(help="the witness's key name, e.g. witness.example/w1")],
    log: Annotated[list[str], typer.Option(help="vkey of a log to witness (repeatable)")],
) -> None:
    """Create a witness: a key, the logs it witnesses, an empty set of heads."""
    from sovra.keys import generate_ed25519
    from sovra.ledger import CosignatureSigner, NoteVerifier

    origins = [NoteVerifier.from_vkey(v).name for v in log]
    if len(set(origins)) != len(origins):
        raise BadRequest("two log keys name the same origin")
    if (directory / "witness.json").exists():
        raise BadRequest(f"{directory} already holds a witness")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {directory}: {exc.strerror}") from None
    key = generate_ed25519(directory / "witness.key")
    signer = CosignatureSigner(name, key)
    (directory / "witness.json").write_text(
        json.dumps({"name": name, "logs": list(log)}, indent=1) + "\n", encoding="utf-8"
    )
    out.print(signer.vkey, highlight=False)


@witness_app.command("vkey")
def witness_vkey(directory: WitnessDir) -> None:
    """Print the witness's cosigning key (a vkey of type 0x04)."""
    out.print(_open(directory).vkey, highlight=False)


@witness_app.command("cosign")
def witness_cosign(
    directory: WitnessDir,
    url: Url = DEFAULT_URL,
    submit: Annotated[
        bool, typer.Option(help="give the cosigned checkpoint back to the gateway to publish")
    ] = False,
) -> None:
    """Fetch the log's latest checkpoint, check it extends the held one, and cosign it.

    Prints the checkpoint with the cosignature added. A rollback or a fork is refused
    (exit 3) and the held checkpoint is kept. With ``--submit`` the cosigned checkpoint
    is posted to the gateway's ``/v1/log/cosignatures``; a refusal there exits 1 and
    the witness keeps its new head (cosigning the same checkpoint again is harmless).
    """
    witness = _open(directory)
    with connect(url) as client:
        note = client.checkpoint()
        cp = witness.verify(note)
        held = witness.head(cp.origin)
        held_size = 0 if held is None else held[0]
        proof = client.consistency_proof(held_size, cp.size) if 0 < held_size < cp.size else []
        cosigned = witness.add_checkpoint(note, held_size, proof)
        # Byte for byte: a restyled note would no longer verify.
        out.out(cosigned, end="", highlight=False)
        if submit:
            result = client.submit_cosignatures(cosigned)
            err.print(
                f"submitted: the gateway holds {result['cosigned_by']} of the "
                f"{result['quorum']} cosignatures it needs for size {result['size']}",
                highlight=False,
            )


@witness_app.command("serve")
def witness_serve(
    directory: WitnessDir,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8455,
    max_body_bytes: Annotated[
        int, typer.Option(help="largest add-checkpoint request accepted (413 above)")
    ] = 256 * 1024,
) -> None:
    """Serve the witness over C2SP tlog-witness (POST /add-checkpoint).

    Logs submit each checkpoint with the size they believe this witness holds and a
    consistency proof from it; the witness cosigns only consistent growth of the logs
    in witness.json and keeps its heads in heads.json. ``GET /<sha256(origin)>/checkpoint``
    serves the last checkpoint it cosigned for a log.
    """
    import uvicorn

    from sovra.server.witness import create_witness_app

    if not 0 < max_body_bytes <= 16 << 20:
        raise BadRequest("--max-body-bytes must be between 1 and 16 MiB")
    witness = _open(directory)
    out.print(
        f"witness {witness.vkey}\nserving C2SP tlog-witness at http://{host}:{port}/add-checkpoint",
        markup=False,
        highlight=False,
    )
    app = create_witness_app(witness, max_body_bytes=max_body_bytes)
    uvicorn.run(app, host=host, port=port, log_level="warning")
