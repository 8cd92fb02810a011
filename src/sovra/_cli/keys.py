"""``sovra keys status|rotate|shred|transport-key``, ``sovra custodian serve|seal|witnesses``.

These commands work on the deployment directory directly, as its custodians do: they read
the KEK files and subject-key stores under ``custodians/``. A gateway serving the same
deployment meanwhile picks up a rotation by itself (it reloads a changed KEK file).
``shred`` runs the gateway's erasure flow, so the shred is logged before the key goes.

``sovra custodian serve --jurisdiction PL`` runs one jurisdiction's custodian as its own
process (:mod:`sovra.server.custodian`), with its KEK file and subject-key store; callers
present the bearer secret in ``custodians/<J>.token`` (created on first start, 0600).
``sovra custodian seal`` seals a KEK file at rest under a passphrase or a key file.
``sovra keys transport-key`` prints custodians' transport keys for clients to pin.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from sovra._cli.common import (
    As,
    DeploymentDir,
    ExitCode,
    JsonOpt,
    need_deployment,
    out,
    print_json,
    print_table,
    progress,
    warn,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from sovra.keys import LocalCustodian
    from sovra.keys.sealing import Unlock
    from sovra.store.pg_timeouts import PgTimeouts

__all__ = ["custodian_app", "keys_app"]

keys_app = typer.Typer(
    help="Custodian keys: versions and counts, rotation, crypto-shredding.",
    no_args_is_help=True,
)

custodian_app = typer.Typer(
    help="Run a jurisdiction's custodian as its own service; seal its keys at rest.",
    no_args_is_help=True,
)

Jurisdiction = Annotated[str, typer.Option("--jurisdiction", "-j", help="jurisdiction code")]


@keys_app.command("status")
def keys_status(
    deployment: DeploymentDir = None,
    as_json: JsonOpt = False,
) -> None:
    """Show each custodian's KEK versions, subject keys per version, and shredded subjects."""
    deployment = need_deployment(deployment)
    from sovra.deployment import Deployment
    from sovra.keys import LocalCustodian
    from sovra.keys.remote import RemoteCustodian

    dep = Deployment.open(deployment)
    try:
        rows = [
            c.status()
            for c in dep.gateway.custodians.values()
            if isinstance(c, LocalCustodian | RemoteCustodian)
        ]
    finally:
        dep.close()
    if as_json:
        print_json([r.to_dict() for r in rows])
        return
    table = Table("jurisdiction", "current", "versions (subject keys)", "subjects", "shredded")
    for r in rows:
        versions = ", ".join(f"v{v}: {n}" for v, n in r.versions.items())
        if r.orphaned:
            versions += " | UNREADABLE " + ", ".join(f"v{v}: {n}" for v, n in r.orphaned.items())
        table.add_row(
            r.jurisdiction, f"v{r.current_kek_version}", versions, str(r.subjects), str(r.shredded)
        )
    print_table(table)


@keys_app.command("rotate")
def keys_rotate(
    jurisdiction: Jurisdiction,
    deployment: DeploymentDir = None,
    batch: Annotated[int, typer.Option(help="subject keys per transaction")] = 256,
    keep_old: Annotated[
        bool, typer.Option("--keep-old", help="keep old KEK versions after the rewrap")
    ] = False,
) -> None:
    """Add a KEK version, rewrap every subject key under it, then destroy unused versions.

    No record is re-encrypted: only subject keys are resealed.
    """
    deployment = need_deployment(deployment)
    from sovra.deployment import Deployment
    from sovra.errors import ConfigError
    from sovra.keys import LocalCustodian
    from sovra.keys.remote import RemoteCustodian
    from sovra.model import check_jurisdiction

    code = check_jurisdiction(jurisdiction)
    dep = Deployment.open(deployment)
    try:
        dep.config.jurisdiction(code)
        custodian = dep.gateway.custodians[code]
        if isinstance(custodian, RemoteCustodian):
            # Its own process rotates, rewraps and destroys unused versions in one call.
            if keep_old:
                raise ConfigError(f"custodian {code} runs as a service, which keeps no old version")
            done = custodian.rotate()
            print_json(
                {
                    "jurisdiction": code,
                    "current_kek_version": done["currentKekVersion"],
                    "rewrapped": done["rewrapped"],
                    "destroyed_versions": done["destroyedVersions"],
                    "status": custodian.status().to_dict(),
                }
            )
            return
        if not isinstance(custodian, LocalCustodian):
            raise typer.BadParameter(f"custodian {code} is not held on this machine")
        version = custodian.rotate()
        before = custodian.status()
        total = sum(n for v, n in before.versions.items() if v < version)
        with progress(f"rewrapping {code} subject keys under v{version}") as bar:
            task = bar.add_task("rewrap", total=total)
            moved = custodian.rewrap(
                batch=batch, progress=lambda done, _total: bar.update(task, completed=done)
            )
        destroyed = [] if keep_old else custodian.destroy_unused()
        after = custodian.status()
    finally:
        dep.close()
    print_json(
        {
            "jurisdiction": code,
            "current_kek_version": version,
            "rewrapped": moved,
            "destroyed_versions": destroyed,
            "status": after.to_dict(),
        }
    )


@keys_app.command("shred")
def keys_shred(
    jurisdiction: Jurisdiction,
    subject: Annotated[str, typer.Option(help="the subject's id, as her jurisdiction names her")],
    as_: As,
    deployment: DeploymentDir = None,
) -> None:
    """Crypto-shred a subject: log the erasure, then destroy her key; her records never open."""
    deployment = need_deployment(deployment)
    from sovra.deployment import Deployment

    dep = Deployment.open(deployment)
    try:
        principal = dep.store.get_principal(as_)
        receipt = dep.governance.shred(principal, jurisdiction=jurisdiction, subject_id=subject)
        commitment = dep.gateway.commitment(jurisdiction, subject)
    finally:
        dep.close()
    print_json({"shredded": commitment, "log_index": receipt.index})


PassphraseEnv = Annotated[
    str | None,
    typer.Option(help="name of the environment variable holding the KEK file's passphrase"),
]
KeyFile = Annotated[Path | None, typer.Option(help="a 32-byte key file sealing the KEK file")]


def _unlock(passphrase_env: str | None, key_file: Path | None) -> Unlock | None:
    import os

    from sovra.errors import ConfigError
    from sovra.keys.sealing import Unlock

    if passphrase_env is not None and key_file is not None:
        raise ConfigError("give --passphrase-env or --key-file, not both")
    if key_file is not None:
        return Unlock.from_key_file(key_file)
    if passphrase_env is not None:
        value = os.environ.get(passphrase_env)
        if value is None:
            raise ConfigError(f"environment variable {passphrase_env} is not set")
        return Unlock.from_passphrase(value)
    return None


LogVkey = Annotated[
    str | None,
    typer.Option(
        "--log-vkey",
        help="the log's verifier key: a vkey string or a file holding one (`sovra log key` "
        "prints it) [default: DEPLOYMENT/keys/log.vkey]; the custodian needs only this "
        "public key, never the log's signing key",
    ),
]


def _log_public(deployment: Path, log_vkey: str | None) -> Ed25519PublicKey:
    """The log's public key, which the custodian checks receipts with.

    From *log_vkey* (a vkey or a file), else ``keys/log.vkey``; a deployment made before
    that file existed falls back to the public half of ``keys/log.key``, with a warning:
    a custodian's host should not hold the log's private key.

    Raises:
        ConfigError: none of them is there.
        BadRequest: the vkey is malformed, or names another log than ``sovra.toml``.
    """
    from sovra.config import Config
    from sovra.deployment import CONFIG_NAME, LOG_VKEY
    from sovra.errors import BadRequest, ConfigError
    from sovra.keys import load_ed25519
    from sovra_verify.audit import load_vkey

    given = log_vkey if log_vkey is not None else deployment / LOG_VKEY
    if log_vkey is not None or (deployment / LOG_VKEY).exists():
        verifier = load_vkey(str(given))
        config_path = deployment / CONFIG_NAME
        if config_path.exists():
            origin = Config.load(config_path).origin
            if verifier.name != origin:
                raise BadRequest(
                    f"the log verifier key {given} names the log {verifier.name!r}, "
                    f"not this deployment's origin {origin!r}"
                )
        return verifier.public_key
    private = deployment / "keys" / "log.key"
    if not private.exists():
        raise ConfigError(
            f"no log verifier key: give --log-vkey (a vkey or a file; `sovra log key` "
            f"prints it) or put it in {deployment / LOG_VKEY}"
        )
    warn(
        f"reading the log's public key from its signing key {private}; write `sovra log "
        f"key` to {deployment / LOG_VKEY} (or pass --log-vkey) and remove the signing key "
        "from this host"
    )
    return load_ed25519(private).public_key()


def _custodian(
    deployment: Path,
    jurisdiction: str,
    unlock: Unlock | None,
    database: str | None = None,
    log_vkey: str | None = None,
) -> tuple[LocalCustodian, Path]:
    from sovra.custody import custodian_key_path
    from sovra.keys import LocalCustodian
    from sovra.model import check_jurisdiction

    code = check_jurisdiction(jurisdiction)
    log_public = _log_public(deployment, log_vkey)
    path = custodian_key_path(deployment, code)
    suite = key_transport(deployment, code)
    custodian = LocalCustodian.open(
        path,
        code,
        log_public,
        unlock=unlock,
        database=database,
        transport_suite=suite,
        pg_timeouts=pg_timeouts(deployment),
    )
    return custodian, path


def pg_timeouts(deployment: Path) -> PgTimeouts:
    """How long the custodian's PostgreSQL sessions may wait: ``[postgres]`` of the
    deployment's ``sovra.toml``, the defaults where there is none (a custodian on a host of
    its own).

    Raises:
        ConfigError: the configuration does not parse.
    """
    from sovra.config import Config
    from sovra.deployment import CONFIG_NAME
    from sovra.store.pg_timeouts import PgTimeouts

    path = deployment / CONFIG_NAME
    return Config.load(path).postgres if path.exists() else PgTimeouts()


def key_transport(deployment: Path, code: str) -> str:
    """The HPKE suite of *code*'s custodian: ``key_transport`` of its jurisdiction in the
    deployment's ``sovra.toml``, X25519 where there is none (a custodian on a host of its
    own, without the deployment's configuration).

    Raises:
        ConfigError: the configuration does not parse.
    """
    from sovra.config import Config
    from sovra.deployment import CONFIG_NAME
    from sovra.keys.transport import DEFAULT_SUITE

    path = deployment / CONFIG_NAME
    if not path.exists():
        return DEFAULT_SUITE
    settings = Config.load(path).jurisdictions.get(code)
    return DEFAULT_SUITE if settings is None else settings.key_transport


@keys_app.command("transport-key")
def keys_transport_key(
    jurisdiction: Annotated[
        list[str] | None,
        typer.Option(
            "--jurisdiction",
            "-j",
            help="jurisdiction code (repeatable) [default: every custodian key file here]",
        ),
    ] = None,
    deployment: DeploymentDir = None,
    passphrase_env: PassphraseEnv = None,
    key_file: KeyFile = None,
    as_json: JsonOpt = False,
) -> None:
    """Print custodians' transport keys as a pins file (JSON, with --json or without) for
    client-side sealing.

    Run it where the custodians' KEK files are, and give the output to clients by a way
    that does not pass through the gateway; `sovra put --client-side --pins FILE` then
    refuses any other key. A KEK rotation changes the key: pin the new one.
    """
    deployment = need_deployment(deployment)
    from sovra.errors import ConfigError
    from sovra.keys.transport import TransportPins
    from sovra.model import check_jurisdiction

    del as_json  # a pins file is JSON either way
    unlock = _unlock(passphrase_env, key_file)
    codes = [check_jurisdiction(j) for j in jurisdiction or []]
    if not codes:
        folder = deployment / "custodians"
        found = [*folder.glob("??.key"), *folder.glob("??/??.key")]
        codes = sorted({p.stem for p in found if p.stem.isascii() and p.stem.isupper()})
    if not codes:
        raise ConfigError(f"no custodian key file in {deployment / 'custodians'}")
    keys: dict[tuple[str, int], bytes] = {}
    for code in dict.fromkeys(codes):
        custodian, _ = _custodian(deployment, code, unlock)
        try:
            version, key = custodian.transport_key()
        finally:
            custodian.close()
        keys[(code, version)] = key
    out.print(TransportPins(keys).to_json().decode(), end="", markup=False, highlight=False)


@custodian_app.command("serve")
def custodian_serve(
    jurisdiction: Jurisdiction,
    deployment: DeploymentDir = None,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to bind")] = 8760,
    rate: Annotated[float, typer.Option(help="requests per second per caller")] = 2000.0,
    passphrase_env: PassphraseEnv = None,
    key_file: KeyFile = None,
    listen_fd: Annotated[
        int | None,
        typer.Option(
            hidden=True,
            help="serve on this inherited socket, with the secret and log key from stdin "
            "(how `sovra serve` starts its custodians)",
        ),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(
            help="a postgresql:// URL of the custodian's own database for its subject keys "
            "[default: the one custodians/<J>/<J>.database names, else the SQLite store]; "
            "use a role and database of the custodian's alone, which the gateway cannot read",
        ),
    ] = None,
    log_vkey: LogVkey = None,
) -> None:
    """Serve one jurisdiction's custodian over HTTP (XKS-shaped API under /kms/xks/v1)."""
    deployment = need_deployment(deployment)
    import os

    import uvicorn

    from sovra.errors import ConfigError
    from sovra.keys import read_secret, write_secret
    from sovra.server.custodian import create_custodian_app

    if listen_fd is not None:
        _serve_handed_over(deployment, jurisdiction, listen_fd, _unlock(passphrase_env, key_file))
        return
    custodian, path = _custodian(
        deployment, jurisdiction, _unlock(passphrase_env, key_file), database, log_vkey
    )
    token_path = path.with_suffix(".token")
    try:
        token = read_secret(token_path, expected_len=32)
    except ConfigError:
        if token_path.exists():
            raise
        write_secret(token_path, os.urandom(32))
        token = read_secret(token_path, expected_len=32)
    out.print(
        f"custodian {custodian.jurisdiction} serving at http://{host}:{port}/kms/xks/v1 "
        f"(bearer secret in {token_path})",
        markup=False,
        highlight=False,
    )
    try:
        app = create_custodian_app(custodian, token=token, rate_per_s=rate, burst=int(rate * 2))
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        custodian.close()


def _serve_handed_over(
    deployment: Path, jurisdiction: str, listen_fd: int, unlock: Unlock | None
) -> None:
    """Serve as a child of :class:`sovra.custody.CustodianProcesses`.

    As root, the process becomes the owner of the custodian's folder before it opens any
    key; it reports ``ready`` or why not on standard output, and stops when its standard
    input ends (its parent is gone).
    """
    import os
    import signal
    import socket
    import sys
    import threading

    from sovra import custody
    from sovra.errors import SovraError
    from sovra.keys import LocalCustodian
    from sovra.model import check_jurisdiction
    from sovra.server.custodian import CustodianCalls, create_custodian_app
    from sovra.server.custodian_socket import serve_frames

    try:
        code = check_jurisdiction(jurisdiction)
        suite = key_transport(deployment, code)  # read while the configuration is readable
        timeouts = pg_timeouts(deployment)
        handover = custody.receive_handover(listen_fd, sys.stdin.buffer)
        folder = deployment / "custodians" / code
        if os.geteuid() == 0 and custody.separate(deployment, code):
            uid, gid = custody.owner_of(folder)
            if uid != 0:
                custody.drop_privileges(uid, gid)
        key_path = custody.custodian_key_path(deployment, code)
        custody.require_custodian_key(key_path, code)
        custodian = LocalCustodian.open(
            key_path,
            code,
            handover.log_key,
            unlock=unlock,
            transport_suite=suite,
            pg_timeouts=timeouts,
        )
        local = handover.listener.family == socket.AF_UNIX
        calls = CustodianCalls(custodian)
        server = None if local else _uvicorn(create_custodian_app(custodian, token=handover.token))
    except SovraError as exc:
        custody.report_refusal(sys.stdout, exc.diagnostics())
        raise typer.Exit(ExitCode.ERROR) from None
    stop = threading.Event()

    def exit_with_parent() -> None:
        sys.stdin.buffer.read()
        stop.set()  # the frames' server returns within a second; uvicorn on a signal:
        if not local:
            os.kill(os.getpid(), signal.SIGTERM)

    custody.report_ready(sys.stdout)
    # Nothing reads standard output from here on: what uvicorn or a library prints goes
    # to standard error, which the parent shares, instead of filling a pipe.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    threading.Thread(target=exit_with_parent, daemon=True).start()
    try:
        if server is None:
            # The gateway's user, and root (which reads every file on one machine anyway).
            peers = frozenset({handover.gateway_uid, 0})
            serve_frames(handover.listener, calls, handover.token, peers=peers, stop=stop)
        else:
            server.run(sockets=[handover.listener])
    finally:
        custodian.close()


def _uvicorn(app: Any) -> Any:
    """A uvicorn server of *app*, to run on a socket handed over."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    config.load()
    return uvicorn.Server(config)


@custodian_app.command("seal")
def custodian_seal(
    jurisdiction: Jurisdiction,
    deployment: DeploymentDir = None,
    passphrase_env: PassphraseEnv = None,
    key_file: KeyFile = None,
) -> None:
    """Seal a custodian's KEK file at rest; from then on it opens only with that secret."""
    deployment = need_deployment(deployment)
    from sovra.errors import ConfigError

    unlock = _unlock(passphrase_env, key_file)
    if unlock is None:
        raise ConfigError("give --passphrase-env VAR or --key-file FILE to seal with")
    custodian, path = _custodian(deployment, jurisdiction, None)
    try:
        custodian.seal_at_rest(unlock)
    finally:
        custodian.close()
    print_json({"sealed": str(path)})


# Last: the witness commands take this module's options (and it is loaded with the group).
from sovra._cli.custodian_witnesses import witnesses_app  # noqa: E402

custodian_app.add_typer(witnesses_app, name="witnesses")
