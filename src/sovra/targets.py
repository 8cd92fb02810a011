"""Where a scale-out deployment keeps what its replicas share: a PostgreSQL database and an
S3-compatible bucket per storage region, as ``sovra init`` and ``sovra migrate`` take them.

``--blobs REGION=s3://bucket[/prefix]`` names one region's bucket; the settings the named
regions share (endpoint, signing region, where the credentials are) come with them as
:class:`S3Settings`, and end up in ``[regions.NAME]`` tables of ``sovra.toml``. Never a
credential itself: the names of two environment variables, or a file only its owner reads.
Before anything is written the buckets are checked (:func:`require_empty_buckets`):
reachable, the credentials accepted, and no blob under the prefix yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sovra._regions import open_blob_store
from sovra.config import Config, RegionConfig
from sovra.errors import BadRequest, ConfigError
from sovra.model import check_id

__all__ = ["S3Settings", "parse_blobs", "require_empty_buckets", "require_known_regions"]


@dataclass(frozen=True, slots=True)
class S3Settings:
    """What every bucket named by ``--blobs`` shares (``[regions.NAME]`` keys)."""

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
