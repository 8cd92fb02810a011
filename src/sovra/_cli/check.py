"""``sovra check``: reconcile a deployment's metadata, blobs, subject keys and log.

It opens the deployment folder itself (as ``sovra keys`` does) without the start-up
recovery, so it reports what a crash left before settling it; ``--repair`` settles what
is safe (see :mod:`sovra.check`). Exit code 0: clean; 3: integrity problems remain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.table import Table

from sovra._cli.common import (
    DeploymentDir,
    ExitCode,
    JsonOpt,
    err,
    need_deployment,
    out,
    print_json,
    print_table,
    progress,
)

if TYPE_CHECKING:
    import sqlite3

    from sovra.check import CheckReport, SubjectKeys
    from sovra.deployment import Deployment

__all__ = ["check"]

_STAGES = {"log": "log entries", "records": "records", "blobs": "blobs"}


def check(
    deployment: DeploymentDir = None,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="complete rows from the log, quarantine unlogged ones, remove orphan blobs",
        ),
    ] = False,
    grace: Annotated[
        int,
        typer.Option(help="seconds before a row without its log entry counts as abandoned", min=0),
    ] = 3600,
    as_json: JsonOpt = False,
) -> None:
    """Reconcile metadata rows, blobs, subject keys and the log (like fsck); exit 3 if unclean."""
    deployment = need_deployment(deployment)
    import time

    from sovra import check as checker
    from sovra.deployment import Deployment

    dep = Deployment.open(deployment, recover=False)
    subject_keys, opened = _subject_keys(dep)
    try:
        with progress("checking") as bar:
            tasks = {stage: bar.add_task(label, total=None) for stage, label in _STAGES.items()}

            def tick(stage: str, done: int, total: int | None) -> None:
                bar.update(tasks[stage], completed=done, total=total)

            report = checker.check(
                dep.store,
                dep.gateway.log,
                dep.gateway.blobs,
                now_ms=int(time.time() * 1000),
                subject_keys=subject_keys,
                repair=repair,
                grace_ms=grace * 1000,
                progress=tick,
            )
    finally:
        for store in opened:
            store.close()
        dep.close()
    if as_json:
        print_json(report.to_dict())
    else:
        _summary(report)
    if not report.clean:
        raise typer.Exit(ExitCode.VERIFICATION)


def _subject_keys(dep: Deployment) -> tuple[SubjectKeys | None, list[sqlite3.Connection]]:
    """Look subjects up in each custodian's subject-key store, read-only, where this user
    may open it; returns the lookup (None: not checked) and the connections to close.

    Read-only on purpose: a write from this process could leave a journal file the
    custodian's own user cannot remove. A custodian that runs elsewhere
    (``custodians/<J>.url``), or whose folder this user may not open, is not checked.
    """
    import sqlite3

    from sovra.custody import custodian_key_path
    from sovra.keys.subjects import subjects_database_path, subjects_path

    opened: dict[str, sqlite3.Connection] = {}
    for j in dep.config.jurisdictions:
        path = subjects_path(custodian_key_path(dep.root, j))
        if (dep.root / "custodians" / f"{j}.url").exists():
            break
        if subjects_database_path(custodian_key_path(dep.root, j)).exists():
            break  # its keys are in its own database, which this user must not read
        try:
            conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=10)
            conn.execute("SELECT 1 FROM subject_keys LIMIT 1").fetchall()
        except (OSError, sqlite3.Error):
            break
        opened[j] = conn
    else:

        def state(jurisdiction: str, subject: str) -> Literal["present", "shredded", "missing"]:
            conn = opened[jurisdiction]
            if conn.execute("SELECT 1 FROM subject_keys WHERE subject = ?", (subject,)).fetchone():
                return "present"
            if conn.execute("SELECT 1 FROM shredded WHERE subject = ?", (subject,)).fetchone():
                return "shredded"
            return "missing"

        return state, list(opened.values())
    for conn in opened.values():
        conn.close()
    return None, []


def _summary(report: CheckReport) -> None:
    c = report.counts
    out.print(
        f"checked {c.get('log_entries', 0)} log entries ({c.get('ingest_entries', 0)} ingests), "
        f"{c.get('rows', 0)} record rows ({c.get('visible_rows', 0)} visible), "
        f"{c.get('blobs', 0)} blobs"
    )
    if report.findings:
        table = Table("finding", "at", "detail", "state")
        for f in report.findings:
            state = "repaired" if f.repaired else ("PROBLEM" if f.problem else "note")
            table.add_row(f.kind, f.at, f.detail, state)
        print_table(table)
    for what in report.not_checked:
        err.print(f"not checked: {what} (a custodian store this user cannot read)")
    problems = len(report.problems)
    repaired = sum(f.repaired for f in report.findings)
    if problems:
        out.print(f"[bold red]{problems} integrity problem(s)[/], {repaired} repaired")
    else:
        out.print(f"[bold green]clean[/] ({repaired} repaired)")
