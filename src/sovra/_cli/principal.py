"""``sovra principal add|list|revoke|rotate-key``: who may call the gateway, with which key.

A principal is an id, a home jurisdiction, a role and an Ed25519 public key, kept in the
deployment's metadata store (SQLite or PostgreSQL), where every worker and replica reads
it: a revocation or a new key is refused or required from the next request on, in every
process, because the token check reads the principal again in the transaction that
spends the token's nonce.

``add`` and ``rotate-key`` either make the key pair, writing the private key (its raw
32-byte seed, as ``sovra init`` does) to a new file of mode 0600, or take the public key
of a pair the caller keeps (``--public-key FILE``: PEM, or the raw 32 bytes, or their
base64), so the private key never reaches the deployment.

Every change is a ``principal`` entry in the transparency log (action ``add``, ``revoke``
or ``rotate-key``; the principal's id, jurisdiction and role; the SHA-256 of its public
key, and of the key it replaces), appended after the request is checked and before the
store changes: a principal is never usable, or unusable, before the log says so, and a
refused request (an id taken, an unknown one, a key file that holds no Ed25519 public
key, the same key again) changes neither the store nor the log.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from sovra._cli.common import DeploymentDir, JsonOpt, need_deployment, print_json, print_table
from sovra.errors import BadRequest, ConfigError

if TYPE_CHECKING:
    from sovra.config import Config
    from sovra.model import Principal

__all__ = ["principal_app"]

principal_app = typer.Typer(
    help="Principals: add one with a new or given key, list them, revoke one, rotate a key.",
    no_args_is_help=True,
)

PublicKeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--public-key",
        help="the principal's Ed25519 public key (PEM, raw 32 bytes or their base64); "
        "its private key stays with the caller",
    ),
]
KeyOutOpt = Annotated[
    Path | None,
    typer.Option(
        "--key-out",
        help="where to write the new private key (0600) [default: DEPLOYMENT/principals/ID.key]",
    ),
]
_ROLES = ("service", "authority", "analyst", "operator", "auditor")


@principal_app.command("add")
def add(
    principal_id: Annotated[str, typer.Argument(metavar="ID", help="the new principal's id")],
    jurisdiction: Annotated[
        str, typer.Option("--jurisdiction", "-j", help="its home jurisdiction")
    ],
    role: Annotated[str, typer.Option(help=f"one of {', '.join(_ROLES)}")],
    public_key: PublicKeyOpt = None,
    key_out: KeyOutOpt = None,
    deployment: DeploymentDir = None,
) -> None:
    """Register a principal; refuses an id already registered."""
    deployment = need_deployment(deployment)
    from sovra.deployment import open_store
    from sovra.errors import NotFound
    from sovra.model import Principal, Role, check_id

    check_id(principal_id, "principal id")
    if role not in _ROLES:
        raise BadRequest(
            f"--role is one of {', '.join(_ROLES)}, not {role!r}"
            + (" (subjects sign in through their home authority)" if role == "subject" else "")
        )
    if public_key is not None and key_out is not None:
        raise BadRequest("--key-out is for a key made here; with --public-key none is made")
    config, store = open_store(deployment)
    try:
        code = config.jurisdiction(jurisdiction.upper()).code
        try:
            store.get_principal(principal_id)
        except NotFound:
            pass
        else:
            raise BadRequest(
                f"principal {principal_id} is already registered; "
                "`sovra principal rotate-key` gives it a new key"
            )
        raw, written = _new_key(deployment, principal_id, public_key, key_out, replace=False)
        principal = Principal(principal_id, code, Role(role), raw)
        index = _log_change(deployment, config, "add", principal)
        store.put_principal(principal)
    finally:
        store.close()
    shown = _shown(principal) | {"log_index": index}
    print_json(shown | ({"private_key_file": str(written)} if written else {}))


@principal_app.command("list")
def list_(
    deployment: DeploymentDir = None,
    as_json: JsonOpt = False,
) -> None:
    """Every registered principal: id, jurisdiction, role, public key."""
    deployment = need_deployment(deployment)
    principals = _each(deployment)
    if as_json:
        print_json([_shown(p) for p in principals])
        return
    table = Table("id", "jurisdiction", "role", "public key (SHA-256, first 16)")
    for p in principals:
        table.add_row(p.id, p.jurisdiction, str(p.role), _fingerprint(p.public_key))
    print_table(table, markup=False)


@principal_app.command("revoke")
def revoke(
    principal_id: Annotated[str, typer.Argument(metavar="ID", help="the principal to remove")],
    deployment: DeploymentDir = None,
) -> None:
    """Remove a principal: its next request, to any worker, is refused.

    Its private key file under DEPLOYMENT/principals/, if any, is deleted too.
    """
    deployment = need_deployment(deployment)
    from sovra.deployment import open_store
    from sovra.model import check_id

    check_id(principal_id, "principal id")
    config, store = open_store(deployment)
    try:
        current = store.get_principal(principal_id)
        index = _log_change(deployment, config, "revoke", current)
        store.remove_principal(principal_id)
    finally:
        store.close()
    kept = deployment / "principals" / f"{principal_id}.key"
    kept.unlink(missing_ok=True)
    print_json({"revoked": principal_id, "log_index": index})


@principal_app.command("rotate-key")
def rotate_key(
    principal_id: Annotated[str, typer.Argument(metavar="ID", help="the principal")],
    public_key: PublicKeyOpt = None,
    key_out: KeyOutOpt = None,
    deployment: DeploymentDir = None,
) -> None:
    """Give a principal a new key: tokens signed with the old one are refused from now on.

    Without --public-key or --key-out the new private key replaces
    DEPLOYMENT/principals/ID.key.
    """
    deployment = need_deployment(deployment)
    from dataclasses import replace

    from sovra.deployment import open_store
    from sovra.model import check_id

    check_id(principal_id, "principal id")
    if public_key is not None and key_out is not None:
        raise BadRequest("--key-out is for a key made here; with --public-key none is made")
    config, store = open_store(deployment)
    try:
        current = store.get_principal(principal_id)
        if public_key is not None and _read_public(public_key) == current.public_key:
            raise BadRequest(f"that is {principal_id}'s current key already")
        raw, written = _new_key(deployment, principal_id, public_key, key_out, replace=True)
        rotated = replace(current, public_key=raw)
        index = _log_change(deployment, config, "rotate-key", rotated, current.public_key)
        store.put_principal(rotated)
    finally:
        store.close()
    shown = _shown(rotated) | {"log_index": index}
    print_json(shown | ({"private_key_file": str(written)} if written else {}))


def _log_change(
    deployment: Path,
    config: Config,
    action: str,
    principal: Principal,
    previous_key: bytes | None = None,
) -> int:
    """Append the ``principal`` entry of *action* on *principal*; its log index.

    Raises:
        ConfigError: the log cannot be opened or written (nothing changed).
    """
    from sovra.deployment import open_log, principal_entry

    log = open_log(deployment, config)
    try:
        return log.append(*principal_entry(action, principal, previous_key)).index
    finally:
        log.close()


def _each(deployment: Path) -> list[Principal]:
    from sovra.deployment import open_store

    _, store = open_store(deployment)
    try:
        return store.list_principals()
    finally:
        store.close()


def _new_key(
    deployment: Path,
    principal_id: str,
    public_key: Path | None,
    key_out: Path | None,
    *,
    replace: bool,
) -> tuple[bytes, Path | None]:
    """The new public key's raw bytes, and the file its private key went to (None when
    the caller gave the public key).

    The default file under ``principals/`` is replaced when *replace* (a rotation: the
    old key is worthless from the commit on); a ``--key-out`` file never is.

    Raises:
        BadRequest: the public key file does not hold one Ed25519 public key.
        ConfigError: the file cannot be read, or the private key's cannot be written.
    """
    from sovra.keys import generate_ed25519, public_bytes

    if public_key is not None:
        return _read_public(public_key), None
    path = key_out or deployment / "principals" / f"{principal_id}.key"
    key = generate_ed25519(path, overwrite=replace and key_out is None)
    return public_bytes(key), path


def _read_public(path: Path) -> bytes:
    """The raw 32-byte Ed25519 public key in *path*.

    Raises:
        BadRequest: the file holds something else.
        ConfigError: the file cannot be read.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        data = path.read_bytes()[:4097]
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) == 32:
        return data
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            key = load_pem_public_key(data)
        except ValueError:
            raise BadRequest(f"{path} is not a readable PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise BadRequest(f"{path} holds a {type(key).__name__}, not an Ed25519 public key")
        return key.public_bytes_raw()
    try:
        raw = base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise BadRequest(
            f"{path} holds no Ed25519 public key: give PEM (`openssl pkey -pubout`), "
            "the raw 32 bytes, or their base64"
        )
    return raw


def _fingerprint(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()[:16]


def _shown(p: Principal) -> dict[str, str]:
    return {
        "id": p.id,
        "jurisdiction": p.jurisdiction,
        "role": str(p.role),
        "public_key": base64.b64encode(p.public_key).decode(),
        "fingerprint": _fingerprint(p.public_key),
    }
