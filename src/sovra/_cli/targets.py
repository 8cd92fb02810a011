"""The ``[regions.NAME]`` settings that ``init``'s and ``migrate``'s bucket options ask for
(the options themselves are in :mod:`sovra._cli.common`).

Each ``--s3-*`` option is repeatable: a plain ``VALUE`` applies to every bucket ``--blobs``
names, ``REGION=VALUE`` to that region's alone (and wins over a plain one), so a
deployment whose regions have endpoints, credentials, encryption and providers of their
own is written by ``sovra init`` without editing ``sovra.toml``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sovra.config import RegionConfig

__all__ = ["S3_OPTIONS", "blob_regions"]

S3_OPTIONS = (
    "endpoint",
    "signing_region",
    "access_key_env",
    "secret_key_env",
    "credentials_file",
    "sse",
    "sse_kms_key_id",
    "provider",
    "provider_home",
)
"""The ``[regions.NAME]`` keys an ``--s3-*`` option sets (``--s3-`` + the key, dashed)."""


def blob_regions(
    blobs: Sequence[str] | None, options: Mapping[str, Sequence[str] | None]
) -> list[RegionConfig]:
    """The ``[regions.NAME]`` settings the options ask for; *options* maps each key of
    :data:`S3_OPTIONS` to the values given for it.

    Raises:
        ConfigError: a --blobs value is malformed, --s3-* is given without --blobs, an
            option names a region --blobs does not, or gives one region two values.
    """
    import dataclasses

    from sovra.errors import ConfigError
    from sovra.targets import S3Settings, parse_blobs

    names = [value.partition("=")[0] for value in blobs or []]
    common: dict[str, str] = {}
    own: dict[str, dict[str, str]] = {}
    if not blobs and any(options.get(key) for key in S3_OPTIONS):
        raise ConfigError("the --s3-* options describe the buckets --blobs names: add --blobs")
    for key in S3_OPTIONS:
        flag = "--s3-" + key.replace("_", "-")
        for given in options.get(key) or ():
            region, sep, rest = given.partition("=")
            if sep and region in names:
                where, value, what = own.setdefault(region, {}), rest, f"{flag} {region}="
            elif sep and _looks_like_region(region):
                raise ConfigError(
                    f"{flag} {given!r} names region {region}, which --blobs does not name "
                    f"(it names {', '.join(names)})"
                )
            else:
                where, value, what = common, given, flag
            if not value:
                raise ConfigError(f"{what} needs a value")
            if key in where:
                raise ConfigError(f"{what} is given twice")
            where[key] = str(Path(value).resolve()) if key == "credentials_file" else value
    regions = parse_blobs(blobs or [], S3Settings(**common))
    return [dataclasses.replace(r, **own.get(r.name, {})) for r in regions]


def _looks_like_region(text: str) -> bool:
    """Whether *text*, the part of an option's value before ``=``, is a region name (a URL
    or a file name with ``=`` in it is not one)."""
    return bool(text) and all(c.isalnum() or c in "-_." for c in text) and text[0].isalnum()
