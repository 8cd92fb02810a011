"""``sovra residency report``: where every subject's data lies, checked against the stores."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from sovra._cli.common import (
    DeploymentDir,
    ExitCode,
    JsonOpt,
    need_deployment,
    out,
    print_json,
    print_table,
    progress,
)

if TYPE_CHECKING:
    from sovra.residency import ResidencyReport

__all__ = ["residency_app"]

residency_app = typer.Typer(
    help="Where the records lie: per jurisdiction, region, provider and its home.",
    no_args_is_help=True,
)
_SHOWN_PROBLEMS = 50


@residency_app.command("report")
def report(
    deployment: DeploymentDir = None,
    subjects: Annotated[
        bool, typer.Option("--subjects", help="also list each subject's records per region")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """List where every subject's data lies and check it against the buckets and folders.

    Per jurisdiction and region: the storage, its provider and the provider's home, the
    records and subjects there. Checks: a record whose blob its region's store lacks, a
    blob no record names, a record in a region its jurisdiction (or either home of a
    subject of two) does not allow; a record of two homes counts under each. Exit code
    0: every check passed; 3: one failed. Reads the rows and lists the stores; run by the
    deployment's owner (the gateway's user), beside a running gateway if need be.
    """
    from contextlib import ExitStack

    from sovra._regions import open_blob_store
    from sovra.config import Config
    from sovra.residency import residency_report
    from sovra.store import is_postgres_url, open_metadata_store

    deployment = need_deployment(deployment)
    config = Config.load(deployment / "sovra.toml")
    database = config.database
    with ExitStack() as stack:
        store = open_metadata_store(
            database if is_postgres_url(database) else str(deployment / database)
        )
        stack.callback(store.close)
        blobs = {}
        for region in dict.fromkeys(r for j in config.jurisdictions.values() for r in j.regions):
            blobs[region] = open_blob_store(deployment, config, region)
            stack.callback(blobs[region].close)
        with progress("reading") as bar:
            tasks = {s: bar.add_task(s, total=None) for s in ("listing", "records")}
            found = residency_report(
                config,
                store,
                blobs,
                by_subject=subjects,
                progress=lambda stage, done, total: bar.update(
                    tasks[stage], completed=done, total=total
                ),
            )
    if as_json:
        print_json(found.to_dict())
    else:
        _show(found)
    if not found.ok:
        raise typer.Exit(ExitCode.VERIFICATION)


def _show(found: ResidencyReport) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="where the records lie")
    table.add_column("jurisdiction")
    table.add_column("region", no_wrap=True)
    table.add_column("storage", overflow="fold")
    for name in ("provider", "home", "allowed", "records", "subjects", "two homes"):
        table.add_column(name)
    for p in found.placed:
        table.add_row(
            p.jurisdiction, p.region, p.storage, p.provider or "", p.provider_home or "",
            Text("yes") if p.allowed else Text("NO", style="bold red"),
            str(p.records), str(p.subjects), str(p.two_homes),
        )  # fmt: skip
    print_table(table, soft_wrap=False)
    if found.subjects is not None:
        per = Table("subject", "jurisdiction", "region", "records", title="per subject")
        for s in found.subjects:
            per.add_row(s.subject, s.jurisdiction, s.region, str(s.records))
        print_table(per, soft_wrap=False)
    if found.ok:
        out.print("[bold green]every record where its jurisdiction allows, every blob in place[/]")
        return
    problems = Table("problem", "region", "record or blob", "detail")
    for problem in found.problems[:_SHOWN_PROBLEMS]:
        problems.add_row(problem.kind, problem.region, problem.key, problem.detail)
    print_table(problems, soft_wrap=False)
    more = len(found.problems) - _SHOWN_PROBLEMS
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(found.counts().items()))
    out.print(
        f"[bold red]{len(found.problems)} problem(s)[/]: {counts}"
        + (f" ({more} not shown; --json lists them all)" if more > 0 else "")
    )
