"""The options naming a scale-out deployment's stores, shared by ``init`` and ``migrate``.

Light on purpose: ``sovra.cli`` imports it to declare ``init``; the stores' modules are
imported only when a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from sovra.config import RegionConfig

__all__ = [
    "AccessKeyEnv",
    "Blobs",
    "CredentialsFile",
    "Database",
    "Endpoint",
    "SecretKeyEnv",
    "SigningRegion",
    "blob_regions",
]

Database = Annotated[
    str | None,
    typer.Option(
        help="a postgresql:// URL: keep the metadata, the log and the bulk guard's "
        "journal in that database (empty, one per deployment) instead of sovra.db; "
        "put the password in ~/.pgpass or PGPASSWORD, not the URL (sovra.toml keeps it)",
    ),
]
Blobs = Annotated[
    list[str] | None,
    typer.Option(
        "--blobs",
        metavar="REGION=s3://BUCKET[/PREFIX]",
        help="keep that storage region's blobs in an S3-compatible bucket (repeatable); "
        "the --s3-* options apply to every bucket named",
    ),
]
Endpoint = Annotated[
    str | None,
    typer.Option("--s3-endpoint", help="the S3 endpoint URL [default: AWS itself]"),
]
SigningRegion = Annotated[
    str, typer.Option("--s3-signing-region", help="the region S3 requests are signed for")
]
AccessKeyEnv = Annotated[
    str | None,
    typer.Option(
        "--s3-access-key-env",
        metavar="VAR",
        help="the environment variable holding the access key (with --s3-secret-key-env) "
        "[default: the S3 client's own chain: AWS_* variables, an instance role]",
    ),
]
SecretKeyEnv = Annotated[
    str | None,
    typer.Option("--s3-secret-key-env", metavar="VAR", help="the variable holding the secret key"),
]
CredentialsFile = Annotated[
    Path | None,
    typer.Option(
        "--s3-credentials-file",
        help='instead: a JSON file {"access_key": ..., "secret_key": ...} only its owner '
        "can read (chmod 600)",
    ),
]


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
