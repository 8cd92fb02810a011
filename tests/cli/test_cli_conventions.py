"""What every command shares (docs/cli.md): the deployment from -d or SOVRA_DEPLOYMENT,
no default principal for the commands that move data, --json, the exit codes, `sovra
explain --index` and `sovra report` in full."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from sovra._cli.common import ExitCode, out
from sovra._cli.report import FIELDS

NOTE = "Klientka Wanda, tel. +48 601 234 567, e-mail wanda@example.pl."


def _logged_index(message: str) -> int:
    found = re.search(r"\(logged at index (\d+)\)$", message)
    assert found, message
    return int(found.group(1))


def _entry(live, index: int) -> dict[str, object]:
    entry: dict[str, object] = json.loads(live.dep.gateway.log.entry(index))
    return entry


def test_the_exit_codes_are_distinct_and_documented() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 5]
    doc = (Path(__file__).parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
    for code in ExitCode:
        assert re.search(rf"^\| {int(code)} \| \S", doc, re.MULTILINE), code


# -- which deployment --------------------------------------------------------------------------


def test_the_deployment_from_the_option_the_variable_or_the_folder_here(
    sovra, template, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SOVRA_DEPLOYMENT", raising=False)
    named = sovra("principal", "list", "--json", "-d", template)
    assert named.code == 0, named.err
    ids = {p["id"] for p in named.json()}
    assert {"operator", "auditor", "svc-pl"} <= ids

    monkeypatch.setenv("SOVRA_DEPLOYMENT", str(template))
    from_env = sovra("principal", "list", "--json")
    assert from_env.code == 0, from_env.err
    assert {p["id"] for p in from_env.json()} == ids

    # The option wins over the variable.
    monkeypatch.setenv("SOVRA_DEPLOYMENT", str(tmp_path / "elsewhere"))
    assert sovra("principal", "list", "--json", "-d", template).json() == named.json()

    monkeypatch.delenv("SOVRA_DEPLOYMENT")
    shutil.copytree(template, tmp_path / "deployment")
    here = sovra("principal", "list", "--json")
    assert here.code == 0, here.err
    assert {p["id"] for p in here.json()} == ids


def test_no_deployment_named_and_none_here_is_a_usage_error(sovra, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SOVRA_DEPLOYMENT", raising=False)
    for args in (("principal", "list"), ("keys", "status"), ("check",), ("doctor",)):
        ran = sovra(*args)
        assert ran.code == ExitCode.USAGE, (args, ran.err)
        assert ran.message == (
            "error no deployment: give -d/--deployment DIR or set SOVRA_DEPLOYMENT "
            "(there is no ./deployment here)"
        ), args
        assert ran.out == ""
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_deployment_path_is_named_and_nothing_is_made(sovra, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "no" / "such"
    ran = sovra("principal", "add", "svc-x", "-j", "PL", "--role", "service", "-d", missing)
    assert ran.code == ExitCode.ERROR
    assert ran.message == (
        f"error config: {missing}: no such folder; `sovra init DIR` creates a deployment"
    )
    monkeypatch.setenv("SOVRA_DEPLOYMENT", str(missing))
    ran = sovra("keys", "status")
    assert ran.code == ExitCode.ERROR
    assert ran.message.startswith(f"error config: SOVRA_DEPLOYMENT={missing}: no such folder")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    ran = sovra("check", "-d", a_file)
    assert ran.code == ExitCode.ERROR
    assert ran.message.startswith(f"error config: {a_file}: is not a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_serve_and_doctor_take_the_folder_as_dir_or_as_the_option(sovra, template, tmp_path):
    by_arg = sovra("doctor", template, "--json")
    by_option = sovra("doctor", "-d", template, "--json")
    assert by_arg.out == by_option.out
    assert by_arg.json()["deployment"] == str(template)
    other = tmp_path / "other"
    other.mkdir()
    ran = sovra("doctor", template, "-d", other)
    assert ran.code == ExitCode.USAGE
    assert ran.message == f"error DIR {template} and --deployment {other} name two deployments"


# -- whom a command acts as --------------------------------------------------------------------


def test_put_get_and_report_name_their_principal(sovra, live, tmp_path, monkeypatch):
    note = tmp_path / "note.txt"
    note.write_text(NOTE, encoding="utf-8")
    before = live.dep.gateway.log.size
    for args in (
        ("put", "--subject", "wanda@example.pl", "--jurisdiction", "PL", note),
        ("get", "--purpose", "billing", "--record", "r-1"),
        ("report", "--subject", "wanda@example.pl", "--jurisdiction", "PL"),
    ):
        ran = sovra(*live.args(*args))
        assert ran.code == ExitCode.USAGE, args
        assert "Missing option '--as'" in ran.err, args
    assert live.dep.gateway.log.size == before
    monkeypatch.setenv("SOVRA_AS", "svc-pl")
    put = sovra(*live.args("put", "--subject", "wanda@example.pl", "--jurisdiction", "PL", note))
    assert put.code == 0, put.err
    assert _entry(live, put.json()["log_index"])["principal"] == "svc-pl"


# -- refused, unreachable, explained by index ----------------------------------------------------


@pytest.fixture(scope="module")
def refused(live, tmp_path_factory):
    """A record of a Polish subject, and a US authority's read of it without a grant:
    the ingest's log index and the refusal's."""
    from typer.testing import CliRunner

    from sovra.cli import app

    note = tmp_path_factory.mktemp("refused") / "note.txt"
    note.write_text(NOTE, encoding="utf-8")
    runner = CliRunner()
    subject = "wanda.refused@example.pl"
    put = runner.invoke(
        app, [str(a) for a in live.args("put", "--as", "svc-pl", "--subject", subject,
                                        "--jurisdiction", "PL", note)],
    )  # fmt: skip
    assert put.exit_code == 0, put.stderr
    get = runner.invoke(
        app,
        [
            str(a)
            for a in live.args(
                "get", "--as", "authority-us", "--purpose", "foreign-legal-process",
                "--subject", f"PL:{subject}",
            )
        ],
    )  # fmt: skip
    assert get.exit_code == ExitCode.REFUSED, get.stderr
    assert get.stdout == ""
    return subject, json.loads(put.stdout)["log_index"], _logged_index(" ".join(get.stderr.split()))


def test_a_refusal_is_exit_4_and_explained_by_its_log_index(sovra, live, refused):
    _, _, index = refused
    entry = _entry(live, index)
    assert (entry["kind"], entry["effect"], entry["principal"]) == (
        "decision",
        "deny",
        "authority-us",
    )

    ran = sovra(*live.args("explain", "--index", str(index), "--json"))
    assert ran.code == 0, ran.err
    explained = ran.json()
    assert explained["log_index"] == index
    assert explained["decision_id"] == entry["decision_id"]
    assert (explained["effect"], explained["reason"]) == ("deny", entry["reason"])
    assert explained["principal"] == "authority-us"

    text = sovra(*live.args("explain", "-i", str(index)))
    assert text.code == 0, text.err
    assert text.out.startswith(f"Decision {entry['decision_id']} (log index {index}) was DENIED.")
    by_id = sovra(*live.args("explain", str(entry["decision_id"]), "--json"))
    assert by_id.json() == {**explained, "text": by_id.json()["text"]}


def test_explain_refuses_an_index_that_is_no_decision(sovra, live, refused):
    _, ingest, _ = refused
    size = live.dep.gateway.log.size
    cases = [
        (
            ("--index", str(ingest)),
            ExitCode.ERROR,
            f"error bad_request: log entry {ingest} is an ingest entry, not a decision; "
            f"`sovra log prove {ingest}` shows it",
        ),
        (
            ("--index", "999999"),
            ExitCode.ERROR,
            "error not_found: the log holds",
        ),
        (
            ("--index", "12x"),
            ExitCode.USAGE,
            "error --index '12x' is not a log index: give a whole number from 0 up",
        ),
        (("--index", "-3"), ExitCode.USAGE, "error --index '-3' is not a log index"),
        (("--index", ""), ExitCode.USAGE, "error --index '' is not a log index"),
        (("--index", "٣"), ExitCode.USAGE, "error --index '٣' is not a log index"),
        (
            ("abc", "--index", "1"),
            ExitCode.USAGE,
            "error give a DECISION_ID, or --index N from a refusal's '(logged at index N)', "
            "not both",
        ),
        ((), ExitCode.USAGE, "error give a DECISION_ID, or --index N"),
    ]
    for args, code, message in cases:
        ran = sovra(*live.args("explain", *args))
        assert ran.code == code, (args, ran.err)
        assert message in ran.message, (args, ran.message)
        assert ran.out == ""
    assert live.dep.gateway.log.size == size  # nothing asked, nothing logged


def test_a_gateway_that_cannot_be_reached_is_exit_5(sovra, template, dead_url):
    for args in (
        ("explain", "--index", "3"),
        ("report", "--as", "authority-pl", "--subject", "a", "--jurisdiction", "PL"),
        ("log", "checkpoint"),
    ):
        ran = (
            sovra(*args, "--url", dead_url, "-d", template)
            if args[0] != "log"
            else sovra(*args, "--url", dead_url)
        )
        assert ran.code == ExitCode.UNREACHABLE, (args, ran.err)
        assert ran.message.startswith(
            f"error unavailable: cannot connect to the gateway at {dead_url}: "
        ), args


# -- report ---------------------------------------------------------------------------------------


def test_report_as_csv_keeps_every_field_and_whole_reasons(sovra, live, refused):
    subject, ingest, index = refused
    base = live.args("report", "--as", "authority-pl", "--jurisdiction", "PL", "--subject", subject)
    ran = sovra(*base, "--csv")
    assert ran.code == 0, ran.err
    reader = csv.DictReader(io.StringIO(ran.out))
    assert tuple(reader.fieldnames or ()) == FIELDS
    rows = {int(r["index"]): r for r in reader}
    assert {ingest, index} <= rows.keys()

    denial, logged = rows[index], _entry(live, index)
    assert len(str(logged["reason"])) > 60
    assert denial["reason"] == logged["reason"]
    assert (denial["entry"], denial["effect"], denial["requester"]) == (
        "decision",
        "deny",
        "authority-us",
    )
    assert denial["purpose"] == "foreign-legal-process"
    assert denial["decision_id"] == logged["decision_id"]
    assert int(denial["time_ms"]) == logged["time_ms"]
    moment = datetime.fromisoformat(denial["time"])
    assert int(moment.timestamp() * 1000) == logged["time_ms"]
    assert denial["verified"] == "true"

    stored, ingested = rows[ingest], _entry(live, ingest)
    kinds = ingested["kinds"]
    assert isinstance(kinds, dict) and kinds
    assert stored["kinds"] == ";".join(f"{k}={kinds[k]}" for k in sorted(kinds))
    assert (stored["entry"], stored["requester"], stored["effect"]) == ("ingest", "svc-pl", "")


def test_report_as_json_and_as_a_table(sovra, live, refused, monkeypatch):
    subject, ingest, index = refused
    base = live.args("report", "--as", "authority-pl", "--jurisdiction", "PL", "--subject", subject)
    ran = sovra(*base, "--json")
    assert ran.code == 0, ran.err
    shown = ran.json()
    assert shown["subject"] == live.dep.gateway.commitment("PL", subject)
    assert shown["checkpoint_size"] <= live.dep.gateway.log.size
    rows = {r["index"]: r for r in shown["entries"]}
    assert all(set(r) == set(FIELDS) for r in rows.values())
    assert rows[index]["reason"] == _entry(live, index)["reason"]
    assert rows[ingest]["kinds"] == dict(sorted(_entry(live, ingest)["kinds"].items()))
    assert rows[ingest]["client_sealed"] is False

    monkeypatch.setattr(out, "_width", 160)  # a wide terminal: no word is folded
    table = sovra(*base)
    assert table.code == 0, table.err
    assert "…" not in table.out
    # Every word of the long reason is in the table, wrapped but not cut.
    for word in str(rows[index]["reason"]).split():
        assert word in table.out, word

    both = sovra(*base, "--json", "--csv")
    assert both.code == ExitCode.USAGE
    assert both.message == "error --json or --csv, not both"


def test_report_against_a_key_from_out_of_band(sovra, live, refused):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from sovra.ledger import NoteSigner

    subject, _, _ = refused
    base = live.args("report", "--as", "authority-pl", "--jurisdiction", "PL", "--subject", subject)
    trusted = sovra(*base, "--json", "--vkey", live.dep.gateway.log.verifier_key)
    assert trusted.code == 0, trusted.err
    other = NoteSigner("sovra.test/other", Ed25519PrivateKey.generate()).vkey
    ran = sovra(*base, "--json", "--vkey", other)
    assert ran.code == ExitCode.VERIFICATION
    assert ran.out == ""


# -- --json on every command that reads ---------------------------------------------------------


def test_every_reading_command_prints_json(sovra, live, template, refused, tmp_path):
    _, ingest, _ = refused
    checkpoint = sovra("log", "checkpoint", "--json", "--url", live.url)
    assert checkpoint.code == 0, checkpoint.err
    note = checkpoint.json()
    assert note["origin"] == live.dep.gateway.log.origin
    assert note["note"].startswith(f"{note['origin']}\n{note['size']}\n{note['root_hash']}\n")
    assert 0 < note["size"] <= live.dep.gateway.log.size

    proved = sovra("log", "prove", str(ingest), "--json", "--url", live.url)
    assert proved.code == 0, proved.err
    assert (proved.json()["index"], proved.json()["verified"]) == (ingest, True)

    verified = sovra("log", "verify", "--json", "--url", live.url)
    assert verified.code == 0, verified.err
    audit = verified.json()
    assert audit["verified"] is True and audit["cosigned"] is None
    assert audit["entries"] == audit["size"] <= audit["held"]

    shown = sovra(*live.args("policy", "show", "--json"))
    assert shown.code == 0, shown.err
    assert shown.json()["name"]

    diff = sovra("policy", "diff", "shipped:gdsi", "shipped:gdpr-chapter-v", "--json")
    assert diff.code == ExitCode.ERROR  # as diff(1): they differ
    changes = diff.json()
    assert changes["different"] is True
    assert changes["old"]["pack"] != changes["new"]["pack"]
    assert changes["added"] or changes["removed"] or changes["changed"]
    same = sovra("policy", "diff", "shipped:gdsi", "shipped:gdsi", "--json")
    assert same.code == 0
    assert same.json()["different"] is False

    for args in (("keys", "status"), ("check",), ("principal", "list")):
        ran = sovra(*args, "--json", "-d", template)
        assert ran.code == 0, (args, ran.err)
        assert isinstance(ran.json(), list | dict), args

    text = tmp_path / "scan.txt"
    text.write_text("tel. +48 601 234 567", encoding="utf-8")
    scanned = sovra("scan", "--json", text)
    assert scanned.code == 0, scanned.err
    assert [json.loads(line) for line in scanned.out.splitlines()]
    clash = sovra("scan", "--json", "--format", "table", text)
    assert clash.code == ExitCode.USAGE


def test_shell_completion_is_installable(sovra_script):
    shown = sovra_script("--show-completion", "bash")
    assert shown.code == 0, shown.err
    assert "_SOVRA_COMPLETE" in shown.out
    completed = sovra_script(
        env={"_SOVRA_COMPLETE": "complete_bash", "COMP_WORDS": "sovra rep", "COMP_CWORD": "1"}
    )
    assert completed.code == 0, completed.err
    assert completed.out.split() == ["report"]
    options = sovra_script(
        env={
            "_SOVRA_COMPLETE": "complete_bash",
            "COMP_WORDS": "sovra explain --",
            "COMP_CWORD": "2",
        }
    )
    assert {"--index", "--json", "--deployment"} <= set(options.out.split())
