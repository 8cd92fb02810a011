"""``sovra report``'s rows: who touched a subject's data, each entry's proof verified.

One row per log entry about the subject, with the same fields in every output (table,
JSON, CSV; docs/cli.md): when, which entry, who asked, for what purpose, which kinds of
data the scanner found and what minimisation did, the grant relied on, the effect and
the reason, whole. A key release names no purpose or grant of its own: it takes them
from the decision that released it, when that decision is in the report too.
"""

from __future__ import annotations

import base64
import csv
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sovra._cli.common import out

if TYPE_CHECKING:
    from sovra_verify.note import NoteVerifier

__all__ = ["FIELDS", "print_csv", "print_table", "report_rows"]

FIELDS = (
    "index",
    "time",
    "time_ms",
    "entry",
    "requester",
    "purpose",
    "kinds",
    "client_sealed",
    "actions",
    "grant",
    "decision_id",
    "effect",
    "reason",
    "verified",
)
"""The fields of each row, in the order of the CSV's columns."""


# Each column's share of the width; the reason, the longest cell, has the largest and
# wraps at its spaces, never cut.
_SHARES = {
    "time (UTC)": 3,
    "entry": 3,
    "requester": 3,
    "purpose": 3,
    "kinds": 3,
    "grant": 2,
    "effect": 2,
    "reason": 7,
}


def _counts(value: object) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v for k, v in sorted(value.items()) if isinstance(v, int)}


def _time(time_ms: int) -> str:
    moment = datetime.fromtimestamp(time_ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def report_rows(report: Mapping[str, Any], vkey: str | NoteVerifier) -> dict[str, Any]:
    """The gateway's *report*, each entry's inclusion proof checked against its
    checkpoint, which is checked against *vkey*; as the JSON ``sovra report`` prints.

    Raises:
        VerificationError: the checkpoint or an entry's proof does not verify.
        BadRequest: an entry is not a log entry.
    """
    from sovra.ledger import verify_checkpoint, verify_entry_inclusion
    from sovra.model import LogEntry

    checkpoint = verify_checkpoint(report["checkpoint"], vkey)
    rows: list[dict[str, Any]] = []
    for item in report["entries"]:
        raw = item["entry"].encode()
        proof = [base64.b64decode(h) for h in item["proof"]]
        verify_entry_inclusion(raw, item["index"], proof, checkpoint)
        entry = LogEntry.from_bytes(raw)
        fields = entry.fields
        sealed = entry.kind == "ingest" and fields.get("kinds") == "client-sealed"
        rows.append(
            {
                "index": item["index"],
                "time": _time(entry.time_ms),
                "time_ms": entry.time_ms,
                "entry": entry.kind,
                "requester": entry.principal,
                "purpose": str(fields.get("purpose") or ""),
                "kinds": _counts(fields.get("kinds")) if entry.kind == "ingest" else {},
                "client_sealed": sealed,
                "actions": _counts(fields.get("actions")),
                "grant": str(fields.get("grant") or ""),
                "decision_id": str(fields.get("decision_id") or ""),
                "effect": str(fields.get("effect") or ""),
                "reason": str(fields.get("reason") or ""),
                "verified": True,
            }
        )
    decisions = {r["decision_id"]: r for r in rows if r["entry"] == "decision"}
    for row in rows:
        decided = decisions.get(row["decision_id"])
        if row["entry"] == "key_release" and decided is not None:
            row["purpose"] = row["purpose"] or decided["purpose"]
            row["grant"] = row["grant"] or decided["grant"]
    return {"subject": report["commitment"], "checkpoint_size": checkpoint.size, "entries": rows}


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return ";".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def print_csv(rows: list[dict[str, Any]]) -> None:
    """A header line, then one line per row; kinds and actions as ``kind=count`` pairs."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(FIELDS)
    for row in rows:
        writer.writerow([_cell(row[f]) for f in FIELDS])


def print_table(shown: dict[str, Any]) -> None:
    """The rows as a table that wraps every cell to the terminal, shortening none."""
    from rich import box
    from rich.table import Table

    rows = shown["entries"]
    # No vertical rules: a terminal of 80 columns keeps its width for the words.
    table = Table(
        title=f"log entries about subject {shown['subject']}",
        box=box.SIMPLE_HEAD,
        show_lines=True,
        pad_edge=False,
        expand=True,
    )
    table.add_column("#", no_wrap=True, justify="right")
    # Shares of the width; the reason, the longest cell, wraps at its spaces, never cut.
    for column, share in _SHARES.items():
        table.add_column(column, overflow="fold", ratio=share)
    for r in rows:
        kinds = "client-sealed" if r["client_sealed"] else _cell(r["kinds"]).replace(";", " ")
        table.add_row(
            str(r["index"]),
            r["time"].replace("T", " ").removesuffix("Z"),
            r["entry"].replace("_", " "),
            r["requester"],
            r["purpose"],
            kinds,
            r["grant"],
            r["effect"],
            r["reason"],
        )
    out.print(table, markup=False, soft_wrap=False, highlight=False)
    out.print(
        f"{len(rows)} entries, every inclusion proof verified against the checkpoint of "
        f"size {shown['checkpoint_size']}",
        highlight=False,
    )
