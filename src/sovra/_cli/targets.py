"""The ``[regions.NAME]`` settings that ``init``'s and ``migrate``'s bucket options ask for
(the options themselves are in :mod:`sovra._cli.common`).

Each ``--s3-*`` option is repeatable: a plain ``VALUE`` applies to every bucket ``--blobs``
and ``--tiles`` name, ``REGION=VALUE`` to that region's alone and ``log.tiles=VALUE`` to
the tile bucket's alone (each wins over a plain one), so a deployment whose regions have
endpoints, credentials, encryption and providers of their own is written by ``sovra
init`` without editing ``sovra.toml``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sovra.config import RegionConfig, TilesConfig

__all__ = ["S3_OPTIONS", "s3_options", "s3_targets"]

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


def s3_options(given: Mapping[str, object]) -> dict[str, Sequence[str] | None]:
    """The values of the ``--s3-*`` options among a command's parameters (*given*, its
    ``locals()``: ``s3_endpoint`` and the like), by :data:`S3_OPTIONS` key."""
    values: dict[str, Sequence[str] | None] = {}
    for key in S3_OPTIONS:
        value = given[f"s3_{key}"]
        values[key] = value if isinstance(value, list) else None
    return values


def s3_targets(
    blobs: Sequence[str] | None,
    tiles: str | None,
    options: Mapping[str, Sequence[str] | None],
) -> tuple[list[RegionConfig], TilesConfig | None]:
    """The ``[regions.NAME]`` settings and the ``[log.tiles]`` table the options ask for.

    Raises:
        ConfigError: a --blobs or --tiles value is malformed, --s3-* is given without a
            bucket to apply to, an option names a region --blobs does not (or the tile
            bucket without --tiles s3://...), or gives one target two values.
    """
    import dataclasses

    from sovra.errors import ConfigError
    from sovra.targets import TILES, S3Settings, parse_blobs, parse_tiles

    names = [value.partition("=")[0] for value in blobs or []]
    if tiles is not None and tiles.startswith("s3://"):
        names.append(TILES)
    common: dict[str, str] = {}
    own: dict[str, dict[str, str]] = {}
    if not names and any(options.get(key) for key in S3_OPTIONS):
        raise ConfigError(
            "the --s3-* options describe the buckets --blobs and --tiles name: add "
            "--blobs REGION=s3://... or --tiles s3://..."
        )
    for key in S3_OPTIONS:
        flag = "--s3-" + key.replace("_", "-")
        for given in options.get(key) or ():
            region, sep, rest = given.partition("=")
            if sep and region in names:
                where, value, what = own.setdefault(region, {}), rest, f"{flag} {region}="
            elif sep and region == TILES:
                raise ConfigError(f"{flag} {given!r} names the tile bucket: add --tiles s3://...")
            elif sep and _looks_like_region(region):
                raise ConfigError(
                    f"{flag} {given!r} names region {region}, which --blobs does not name "
                    f"(it names {', '.join(n for n in names if n != TILES) or 'none'})"
                )
            else:
                where, value, what = common, given, flag
            if not value:
                raise ConfigError(f"{what} needs a value")
            if key in where:
                raise ConfigError(f"{what} is given twice")
            where[key] = str(Path(value).resolve()) if key == "credentials_file" else value
    regions = parse_blobs(blobs or [], S3Settings(**common))
    regions = [dataclasses.replace(r, **own.get(r.name, {})) for r in regions]
    if tiles is None:
        return regions, None
    return regions, parse_tiles(tiles, S3Settings(**(common | own.get(TILES, {}))))


def _looks_like_region(text: str) -> bool:
    """Whether *text*, the part of an option's value before ``=``, is a region name (a URL
    or a file name with ``=`` in it is not one)."""
    return bool(text) and all(c.isalnum() or c in "-_." for c in text) and text[0].isalnum()
