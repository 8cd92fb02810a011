"""Bad input through the command: the exit code and message a user gets, never a traceback.

Exit codes: 1 a refused or bad request (or an unreachable gateway), 2 a usage error,
3 an integrity or verification failure. The ``sovra`` and ``sovra_script`` fixtures fail
the test if a traceback is printed.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


def _put(live, source, *more):
    return live.args(
        "put",
        "--as",
        "svc-pl",
        "--subject",
        "anna@example.pl",
        "--jurisdiction",
        "PL",
        source,
        *more,
    )


def test_put_of_a_file_that_is_not_utf8(sovra, live, tmp_path):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Zażółć".encode("utf-16"))
    ran = sovra(*_put(live, latin1))
    assert ran.code == 1
    assert ran.out == ""
    assert ran.message == f"error {latin1} is not UTF-8 text (byte 0)"

    ran = sovra(*_put(live, "-"), stdin=b"ok so far \xff")
    assert ran.code == 1
    assert ran.message == "error standard input is not UTF-8 text (byte 10)"
    assert live.dep.store.count_records() == 0


def test_put_of_a_missing_file_or_a_directory(sovra, live, tmp_path):
    missing = tmp_path / "missing.txt"
    ran = sovra(*_put(live, missing))
    assert ran.code == 1
    assert ran.message == f"error cannot read {missing}: No such file or directory"

    ran = sovra(*_put(live, tmp_path))
    assert ran.code == 1
    assert ran.message == f"error cannot read {tmp_path}: Is a directory"
    assert live.dep.store.count_records() == 0


def test_get_of_an_unknown_record_is_not_found(sovra, live):
    ran = sovra(*live.args("get", "--as", "svc-pl", "--purpose", "billing", "--record", "r-nope"))
    assert ran.code == 1
    assert ran.out == ""
    assert ran.message == "error not_found: no record r-nope"


@pytest.mark.parametrize("subject", ["bad-format", "anna@example.pl"])
def test_get_with_a_malformed_subject_is_a_usage_error(sovra, live, subject):
    ran = sovra(*live.args("get", "--as", "svc-pl", "--purpose", "billing", "--subject", subject))
    assert ran.code == 2
    assert ran.message == f"error --subject must be JURISDICTION:SUBJECT_ID, got '{subject}'"


def test_messages_that_quote_brackets_are_printed_as_they_are(sovra, live):
    # Brackets are Rich markup; a message quoting them must neither lose them nor crash.
    ran = sovra(
        *live.args("get", "--as", "svc-pl", "--purpose", "billing", "--subject", "PL:[/x][bold]")
    )
    assert ran.code == 1
    assert ran.message.startswith("error bad_request: subject id must match ")
    assert ran.message.endswith("got '[/x][bold]'")


def test_acting_as_a_principal_without_a_key_file(sovra, live):
    ran = sovra(*live.args("get", "--as", "nobody", "--purpose", "billing", "--record", "r-1"))
    assert ran.code == 1
    path = live.root / "principals" / "nobody.key"
    assert ran.message == (
        f"error config: no key for principal nobody: {path} does not exist; give its private "
        "key with --key FILE, or --deployment DIR where `sovra init` wrote it"
    )


def test_a_principal_id_cannot_name_a_path(sovra, live):
    ran = sovra(*live.args("get", "--as", "../keys/log", "--purpose", "billing", "--record", "r-1"))
    assert ran.code == 1
    assert ran.message.startswith("error bad_request: principal must match ")
    assert ran.message.endswith("got '../keys/log'")


def test_signing_with_another_principals_key_is_unauthenticated(sovra, live):
    other = live.root / "principals" / "svc-vn.key"
    ran = sovra(
        *live.args("get", "--as", "svc-pl", "--key", other, "--purpose", "billing", "--record", "r")
    )
    assert ran.code == 1
    assert ran.message.startswith("error unauthenticated: ")
    assert "svc-pl" in ran.message


def test_get_with_an_unreadable_or_malformed_grant(sovra, live, tmp_path):
    base = live.args("get", "--as", "authority-us", "--purpose", "foreign-legal-process")
    base += ["--subject", "VN:lan@example.vn"]
    missing = tmp_path / "nope.json"
    ran = sovra(*base, "--grant", missing)
    assert ran.code == 1
    assert ran.message == f"error cannot read {missing}: No such file or directory"

    garbage = tmp_path / "garbage.json"
    garbage.write_text('{"grant_id": "g"}')
    ran = sovra(*base, "--grant", garbage)
    assert ran.code == 1
    assert ran.message.startswith("error bad_request: ")


def test_grant_that_cannot_be_written_is_not_registered(sovra, live, tmp_path):
    size = live.dep.gateway.log.size
    target = tmp_path / "no" / "such" / "dir" / "g.json"
    request = tmp_path / "request.json"
    asked = sovra(
        *live.args(
            "grant",
            "request",
            "--approver",
            "VN",
            "--grantee",
            "authority-us",
            "--grantee-jurisdiction",
            "US",
            "--subject",
            "lan@example.vn",
            "--out",
            request,
        )
    )
    assert asked.code == 0, asked.err
    ran = sovra(*live.args("grant", "approve", request, "--out", target))
    assert ran.code == 1
    assert ran.message == (
        f"error cannot write {target}: No such file or directory; grant not registered"
    )
    assert live.dep.gateway.log.size == size


def test_grant_for_an_authority_this_machine_does_not_hold(sovra, live, tmp_path):
    request = tmp_path / "request.json"
    asked = sovra(
        *live.args(
            "grant",
            "request",
            "--approver",
            "FR",
            "--grantee",
            "authority-us",
            "--grantee-jurisdiction",
            "US",
            "--subject",
            "x",
            "--out",
            request,
        )
    )
    assert asked.code == 0, asked.err
    ran = sovra(*live.args("grant", "approve", request))
    assert ran.code == 1
    assert ran.message == (
        f"error config: secret file {live.root / 'authorities' / 'FR.key'} does not exist"
    )


@pytest.mark.parametrize(
    "command",
    [
        ["log", "checkpoint"],
        ["log", "prove", "0"],
        ["log", "verify"],
        [
            "put",
            "--as",
            "svc-pl",
            "--subject",
            "a",
            "--jurisdiction",
            "PL",
            "-",
            "--deployment",
            "{template}",
        ],
        [
            "get",
            "--as",
            "svc-pl",
            "--purpose",
            "billing",
            "--record",
            "r-1",
            "--deployment",
            "{template}",
        ],
        ["report", "--subject", "a", "--jurisdiction", "PL", "--as", "svc-pl", "-d", "{template}"],
    ],
)
def test_nothing_listening_at_the_url(sovra, template, dead_url, command):
    ran = sovra(*(a.format(template=template) for a in command), "--url", dead_url, stdin=b"x")
    assert ran.code == 5
    assert ran.out == ""
    assert ran.message.startswith(
        f"error unavailable: cannot connect to the gateway at {dead_url}: "
    )
    assert ran.message.endswith("(is `sovra serve` running there?)")


def test_a_url_without_a_scheme(sovra):
    ran = sovra("log", "checkpoint", "--url", "127.0.0.1:8750")
    assert ran.code == 2
    assert "--url 127.0.0.1:8750 is not a gateway URL: give http:// or https://" in ran.message


class _NotSovra(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html>a web page</html>"
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def test_a_url_that_is_not_a_sovra_gateway(sovra):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotSovra)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        ran = sovra("log", "verify", "--url", url)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert ran.code == 5  # not sovra: no gateway reached
    assert (
        ran.message == f"error unavailable: {url} answered with something that is not sovra's JSON"
    )


def test_errors_from_the_console_script_are_messages(sovra_script, dead_url, tmp_path):
    ran = sovra_script("log", "verify", "--url", dead_url)
    assert ran.code == 5
    assert ran.out == ""
    assert ran.message.startswith(
        f"error unavailable: cannot connect to the gateway at {dead_url}: "
    )

    ran = sovra_script(
        "get", "--as", "svc-pl", "--purpose", "billing", "--record", "r-1", "-d", tmp_path
    )
    assert ran.code == 1
    path = tmp_path / "principals" / "svc-pl.key"
    assert ran.message == (
        f"error config: no key for principal svc-pl: {path} does not exist; give its private "
        "key with --key FILE, or --deployment DIR where `sovra init` wrote it"
    )
