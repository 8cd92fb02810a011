"""The ``[regions.NAME]`` settings that ``init``'s and ``migrate``'s bucket options ask for
(the options themselves are in :mod:`sovra._cli.common`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sovra.config import RegionConfig

__all__ = ["blob_regions"]


def blob_regions(
    blobs: list[str] | None,
    endpoint: str | None,
    signing_region: str,
    access_key_env: str | None,
    secret_key_env: str | None,
    credentials_file: Path | None,
) -> list[RegionConfig]:
    """The ``[regions.NAME]`` settings the options ask for.

    Raises:
        ConfigError: a --blobs value is malformed, or --s3-* is given without --blobs.
    """
    from sovra.errors import ConfigError
    from sovra.targets import S3Settings, parse_blobs

    given = [endpoint, access_key_env, secret_key_env, credentials_file]
    if not blobs and (any(v is not None for v in given) or signing_region != "us-east-1"):
        raise ConfigError("the --s3-* options describe the buckets --blobs names: add --blobs")
    settings = S3Settings(
        endpoint=endpoint,
        signing_region=signing_region,
        access_key_env=access_key_env,
        secret_key_env=secret_key_env,
        credentials_file=None if credentials_file is None else str(credentials_file.resolve()),
    )
    return parse_blobs(blobs or [], settings)
