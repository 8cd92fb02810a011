"""``sovra migrate``: move an embedded deployment to PostgreSQL and S3 buckets."""

from __future__ import annotations

from typing import Annotated

import typer

from sovra._cli.common import (
    AccessKeyEnv,
    Blobs,
    CredentialsFile,
    DeploymentArg,
    DeploymentDir,
    Endpoint,
    JsonOpt,
    Provider,
    ProviderHome,
    SecretKeyEnv,
    SigningRegion,
    Sse,
    SseKmsKeyId,
    Tiles,
    given_deployment,
    out,
    print_json,
    progress,
    usage,
)
from sovra._cli.targets import s3_options, s3_targets

__all__ = ["migrate"]

_STAGES = {
    "blobs": "blobs to buckets",
    "log": "log entries",
    "records": "record rows",
    "verify log": "verify: log",
    "verify records": "verify: records and blobs",
    "verify blobs": "verify: bucket listings",
    "tiles": "log tiles published",
    "verify tiles": "verify: log tiles",
}


def migrate(
    directory: DeploymentArg = None,
    database: Annotated[
        str | None,
        typer.Option(
            help="the postgresql:// URL to move the metadata, the log and the guard's journal "
            "to (an empty database, or one an unfinished move of this deployment left)",
        ),
    ] = None,
    blobs: Blobs = None,
    tiles: Tiles = None,
    s3_endpoint: Endpoint = None,
    s3_signing_region: SigningRegion = None,
    s3_access_key_env: AccessKeyEnv = None,
    s3_secret_key_env: SecretKeyEnv = None,
    s3_credentials_file: CredentialsFile = None,
    s3_sse: Sse = None,
    s3_sse_kms_key_id: SseKmsKeyId = None,
    s3_provider: Provider = None,
    s3_provider_home: ProviderHome = None,
    as_json: JsonOpt = False,
    deployment: DeploymentDir = None,
) -> None:
    """Move an embedded deployment (sovra.db, guard.db, blob folders) to PostgreSQL and S3.

    Copies principals, grants, unexpired nonces, the bulk guard's journal, the log
    (entries, checkpoints, cosignatures), the records' rows and, for each region given
    with --blobs, every blob into its bucket; then reads everything back and verifies it
    (same log root at the same size, the checkpoint under the log key, each blob against
    its ingest entry's digest) and only then points sovra.toml at the new stores (the old
    file stays as sovra.toml.embedded, the embedded files as they were). With --tiles
    FOLDER or --tiles s3://BUCKET/PREFIX the moved log is published there as static tiles
    up to its newest checkpoint, audited from there, and sovra.toml gets that [log.tiles]
    table (a place that must hold no other log's checkpoint).

    Stop the gateway first. Refused, with nothing changed, when the deployment is not an
    embedded one, the database, a bucket or the tile place holds another deployment, or
    a target cannot be reached. Resumable: run it again after a failure, with the same
    options, and it carries on where it stopped. The custodians' subject keys stay with
    the custodians.
    """
    from sovra.migrate import migrate as move

    directory = given_deployment(directory, deployment)
    if database is None:
        usage("migrate needs --database postgresql://... (and --blobs REGION=s3://... per region)")
    regions, tile_place = s3_targets(blobs, tiles, s3_options(locals()))
    stages = {s: label for s, label in _STAGES.items() if tile_place or "tiles" not in s}
    with progress("moving") as bar:
        tasks = {stage: bar.add_task(label, total=None) for stage, label in stages.items()}

        def tick(stage: str, done: int, total: int | None) -> None:
            bar.update(tasks[stage], completed=done, total=total)

        report = move(directory, database, regions, tiles=tile_place, progress=tick)
    if as_json:
        print_json(report.to_dict())
        return
    c = report.counts
    out.print(
        f"moved {c.get('records', 0)} records ({c.get('blobs_moved', 0)} blobs into buckets), "
        f"{c.get('log_entries', 0)} log entries, {c.get('checkpoints', 0)} checkpoints, "
        f"{c.get('principals', 0)} principals, {c.get('grants', 0)} grants"
        + (" (carried on from an earlier run)" if report.resumed else "")
    )
    out.print(
        f"verified: log root {report.root_hash[:16]}… at size {c.get('log_entries', 0)}, "
        f"checkpoint {report.checkpoint_size}; {c.get('blobs_verified', 0)} records' blobs "
        f"read back and checked; {report.seconds.get('total', 0):.1f} s"
    )
    if report.tiles is not None:
        t = report.tiles
        out.print(
            f"log tiles: {t['files_written']} files written to {t['where']}, the log up to "
            f"size {t['size']} audited from there ({t['entries_verified']} entries)"
            if t["size"]
            else f"log tiles: nothing published to {t['where']} yet (the log has no "
            "checkpoint); sovra serve publishes there once it signs one"
        )
    out.print(f"{directory / 'sovra.toml'} now names the new stores; restart sovra serve")
