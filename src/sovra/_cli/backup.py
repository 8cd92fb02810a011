"""``sovra backup DIR`` and ``sovra restore DIR``: an embedded deployment, copied and checked.

The work is :mod:`sovra.backup`'s; these commands name the folders and print what was
copied: the file count, the bytes and the manifest's SHA-256 (keep it apart from the
backup; ``restore --expect`` then refuses a manifest rewritten with the files).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sovra._cli.common import DeploymentDir, need_deployment, print_json

__all__ = ["backup", "restore"]


def backup(
    directory: Annotated[Path, typer.Argument(help="a new (or empty) folder for the backup")],
    deployment: DeploymentDir = None,
) -> None:
    """Copy a deployment (SQLite snapshots, blobs, keys, configuration) with a manifest
    of every file's SHA-256; the gateway may keep serving meanwhile.

    PostgreSQL and S3 deployments are refused: use pg_dump and the bucket's versioning.
    """
    deployment = need_deployment(deployment)
    from sovra.backup import backup as make_backup

    print_json(make_backup(deployment, directory).to_dict() | {"backup": str(directory)})


def restore(
    directory: Annotated[Path, typer.Argument(help="the backup folder")],
    deployment: Annotated[
        Path,
        typer.Option("--deployment", "-d", help="where to restore it: a new or empty folder"),
    ],
    expect: Annotated[
        str | None,
        typer.Option(help="the manifest's SHA-256 that `sovra backup` printed"),
    ] = None,
) -> None:
    """Check a backup against its manifest, then restore it; a backup that does not match
    is refused (exit 3) and nothing is written."""
    from sovra.backup import restore as restore_backup

    print_json(
        restore_backup(directory, deployment, expect_sha256=expect).to_dict()
        | {"deployment": str(deployment)}
    )
