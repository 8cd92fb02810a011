"""A deployment's blob store for each storage region: its folder, or its S3 bucket.

``[regions.NAME]`` of ``sovra.toml`` names the bucket, endpoint, encryption and where the
credentials are; never the secret itself (see :class:`~sovra.config.RegionConfig`). The
secret comes from two environment variables named there, or from a file of the
deployment that only its owner can read, or from the S3 client's own chain.

``[log.tiles]`` names the folder or bucket the log's tiles are published into, with the
same settings and credentials (:func:`open_tile_store`).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from sovra.config import Config, RegionConfig
from sovra.errors import ConfigError
from sovra.ledger.tiles_store import FolderTileStore, S3TileStore, TileStore
from sovra.store import BlobStoreBase, FilesystemBlobStore

__all__ = ["open_blob_store", "open_tile_store"]

_MAX_CREDENTIALS_BYTES = 4096


def open_blob_store(root: Path, config: Config, region: str) -> BlobStoreBase:
    """The blob store of *region*: ``root/<blobs>/<region>``, or its S3 bucket.

    Raises:
        ConfigError: the folder or bucket cannot be used, credentials are missing or in a
            file others can read, or the endpoint refused them.
        Unavailable: the S3 endpoint cannot be reached.
    """
    settings = config.region(region)
    limit = config.max_record_bytes + 1024
    if not settings.is_s3:
        return FilesystemBlobStore(
            root / config.blobs,
            region,
            max_blob_bytes=limit,
            small_blob_bytes=config.small_blob_bytes,
        )
    from sovra.store.s3 import S3BlobStore, parse_s3_url

    access, secret = _credentials(root, settings)
    assert settings.blobs is not None  # is_s3
    return S3BlobStore(
        region,
        parse_s3_url(settings.blobs),
        endpoint=settings.endpoint,
        access_key=access,
        secret_key=secret,
        signing_region=settings.signing_region,
        sse=settings.sse,
        sse_kms_key_id=settings.sse_kms_key_id,
        max_blob_bytes=limit,
        small_blob_bytes=config.small_blob_bytes,
    )


def open_tile_store(root: Path, config: Config) -> TileStore | None:
    """Where ``[log.tiles]`` publishes the log's tiles: its folder inside *root*, or its
    bucket; None when the deployment publishes none. Nothing is asked of a bucket yet.

    Raises:
        ConfigError: the folder cannot be made, or the bucket's credentials are missing
            or in a file others can read.
    """
    tiles = config.log_tiles
    if tiles is None:
        return None
    if tiles.bucket is None:
        return FolderTileStore(root / tiles.location)
    from sovra.store.s3 import parse_s3_url

    settings = tiles.bucket
    access, secret = _credentials(root, settings, "[log.tiles]")
    return S3TileStore(
        parse_s3_url(tiles.location),
        endpoint=settings.endpoint,
        access_key=access,
        secret_key=secret,
        signing_region=settings.signing_region,
        sse=settings.sse,
        sse_kms_key_id=settings.sse_kms_key_id,
    )


def _credentials(
    root: Path, settings: RegionConfig, where: str | None = None
) -> tuple[str | None, str | None]:
    where = where or f"[regions.{settings.name}]"
    if settings.access_key_env is not None and settings.secret_key_env is not None:
        values = []
        for name in (settings.access_key_env, settings.secret_key_env):
            value = os.environ.get(name, "")
            if not value:
                raise ConfigError(f"{where}: the environment variable {name} is not set")
            values.append(value)
        return values[0], values[1]
    if settings.credentials_file is None:
        return None, None
    path = root / settings.credentials_file
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise ConfigError(
            f"{where}: cannot read credentials_file {settings.credentials_file}: {exc.strerror}"
        ) from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o077:
            raise ConfigError(
                f"{where}: credentials_file {settings.credentials_file} must be a plain file "
                "only its owner can read (chmod 600)"
            )
        raw = f.read(_MAX_CREDENTIALS_BYTES + 1)
    try:
        body = json.loads(raw) if len(raw) <= _MAX_CREDENTIALS_BYTES else {}
    except ValueError:
        body = {}
    access = body.get("access_key") if isinstance(body, dict) else None
    secret = body.get("secret_key") if isinstance(body, dict) else None
    if not (isinstance(access, str) and isinstance(secret, str) and access and secret):
        raise ConfigError(
            f'{where}: credentials_file {settings.credentials_file} must be JSON {{"access_key":'
            ' "...", "secret_key": "..."}'
        )
    return access, secret
