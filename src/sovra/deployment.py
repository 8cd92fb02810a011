"""A deployment on disk: create one (``sovra init``) and wire it into a running gateway.

Layout of a deployment directory (``sovra init``; :mod:`sovra.custody` says who owns what)::

    sovra.toml                 the configuration (readable, editable)
    sovra.db                   SQLite (WAL): records' metadata, grants, nonces, the log
    guard.db                   SQLite (WAL): the bulk guard's journal (usage within the
                               window, alerts, the review queue), shared by the workers
                               (``sovra init --database postgresql://...`` keeps both in
                               that database instead, shared by every replica)
    blobs/<region>/...         ciphertext only, one folder per storage region
    keys/log.key               the log's Ed25519 signing key (0600)
    keys/log.vkey              its verifier key (C2SP vkey, public): all a custodian
                               service needs of it (``sovra custodian serve``)
    keys/commitment.secret     HMAC key for subject commitments (0600)
    custodians/<J>/<J>.key     each jurisdiction custodian's key-encryption keys (0600), in a
                               folder of its own: the custodian runs as its own process
    custodians/<J>/<J>.subjects.db  its subject keys, each sealed under a KEK version
    custodians/<J>.url         optional: the custodian runs as a service at this URL
                               (``sovra custodian serve``); <J>.token is its bearer secret
    authorities/<J>.pub        each jurisdiction authority's public key
    authorities/<J>/<J>.key    its private key: held by that authority in production;
                               written here so a single-machine deployment is complete
    principals/<id>.key        private keys of the principals ``init`` registers

``sovra init --custodians in-process`` writes ``custodians/<J>.key`` and
``authorities/<J>.key`` beside the gateway instead, and the gateway opens them itself.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from sovra import check, custody, targets
from sovra._regions import open_blob_store
from sovra._writer_lock import WRITER_SUFFIX
from sovra.auth import Authenticator
from sovra.check import CheckReport
from sovra.config import (
    DEFAULT_JURISDICTIONS,
    Config,
    RegionConfig,
    TilesConfig,
    render_default_config,
)
from sovra.errors import ConfigError
from sovra.gateway import Gateway
from sovra.governance import Governance
from sovra.keys import (
    Custodian,
    LocalCustodian,
    generate_ed25519,
    load_ed25519,
    public_bytes,
    read_secret,
    write_secret,
)
from sovra.ledger import LogStorage, NoteSigner, SQLiteLogStorage, TransparencyLog
from sovra.ledger.cosigning import CheckpointCosignatures, cosignature_store
from sovra.ledger.witnessing import Witnessing, load_policy, open_witnessing
from sovra.model import LogEntry, Principal, Role, check_id, check_jurisdiction
from sovra.policy import BulkGuard, BulkLimits, DecisionPoint, default_pack
from sovra.release_proofs import ReleaseProofs
from sovra.store import (
    BlobStoreBase,
    FilesystemBlobStore,
    MetadataStore,
    PgTimeouts,
    RecordStore,
    SQLiteMetadataStore,
    is_postgres_url,
    open_guard_journal,
    open_metadata_store,
    seal_key,
)

if TYPE_CHECKING:  # imported where it is used: only a deployment with [auth.oidc] needs it
    from sovra.oidc import BearerAuthenticator

__all__ = [
    "CustodianMode",
    "Deployment",
    "become_gateway",
    "default_principals",
    "log_cosignatures",
    "open_log",
    "open_store",
    "open_witnessed_log",
    "principal_entry",
    "run_as_gateway",
]

CONFIG_NAME = "sovra.toml"
# The log's verifier key (public): what a custodian or an auditor needs of the log's key.
LOG_VKEY = "keys/log.vkey"
GUARD_JOURNAL = "guard.db"
CustodianMode = Literal["separate", "in-process"]
_T = TypeVar("_T")
# Rows looked at when a region's small-blob file is empty at start.
_SAMPLE_ROWS = 1024


def default_principals(jurisdictions: Sequence[str]) -> list[tuple[str, str, Role]]:
    """(id, jurisdiction, role) of the principals ``sovra init`` registers."""
    out = []
    for j in jurisdictions:
        low = j.lower()
        out += [(f"svc-{low}", j, Role.SERVICE), (f"authority-{low}", j, Role.AUTHORITY)]
    home = jurisdictions[0]
    out += [("operator", home, Role.OPERATOR), ("auditor", home, Role.AUDITOR)]
    return out


@dataclass
class Deployment:
    """An opened deployment: its configuration, its two flows, its governance operations
    and its authenticator."""

    root: Path
    config: Config
    gateway: Gateway
    governance: Governance
    authenticator: Authenticator
    store: MetadataStore
    # Witness cosignatures of the log's checkpoints ([witnesses] in sovra.toml).
    cosignatures: CheckpointCosignatures | None = None
    # What the start-up check settled: rows left pending by a crash (sovra.check.recover).
    recovery: CheckReport | None = None
    # The custodian processes open() started for this deployment (stopped by close()).
    processes: custody.CustodianProcesses | None = None
    # Bearer JWTs from the [auth.oidc] issuer, when one is configured.
    bearer: BearerAuthenticator | None = None
    # Synchronous witnessing of each batch's checkpoint ([witnesses] policy), if any.
    witnessing: Witnessing | None = None

    # -- creating ------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        root: Path,
        *,
        jurisdictions: Sequence[str] = tuple(DEFAULT_JURISDICTIONS),
        origin: str | None = None,
        custodians: CustodianMode = "separate",
        database: str | None = None,
        regions: Sequence[RegionConfig] = (),
        tiles: TilesConfig | None = None,
    ) -> list[str]:
        """Create a new deployment in *root* (which must not hold one already).

        With a PostgreSQL *database* URL the metadata, principals, grants, nonces, the
        log and the bulk guard's journal live in that database (which must hold no
        deployment yet) and every replica over it serves the same deployment; by default
        they are SQLite files in *root*. Each of *regions* (``[regions.NAME]`` settings,
        :func:`sovra.targets.parse_blobs`) keeps its blobs in its bucket, which must be
        reachable and hold no blob yet; the other regions are folders in *root*. With
        *tiles* (:func:`sovra.targets.parse_tiles`) the log is published there as static
        tiles (``[log.tiles]``); a bucket must be reachable, and neither it nor a folder
        may hold a checkpoint yet.

        With *custodians* ``"separate"`` (the default) each custodian runs as its own
        process and keeps its keys in a folder of its own (:mod:`sovra.custody`); run as
        root, each custodian and authority gets a system user owning its folder, and the
        gateway one owning the data. ``"in-process"`` keeps every key file beside the
        gateway, opened in its process: for tests and embedding.

        Returns:
            Notes for the person running it (why the holders share one user, if they do).

        Raises:
            ConfigError: *root*, *database*, a bucket or the tile place already holds a
                deployment, *database* is not a PostgreSQL URL, a region is not one a
                jurisdiction lists or its bucket cannot be used, or a system user cannot
                be made.
            Unavailable: the PostgreSQL server or an S3 endpoint cannot be reached.
            BadRequest: a jurisdiction code is malformed.
        """
        for j in jurisdictions:
            check_jurisdiction(j)
        if database is not None:
            _require_empty_database(database)
        if not jurisdictions:
            raise ConfigError("a deployment needs at least one jurisdiction")
        if custodians not in ("separate", "in-process"):
            raise ConfigError(f"custodians must be 'separate' or 'in-process', not {custodians!r}")
        if (root / CONFIG_NAME).exists():
            raise ConfigError(f"{root} already holds a deployment ({CONFIG_NAME} exists)")
        origin = origin or f"sovra.local/{os.urandom(4).hex()}"
        text = _new_config(root, origin, list(jurisdictions), database, regions, tiles=tiles)
        own = custodians == "separate"
        users = _make_folders(root, jurisdictions, separate=own)
        notes = []
        if own and os.geteuid() == 0 and not users:
            notes.append(
                f"the custodians run as separate processes of root: a system user cannot "
                f"walk down to {root} (a folder above it is not o+x), so no user of their "
                "own was made. Put the deployment under a folder others may enter (e.g. "
                "/srv) for a user per custodian and authority"
            )
        log_key = generate_ed25519(root / "keys" / "log.key")
        (root / LOG_VKEY).write_text(NoteSigner(origin, log_key).vkey + "\n")
        write_secret(root / "keys" / "commitment.secret", os.urandom(32))
        for j in jurisdictions:
            key_path = custody.custodian_key_path(root, j)
            LocalCustodian.create(key_path, j, log_key.public_key()).close()  # its own opens it
            authority = generate_ed25519(custody.authority_key_path(root, j))
            (root / "authorities" / f"{j}.pub").write_text(public_bytes(authority).hex() + "\n")
        (root / CONFIG_NAME).write_text(text)
        config = Config.load(root / CONFIG_NAME)
        if database is not None and regions:
            folders = [
                r
                for j in config.jurisdictions.values()
                for r in j.regions
                if not config.region(r).is_s3
            ]
            if folders:
                notes.append(
                    f"region(s) {', '.join(dict.fromkeys(folders))} keep their blobs in "
                    f"{root / config.blobs}: every replica must reach that folder (or give "
                    "each its bucket with --blobs)"
                )
        _register_principals(root, config, list(jurisdictions))
        if users:
            _give_to_users(root, config, jurisdictions)
        return notes

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        root: Path,
        *,
        clock: Callable[[], float] = time.time,
        recover: bool = True,
        processes: custody.CustodianProcesses | None = None,
    ) -> Deployment:
        """Open the deployment in *root* and wire every stage into a gateway.

        With *recover* (the default), rows a crash left without their log index are
        completed from the log or quarantined before anything is served
        (:func:`sovra.check.recover`); ``sovra check`` opens without, to report them.
        Custodians that run as their own processes are reached through *processes* when
        given (``sovra serve`` starts them before it drops to the gateway's user), else
        started here and stopped by :meth:`close`.

        Raises:
            ConfigError: missing or inconsistent files, with the path and the fix.
        """
        config = Config.load(root / CONFIG_NAME)
        if os.geteuid() == 0:
            custody.check_custody_owners(root, config.jurisdictions)
        log_key = load_ed25519(root / "keys" / "log.key")
        owned = None
        if processes is None:
            codes = [j for j in config.jurisdictions if _needs_process(root, j)]
            if codes:
                owned = processes = custody.CustodianProcesses(root, codes, log_key.public_key())
        try:
            dep = cls._wire(
                root, config, log_key, clock=clock, recover=recover, processes=processes
            )
        except BaseException:
            if owned is not None:
                owned.close()
            raise
        dep.processes = owned
        return dep

    @classmethod
    def _wire(
        cls,
        root: Path,
        config: Config,
        log_key: Ed25519PrivateKey,
        *,
        clock: Callable[[], float],
        recover: bool,
        processes: custody.CustodianProcesses | None,
    ) -> Deployment:
        store = open_metadata_store(_database_url(root, config), timeouts=config.postgres)
        log_storage = _open_log_storage(root, config)
        if isinstance(store, SQLiteMetadataStore) and isinstance(log_storage, SQLiteLogStorage):
            # One file: an ingest entry's append makes its row visible, in one transaction.
            log_storage.mark_rows_with(SQLiteMetadataStore.MARK_LOGGED)
        log = TransparencyLog(
            log_storage,
            NoteSigner(config.origin, log_key),
            config.origin,
            clock=lambda: int(clock() * 1000),
            publish_after_batch=config.log_publish_after_batch,
        )
        endpoints = {} if processes is None else processes.endpoints
        custodians: dict[str, Custodian] = {}
        blobs: dict[str, BlobStoreBase] = {}
        try:
            for j in config.jurisdictions:
                custodians[j] = _open_custodian(
                    root,
                    j,
                    log_key.public_key(),
                    clock,
                    endpoints.get(j),
                    key_transport=config.jurisdictions[j].key_transport,
                    pg_timeouts=config.postgres,
                )
            _require_subject_keys(store, custodians)
            for region in dict.fromkeys(
                r for j in config.jurisdictions.values() for r in j.regions
            ):
                blobs[region] = open_blob_store(root, config, region)
            _require_small_blobs(store, blobs)
        except BaseException:
            # Nothing opened so far outlives a refused start.
            _close_all(custodians.values())
            _close_all(blobs.values())
            log.close()
            store.close()
            raise
        commitment_secret = read_secret(root / "keys" / "commitment.secret", expected_len=32)
        # Every worker process (and replica) of the deployment shares the guard's journal,
        # and hashes name templates under the same key.
        journal = open_guard_journal(
            config.database,
            root / GUARD_JOURNAL,
            seal_key(commitment_secret),
            timeouts=config.postgres,
        )
        guard = BulkGuard(
            BulkLimits(config.request_subject_limit, config.window_subject_limit, config.window_s),
            clock,
            journal=journal,
            template_key=hashlib.blake2b(commitment_secret, person=b"sovra-bulk-tmpl").digest(),
        )
        decisions = DecisionPoint(
            default_pack(), guard, {c: j.purposes for c, j in config.jurisdictions.items()}
        )
        authority_keys = {j: _authority_public(root, j) for j in config.jurisdictions}
        gateway = Gateway(
            config=config,
            store=store,
            blobs=blobs,
            custodians=custodians,
            log=log,
            decisions=decisions,
            authority_keys=authority_keys,
            commitment_secret=commitment_secret,
            clock=clock,
            # SQLite: the metadata and the log are one file, whose appends sync the WAL.
            rows_synced_by_log=not is_postgres_url(config.database),
        )
        governance = Governance(
            config=config,
            store=store,
            custodians=custodians,
            log=log,
            decisions=decisions,
            authority_keys=authority_keys,
            commitment=gateway.commitment,
            clock=clock,
        )
        authenticator = Authenticator(
            store.get_principal, store.spend_nonces, max_age_s=config.token_max_age_s, clock=clock
        )
        governance.restore_policy()  # the last logged activation, so a restart is no rollback
        cosignatures = log_cosignatures(root, config, log, log_storage)
        witnessing = open_witnessing(log, cosignatures, timeout_s=config.witness_timeout_s)
        if witnessing is not None:  # custodians may then demand the allows' proofs
            gateway.release_proofs = ReleaseProofs.following(log, witnessing)
        recovery = check.recover(store, log, now_ms=int(clock() * 1000)) if recover else None
        bearer = None
        if config.oidc is not None:
            from sovra.oidc import BearerAuthenticator  # only a deployment with [auth.oidc]

            bearer = BearerAuthenticator(
                config.oidc, clock=clock, commitment=gateway.commitment
            )
        return cls(
            root,
            config,
            gateway,
            governance,
            authenticator,
            store,
            cosignatures,
            recovery,
            bearer=bearer,
            witnessing=witnessing,
        )

    def close(self) -> None:
        """Release database connections (and custodians' stores, connections and the
        processes :meth:`open` started)."""
        self.gateway.close()
        self.store.close()
        if self.witnessing is not None:
            self.witnessing.close()
        self.gateway.log.close()
        _close_all([self.gateway.decisions.guard.journal])
        _close_all(self.gateway.custodians.values())
        _close_all(self.gateway.blobs.values())
        if self.processes is not None:
            self.processes.close()
            self.processes = None

    # -- keys held beside the deployment (single-machine convenience) ---------------------

    def principal_key(self, principal_id: str) -> Ed25519PrivateKey:
        """The private key ``init`` wrote for a registered principal.

        Raises:
            ConfigError: no key file for this principal.
        """
        return load_ed25519(self.root / "principals" / f"{check_id(principal_id, 'principal')}.key")

    def authority_key(self, jurisdiction: str) -> Ed25519PrivateKey:
        """A jurisdiction authority's private key, where this machine holds it.

        Raises:
            ConfigError: this deployment does not hold that authority's key.
        """
        return load_ed25519(custody.authority_key_path(self.root, jurisdiction))

    def register(
        self, principal_id: str, jurisdiction: str, role: Role, *, subject: str = ""
    ) -> Ed25519PrivateKey:
        """Register a new principal with a fresh key pair kept under ``principals/``."""
        key = generate_ed25519(
            self.root / "principals" / f"{check_id(principal_id, 'principal')}.key"
        )
        self.config.jurisdiction(jurisdiction)
        self.store.put_principal(
            Principal(principal_id, jurisdiction, role, public_bytes(key), subject)
        )
        return key


def open_store(root: Path) -> tuple[Config, MetadataStore]:
    """The configuration and the metadata store of the deployment in *root*, without its
    gateway (no custodian, no log): for commands that manage principals.

    Raises:
        ConfigError: no deployment in *root*, or its store cannot be opened.
    """
    config = Config.load(root / CONFIG_NAME)
    return config, open_metadata_store(_database_url(root, config), timeouts=config.postgres)


def _register_principals(root: Path, config: Config, jurisdictions: list[str]) -> None:
    """Make the key pairs of :func:`default_principals`, log their ``principal`` entries
    (as ``sovra principal add`` does, before the store holds them) and register them."""
    store = open_metadata_store(_database_url(root, config), timeouts=config.postgres)
    try:
        made = [
            Principal(
                pid, j, role, public_bytes(generate_ed25519(root / "principals" / f"{pid}.key"))
            )
            for pid, j, role in default_principals(jurisdictions)
        ]
        log = open_log(root, config)
        try:
            log.append_many([principal_entry("add", p) for p in made])
        finally:
            log.close()
        for p in made:
            store.put_principal(p)
    finally:
        store.close()


PRINCIPALS_LOGGED_BY = "sovra-cli"
"""Who a ``principal`` entry names as acting: whoever runs ``sovra init`` or ``sovra
principal`` on the deployment's files (the gateway's operator), not a principal that signs
requests."""


def principal_entry(
    action: str, principal: Principal, previous_key: bytes | None = None
) -> tuple[bytes, list[str]]:
    """The ``principal`` log entry of *action* (``add``, ``revoke``, ``rotate-key``) on
    *principal*, and its tags: its id, jurisdiction and role, the SHA-256 of its public key
    (and of the key it replaces), never a key itself."""
    fields: dict[str, str] = {
        "action": action,
        "id": principal.id,
        "jurisdiction": principal.jurisdiction,
        "role": str(principal.role),
        "key": hashlib.sha256(principal.public_key).hexdigest(),
    }
    if previous_key is not None:
        fields["previous_key"] = hashlib.sha256(previous_key).hexdigest()
    entry = LogEntry("principal", int(time.time() * 1000), PRINCIPALS_LOGGED_BY, fields)
    return entry.to_bytes(), ["principal", f"principal:{principal.id}"]


def open_log(root: Path, config: Config) -> TransparencyLog:
    """The deployment's transparency log alone (its storage and signing key), for commands
    that log a change they make beside the gateway (``sovra principal``).

    Raises:
        ConfigError: the log's key or storage cannot be opened.
    """
    return _open_log(root, config)[0]


def _open_log(root: Path, config: Config) -> tuple[TransparencyLog, LogStorage]:
    storage = _open_log_storage(root, config)
    signer = NoteSigner(config.origin, load_ed25519(root / "keys" / "log.key"))
    return TransparencyLog(storage, signer, config.origin), storage


def open_witnessed_log(
    root: Path, config: Config
) -> tuple[TransparencyLog, CheckpointCosignatures]:
    """The deployment's log and the cosignatures its witnesses (``[witnesses]``) gave it,
    for commands that publish it beside the gateway (``sovra log publish-tiles``).

    Raises:
        ConfigError: the log's key or storage, or the witness policy, cannot be opened.
    """
    log, storage = _open_log(root, config)
    try:
        return log, log_cosignatures(root, config, log, storage)
    except BaseException:
        log.close()
        raise


def log_cosignatures(
    root: Path, config: Config, log: TransparencyLog, storage: LogStorage
) -> CheckpointCosignatures:
    """The cosignatures of *log*'s checkpoints (kept in its *storage*) by the witnesses
    ``[witnesses]`` names.

    Raises:
        ConfigError: the witness policy cannot be read, or *storage* keeps no
            cosignatures.
    """
    policy = load_policy(root / config.witness_policy) if config.witness_policy else None
    return CheckpointCosignatures(
        log,
        cosignature_store(storage),
        config.witnesses,
        quorum=None if policy else config.witness_quorum,
        policy=policy,
    )


def become_gateway(root: Path) -> custody.CustodianProcesses | None:
    """Start the deployment's custodian processes, then (as root) become the gateway's user.

    The custodians start while this process may still change user: each then drops to
    its own folder's owner. This process drops to the deployment folder's owner (the
    gateway's user) for good, so whatever it runs next opens no custodian's, authority's
    or principal's key. Returns the processes, for :meth:`Deployment.open`.

    Raises:
        ConfigError: a custodian did not start, or the user cannot be changed.
    """
    config = Config.load(root / CONFIG_NAME)
    if os.geteuid() == 0:
        custody.check_custody_owners(root, config.jurisdictions)
    codes = [j for j in config.jurisdictions if _needs_process(root, j)]
    processes = None
    if codes:
        log_public = load_ed25519(root / "keys" / "log.key").public_key()
        processes = custody.CustodianProcesses(root, codes, log_public)
    try:
        if os.geteuid() == 0:
            uid, gid = custody.owner_of(root)
            if uid != 0:
                custody.drop_privileges(uid, gid)
    except BaseException:
        if processes is not None:
            processes.close()
        raise
    return processes


def run_as_gateway(root: Path, work: Callable[[Deployment], _T]) -> _T:
    """Run *work* on the deployment in *root*, opened as the gateway's user.

    As root, on a deployment whose data belongs to the gateway's user, *work* runs in a
    child process that has become that user (:func:`become_gateway`), so what it writes
    stays the gateway's and this process keeps its own user (:func:`sovra.custody.in_child`).
    Otherwise it runs here.

    Raises:
        SovraError: what *work* raised.
        ConfigError: the child ended without an answer.
    """
    if os.geteuid() != 0 or custody.owner_of(root)[0] == 0:
        dep = Deployment.open(root)
        try:
            return work(dep)
        finally:
            dep.close()

    def as_gateway() -> _T:
        processes = become_gateway(root)
        dep = Deployment.open(root, processes=processes)
        try:
            return work(dep)
        finally:
            dep.close()
            if processes is not None:
                processes.close()

    return custody.in_child(as_gateway)


def _close_all(parts: Iterable[object]) -> None:
    """Close the custodians or blob stores that hold something to close."""
    for part in parts:
        close = getattr(part, "close", None)
        if callable(close):
            close()


def _needs_process(root: Path, jurisdiction: str) -> bool:
    return (
        custody.separate(root, jurisdiction)
        and not (root / "custodians" / f"{jurisdiction}.url").exists()
    )


def _open_custodian(
    root: Path,
    jurisdiction: str,
    log_public: Ed25519PublicKey,
    clock: Callable[[], float],
    endpoint: custody.Endpoint | None,
    *,
    key_transport: str,
    pg_timeouts: PgTimeouts | None = None,
) -> Custodian:
    """The custodian of *jurisdiction*: its process at *endpoint*, the service that
    ``custodians/<J>.url`` names, or (in-process layout) one opened here."""
    from sovra.keys.remote import RemoteCustodian

    if endpoint is not None:
        return RemoteCustodian(endpoint.url, jurisdiction, endpoint.token)
    url_file = root / "custodians" / f"{jurisdiction}.url"
    if url_file.exists():
        token = read_secret(root / "custodians" / f"{jurisdiction}.token", expected_len=32)
        return RemoteCustodian(url_file.read_text().strip(), jurisdiction, token)
    kek_path = custody.custodian_key_path(root, jurisdiction)
    if custody.separate(root, jurisdiction):
        raise ConfigError(
            f"custodian {jurisdiction} runs as its own process, and none was started for it "
            f"(open the deployment without processes=, or start it with sovra serve)"
        )
    custody.require_custodian_key(kek_path, jurisdiction)
    return LocalCustodian.open(
        kek_path,
        jurisdiction,
        log_public,
        clock=lambda: int(clock() * 1000),
        transport_suite=key_transport,
        pg_timeouts=pg_timeouts,
    )


def _make_folders(root: Path, jurisdictions: Sequence[str], *, separate: bool) -> bool:
    """Create a new deployment's folders; True when its holders get system users of their own.

    Raises:
        ConfigError: a folder cannot be created.
    """
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        users = separate and os.geteuid() == 0 and custody.reachable_by_others(root)
        for sub in ("keys", "custodians", "authorities", "principals", "blobs"):
            (root / sub).mkdir(exist_ok=True, mode=0o700)
            if users and sub in ("custodians", "authorities"):
                # The holders' users walk through these to their own folders (0700 each).
                os.chmod(root / sub, 0o755)  # noqa: S103 - a folder of folders, no secret
        for j in jurisdictions if separate else ():
            (root / "custodians" / j).mkdir(mode=0o700)
            (root / "authorities" / j).mkdir(mode=0o700)
    except OSError as exc:
        raise ConfigError(f"cannot create a deployment in {root}: {exc.strerror}") from None
    return users


def _give_to_users(root: Path, config: Config, jurisdictions: Sequence[str]) -> None:
    """Hand each part of a new deployment to its system user (run as root).

    The gateway's user owns the deployment folder and its data (database, blobs, log and
    commitment keys); each custodian and authority owns its folder; ``custodians/``,
    ``authorities/``, ``principals/`` and ``sovra.toml`` stay root's.

    Raises:
        ConfigError: a user cannot be created.
    """
    gateway = custody.ensure_user(custody.GATEWAY_USER)
    for j in jurisdictions:
        _chown_tree(root / "custodians" / j, custody.ensure_user(custody.custodian_user(j)))
        _chown_tree(root / "authorities" / j, custody.ensure_user(custody.authority_user(j)))
    for part in ("keys", config.blobs):
        _chown_tree(root / part, gateway)
    files = [] if is_postgres_url(config.database) else [_sqlite_path(root, config)]
    sides = ("-wal", "-shm", WRITER_SUFFIX)
    for database in files:
        for path in (database, *(database.with_name(database.name + s) for s in sides)):
            if path.exists():
                os.chown(path, *gateway, follow_symlinks=False)
    os.chown(root, *gateway, follow_symlinks=False)
    # The holders walk through to their folders; nobody but the gateway lists it.
    os.chmod(root, 0o711)  # noqa: S103


def _chown_tree(top: Path, owner: tuple[int, int]) -> None:
    for path in (top, *top.rglob("*")):
        os.chown(path, *owner, follow_symlinks=False)


def _new_config(
    root: Path,
    origin: str,
    jurisdictions: list[str],
    database: str | None,
    regions: Sequence[RegionConfig],
    *,
    tiles: TilesConfig | None,
) -> str:
    """The text of a new deployment's ``sovra.toml``, its S3 regions and tile place checked.

    Raises:
        ConfigError: a region is not one a jurisdiction lists, its bucket cannot be used
            or holds blobs already, or the tile place cannot be used or holds a
            checkpoint already.
        Unavailable: an S3 endpoint cannot be reached.
    """
    text = render_default_config(origin, jurisdictions, database=database, tiles=tiles)
    if not regions and tiles is None:
        return text
    where = str(root / CONFIG_NAME)
    names = [r.name for r in regions]
    targets.require_known_regions(Config.from_text(text, where), names)
    text = render_default_config(
        origin, jurisdictions, database=database, region_settings=regions, tiles=tiles
    )
    config = Config.from_text(text, where)
    targets.require_empty_buckets(root, config, names)
    targets.require_unused_tiles(root, config)
    return text


def _require_empty_database(database: str) -> None:
    """Refuse a ``--database`` that is not PostgreSQL or already holds a deployment (its
    principals or its log), before anything of the new deployment is written.

    Raises:
        ConfigError: not a PostgreSQL URL, or a deployment is there already.
        Unavailable: the server cannot be reached.
    """
    if not is_postgres_url(database):
        raise ConfigError(
            "--database takes a postgresql:// URL (without it, the deployment keeps "
            "its metadata in sovra.db beside sovra.toml)"
        )
    from sovra.ledger.postgres import PostgresLogStorage

    store = open_metadata_store(database)
    try:
        held = bool(store.list_principals()) or store.count_records() > 0
    finally:
        store.close()
    log = PostgresLogStorage(database)
    try:
        held = held or log.size() > 0
    finally:
        log.close()
    if held:
        raise ConfigError(
            "the database already holds a deployment (principals, records or log "
            "entries): give each deployment a database (or a schema) of its own"
        )


def _require_subject_keys(store: RecordStore, custodians: dict[str, Custodian]) -> None:
    """Refuse to start when a custodian holds no subject key while records of its
    jurisdiction exist: its store was lost or replaced, and every such record is unreadable.

    Raises:
        ConfigError: the first jurisdiction found in that state, and how to restore it.
    """
    for code, custodian in custodians.items():
        if not store.record_ids_for_jurisdiction(code, 1):
            continue
        status = _custodian_status(custodian)
        if status is not None and status["subjects"] == 0 and status["shredded"] == 0:
            raise ConfigError(
                f"custodian {code} holds no subject key, yet records of {code} are stored: "
                f"its subject-key store ({code}.subjects.db) was lost or replaced by an empty "
                "one, and none of those records would open. Restore the store from a backup "
                "before starting (sovra doctor DIR lists what else is wrong)"
            )


def _require_small_blobs(store: RecordStore, blobs: Mapping[str, BlobStoreBase]) -> None:
    """Refuse to start when a region's small-blob file is empty while a record of that
    region has its blob nowhere: the file was lost or replaced by an empty one.

    Only an empty file is looked into, and only a sample of rows (by id, so of any age):
    a new deployment, or one whose blobs are all files from before the small-blob file,
    passes; ``sovra check`` lists every missing blob.

    Raises:
        ConfigError: the first region found in that state, and how to restore it.
    """
    folders = {r: b for r, b in blobs.items() if isinstance(b, FilesystemBlobStore)}
    empty = {region for region, b in folders.items() if not b.holds_small_blobs()}
    after, seen = "", 0
    while empty and seen < _SAMPLE_ROWS and (page := store.records_page(after, 256)):
        after, seen = page[-1].header.record_id, seen + len(page)
        for meta in page:
            region, rid = meta.header.region, meta.header.record_id
            if region in empty and meta.log_index >= 0 and not blobs[region].exists(rid):
                path = folders[region].small_blobs_path
                state = "holds no blob" if path.exists() else "is missing"
                raise ConfigError(
                    f"the small-blob store {path} {state}, yet record {rid} of region "
                    f"{region} has its blob nowhere: the store was lost "
                    "or replaced by an empty one. Restore it from a backup before starting "
                    "(sovra doctor DIR lists what else is wrong)"
                )


def _custodian_status(custodian: Custodian) -> dict[str, int] | None:
    """Subject keys held and shredded, from a local or remote custodian (None if neither)."""
    status = getattr(custodian, "status", None)
    if not callable(status):
        return None
    counts = status()
    return {"subjects": int(counts.subjects), "shredded": int(counts.shredded)}


def _authority_public(root: Path, jurisdiction: str) -> Ed25519PublicKey:
    path = root / "authorities" / f"{jurisdiction}.pub"
    try:
        raw = bytes.fromhex(path.read_text().strip())
        return Ed25519PublicKey.from_public_bytes(raw)
    except FileNotFoundError:
        raise ConfigError(
            f"{path} missing: every configured jurisdiction needs its authority's public key"
        ) from None
    except ValueError:
        raise ConfigError(f"{path} is not a hex Ed25519 public key") from None


def _database_url(root: Path, config: Config) -> str:
    if is_postgres_url(config.database):
        return config.database
    return str(_sqlite_path(root, config))


def _open_log_storage(root: Path, config: Config) -> LogStorage:
    """The log beside the metadata: PostgreSQL when configured, else the SQLite file."""
    if is_postgres_url(config.database):
        from sovra.ledger.postgres import PostgresLogStorage

        return PostgresLogStorage(config.database, timeouts=config.postgres)
    return SQLiteLogStorage(_sqlite_path(root, config))


def _sqlite_path(root: Path, config: Config) -> Path:
    """The SQLite file of a deployment whose database is not PostgreSQL."""
    return root / config.database
