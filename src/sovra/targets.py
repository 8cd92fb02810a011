"""Where a scale-out deployment keeps what its replicas share: a PostgreSQL database and an
S3-compatible bucket per storage region, as ``sovra init`` and ``sovra migrate`` take them.

``--blobs REGION=s3://bucket[/prefix]`` names one region's bucket; the settings the named
regions share (endpoint, signing region, where the credentials are) come with them as
:class:`S3Settings`, and end up in ``[regions.NAME]`` tables of ``sovra.toml``. Never a
credential itself: the names of two environment variables, or a file only its owner reads.
``--tiles FOLDER|s3://bucket[/prefix]`` says where the log is published as static tiles
(``[log.tiles]``), a bucket with the same settings. Before anything is written the
buckets are checked (:func:`require_empty_buckets`, :func:`require_unused_tiles`):
reachable, the credentials accepted, and no blob, nor another log's checkpoint, there yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from sovra._regions import open_blob_store, open_tile_store
from sovra.config import Config, RegionConfig, TilesConfig, check_tiles_location
from sovra.errors import BadRequest, ConfigError, SovraError
from sovra.ledger import verify_checkpoint
from sovra.model import check_id

__all__ = [
    "TILES",
    "S3Settings",
    "parse_blobs",
    "parse_tiles",
    "require_empty_buckets",
    "require_known_regions",
    "require_unused_tiles",
]

TILES = "log.tiles"
"""The name the tile bucket's settings go by (``--s3-endpoint log.tiles=URL``)."""


@dataclass(frozen=True, slots=True)
class S3Settings:
    """What every bucket named by ``--blobs`` and ``--tiles`` shares (``[regions.NAME]``
    keys)."""

    endpoint: str | None = None
    signing_region: str = "us-east-1"
    access_key_env: str | None = None
    secret_key_env: str | None = None
    credentials_file: str | None = None
    sse: str | None = None
    sse_kms_key_id: str | None = None
    provider: str | None = None
    provider_home: str | None = None


def parse_blobs(values: Sequence[str], settings: S3Settings) -> list[RegionConfig]:
    """``REGION=s3://bucket[/prefix]`` options as region settings, in the order given.

    Raises:
        ConfigError: a value is not ``REGION=s3://...``, names a bad region, an S3 URL
            that is not valid, or a region twice.
    """
    from sovra.store.s3 import parse_s3_url

    regions: dict[str, RegionConfig] = {}
    for value in values:
        name, sep, url = value.partition("=")
        if not sep or not url:
            raise ConfigError(f"--blobs takes REGION=s3://bucket[/prefix], got {value!r}")
        try:
            check_id(name, "region")
        except BadRequest as exc:
            raise ConfigError(f"--blobs {value!r}: {exc.message}") from None
        if name in regions:
            raise ConfigError(f"--blobs names region {name} twice")
        parse_s3_url(url)
        regions[name] = RegionConfig(
            name,
            blobs=url,
            endpoint=settings.endpoint,
            signing_region=settings.signing_region,
            access_key_env=settings.access_key_env,
            secret_key_env=settings.secret_key_env,
            credentials_file=settings.credentials_file,
            sse=settings.sse,
            sse_kms_key_id=settings.sse_kms_key_id,
            provider=settings.provider,
            provider_home=settings.provider_home,
        )
    return list(regions.values())


def parse_tiles(value: str, settings: S3Settings) -> TilesConfig:
    """A ``--tiles`` value as ``[log.tiles]`` settings: a folder inside the deployment, or
    ``s3://bucket[/prefix]`` with *settings*.

    Raises:
        ConfigError: neither a folder inside the deployment nor a valid S3 URL.
    """
    check_tiles_location(value, "--tiles")
    if not value.startswith("s3://"):
        return TilesConfig(value)  # the bucket settings are the --blobs buckets'
    return TilesConfig(value, bucket=RegionConfig(TILES, blobs=value, **asdict(settings)))


def require_unused_tiles(root: Path, config: Config, *, ours: str | None = None) -> None:
    """Refuse a ``[log.tiles]`` place that holds a checkpoint already (another log's, or
    an earlier deployment's): the publisher would replace it. A bucket is read, so one
    that cannot be reached or refuses the credentials is refused too. With *ours*, a log
    key's vkey, a checkpoint that key signed is no refusal (what an unfinished
    ``sovra migrate`` of that log published).

    Raises:
        ConfigError: a checkpoint is there, the folder is a file, or the bucket is
            missing or refuses the credentials.
        Unavailable: the bucket's endpoint cannot be reached.
    """
    tiles = config.log_tiles
    if tiles is None:
        return
    if not tiles.is_s3:
        folder = root / tiles.location
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"--tiles {tiles.location!r}: {folder} is not a folder")
        found = folder / "checkpoint"
        held = found.read_bytes() if found.is_file() else b"" if found.exists() else None
        where, own = str(folder), "a place of its own"
    else:
        store = open_tile_store(root, config)
        assert store is not None
        try:
            held = store.get("checkpoint")
        finally:
            store.close()
        where, own = store.where, "bucket or prefix of its own"
    if held is not None and not _signed_by(held, ours):
        raise ConfigError(f"{where} already holds a log's checkpoint: publish each log to {own}")


def _signed_by(note: bytes, vkey: str | None) -> bool:
    """Whether *note* is a checkpoint signed by the log key *vkey*."""
    if vkey is None:
        return False
    try:
        verify_checkpoint(note, vkey)
    except SovraError:
        return False
    return True


def require_known_regions(config: Config, names: Iterable[str]) -> None:
    """Refuse a region no jurisdiction of *config* lists.

    Raises:
        ConfigError: the first such region, and the regions the deployment has.
    """
    used = dict.fromkeys(r for j in config.jurisdictions.values() for r in j.regions)
    for name in names:
        if name not in used:
            raise ConfigError(
                f"--blobs names region {name}, which no jurisdiction of this deployment "
                f"lists; its regions are {', '.join(used)}"
            )


def require_empty_buckets(root: Path, config: Config, names: Iterable[str]) -> None:
    """Open the bucket of each region in *names* and refuse one that holds blobs already.

    Raises:
        ConfigError: a bucket is missing, refuses the credentials, or holds blobs under
            the prefix (another deployment's, or an earlier attempt's).
        Unavailable: an endpoint cannot be reached.
    """
    for name in names:
        store = open_blob_store(root, config, name)
        try:
            held = next(iter(store.stored_keys()), None)
        finally:
            store.close()
        if held is not None:
            raise ConfigError(
                f"region {name}'s {config.region(name).blobs} already holds blobs (record "
                f"{held}, at least): give each deployment a bucket or prefix of its own"
            )
