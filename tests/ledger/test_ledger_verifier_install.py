"""The auditor's verifier, installed alone, checks a real `sovra serve` with the key she holds.

The ``verifier/`` distribution is built into a wheel once per test session and installed
into a fresh virtual environment with ``--no-deps``, beside pyca cryptography (and what
cryptography itself needs) and nothing else; ``sovra-verify`` from that environment is
then pointed at ``sovra serve`` subprocesses, directly and through a small proxy that
tampers with what the gateway answers.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.server.conftest import _serving
from tests.serving import SOVRA

from sovra.deployment import Deployment
from sovra.ledger import NoteSigner, verify_checkpoint
from sovra_verify.tiles import entries_path

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
ORIGIN = "sovra.test/verifier"
ENTRIES = 600  # three entry bundles, two of them full, and a partial level-1 tile
ALLOWED = {"sovra-verify", "cryptography", "cffi", "pycparser"}


def _env() -> dict[str, str]:
    """The environment without the test run's PYTHONPATH: the venv must stand alone."""
    return {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}


@dataclass(frozen=True)
class Verifier:
    """The installed ``sovra-verify`` and its environment's interpreter."""

    script: Path
    python: Path

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.script), *args],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=300,
            check=False,
        )


@pytest.fixture(scope="session")
def verifier(tmp_path_factory: pytest.TempPathFactory) -> Verifier:
    """``pip install --no-deps`` of the verifier's wheel, plus cryptography, in a fresh venv."""
    work = tmp_path_factory.mktemp("verifier")
    # Build from a copy of the two folders the distribution reads, so the build writes
    # nothing into the working tree.
    shutil.copytree(REPO / "verifier", work / "verifier")
    shutil.copytree(
        REPO / "src" / "sovra_verify",
        work / "src" / "sovra_verify",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    wheels = work / "wheels"
    subprocess.run(
        [*PIP, "wheel", "--no-deps", "-w", wheels, work / "verifier"], check=True, env=_env()
    )
    (wheel,) = wheels.glob("sovra_verify-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    install = [*PIP, "--python", python, "install"]
    subprocess.run([*install, "--no-deps", wheel], check=True, env=_env())
    subprocess.run([*install, "cryptography>=47"], check=True, env=_env())
    return Verifier(venv / "bin" / "sovra-verify", python)


def test_the_verifier_installs_with_cryptography_alone(verifier: Verifier) -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", verifier.python, "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
        env=_env(),
    ).stdout
    names = {line.split("==")[0].lower() for line in listed.split()}
    assert "sovra-verify" in names
    assert names <= ALLOWED, names - ALLOWED
    # The gateway is not there, nor anything of its stack.
    for absent in ("sovra", "fastapi", "httpx", "typer", "cedarpy"):
        probe = subprocess.run(
            [verifier.python, "-c", f"import {absent}"],
            capture_output=True,
            env=_env(),
            check=False,
        )
        assert probe.returncode != 0, f"{absent} is importable beside the verifier"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """``sovra serve`` over a deployment whose log holds ENTRIES entries; (url, log vkey)."""
    root = tmp_path_factory.mktemp("served") / "deployment"
    Deployment.init(root, origin=ORIGIN, custodians="in-process")
    dep = Deployment.open(root)
    try:
        log = dep.gateway.log
        # Two checkpoints: one after the first 100 entries (sovra init's among them), one
        # over all of them.
        for start, end in ((log.size, 100), (100, ENTRIES)):
            log.append_many([(b'{"kind":"test","n":%d}' % n, ()) for n in range(start, end)])
            log.checkpoint()
        vkey = log.verifier_key
    finally:
        dep.close()
    # What an operator publishes for auditors: the key read from the deployment's files.
    published = subprocess.run(
        [SOVRA, "log", "key", "--deployment", root],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert published == vkey
    with _serving(root) as url:
        yield url, published


def test_sovra_verify_checks_a_good_log_with_the_key_given(verifier, gateway, tmp_path):
    url, vkey = gateway
    ran = verifier("log", url, "--vkey", vkey)
    assert ran.returncode == 0, ran.stderr
    assert f"of {ORIGIN}, up to size" in ran.stdout
    assert ran.stdout.startswith(f"verified {ENTRIES} entries")

    # The key from a file, the newest checkpoint saved, then an incremental audit from it.
    key_file = tmp_path / "log.vkey"
    key_file.write_text(vkey + "\n", encoding="utf-8")
    saved = tmp_path / "checkpoint.note"
    ran = verifier("log", url, "--vkey", str(key_file), "--save-checkpoint", str(saved))
    assert ran.returncode == 0, ran.stderr
    assert verify_checkpoint(saved.read_text(encoding="utf-8"), vkey).size >= ENTRIES
    ran = verifier("log", url, "--vkey", vkey, "--from-checkpoint", str(saved))
    assert ran.returncode == 0, ran.stderr

    proved = verifier("prove", url, "107", "--vkey", vkey)
    assert proved.returncode == 0, proved.stderr
    assert '"verified": true' in proved.stdout
    assert '"n": 107' in proved.stdout


def test_sovra_verify_refuses_another_key(verifier, gateway):
    url, _ = gateway
    # A well-formed key of the same name that never signed this log.
    impostor = NoteSigner(ORIGIN, Ed25519PrivateKey.generate()).vkey
    for command in (["log", url], ["prove", url, "0"]):
        ran = verifier(*command, "--vkey", impostor)
        assert ran.returncode == 3, (command, ran.stdout, ran.stderr)
        assert "verification_failed" in ran.stderr
        assert "NOT VERIFIED" in ran.stderr
        assert not ran.stdout


@pytest.mark.parametrize(
    ("vkey", "code", "words"),
    [
        ("not-a-vkey", 1, "bad_request"),
        (f"{ORIGIN}+00000000+AAAA", 1, "bad_request"),
    ],
)
def test_sovra_verify_refuses_a_malformed_key_before_asking(verifier, vkey, code, words):
    ran = verifier("log", "http://127.0.0.1:9", "--vkey", vkey)
    assert ran.returncode == code, ran.stderr
    assert words in ran.stderr


def test_sovra_verify_without_a_key_is_a_usage_error(verifier, gateway):
    ran = verifier("log", gateway[0])
    assert ran.returncode == 2
    assert "--vkey" in ran.stderr


def test_sovra_verify_says_when_the_gateway_cannot_be_reached(verifier, gateway):
    ran = verifier("log", "http://127.0.0.1:9", "--vkey", gateway[1])
    assert ran.returncode == 4, ran.stderr
    assert "cannot reach the log at http://127.0.0.1:9" in ran.stderr


Rewrite = Callable[[str, bytes], bytes]


@contextmanager
def _proxy(upstream: str, rewrite: Rewrite) -> Iterator[str]:
    """A loopback HTTP proxy to *upstream* that passes each GET answer through *rewrite*."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                with urllib.request.urlopen(upstream + self.path) as answer:
                    status, kind, body = (
                        answer.status,
                        answer.headers["content-type"],
                        answer.read(),
                    )
            except urllib.error.HTTPError as exc:
                status, kind, body = exc.code, exc.headers["content-type"], exc.read()
            if status == 200:
                body = rewrite(self.path, body)
            self.send_response(status)
            self.send_header("content-type", kind or "application/octet-stream")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _tamper_checkpoint_root(path: str, body: bytes) -> bytes:
    if path != "/v1/log/checkpoint":
        return body
    origin, size, root, rest = body.split(b"\n", 3)
    # Another root under the log's own signature: the signature no longer covers the text.
    forged = root[:-2] + (b"A=" if root[-2:] != b"A=" else b"B=")
    return b"\n".join([origin, size, forged, rest])


def _tamper_entry(path: str, body: bytes) -> bytes:
    if path != "/v1/log/" + entries_path(1):
        return body
    at = body.index(b'"n":')
    return body[:at] + body[at:].replace(b"3", b"4", 1)


def _stale(checkpoints: list[str]) -> Rewrite:
    """A log that hides its newest checkpoints: the first one published is its newest."""
    first = checkpoints[0].encode()

    def rewrite(path: str, body: bytes) -> bytes:
        if path == "/v1/log/checkpoint":
            return first
        if path == "/v1/log/checkpoints":
            return b'{"checkpoints": []}'
        return body

    return rewrite


def test_sovra_verify_fails_on_a_tampered_checkpoint(verifier, gateway):
    url, vkey = gateway
    with _proxy(url, _tamper_checkpoint_root) as bad:
        ran = verifier("log", bad, "--vkey", vkey)
    assert ran.returncode == 3, (ran.stdout, ran.stderr)
    assert "NOT VERIFIED" in ran.stderr
    assert "not valid" in ran.stderr


def test_sovra_verify_names_a_tampered_entry(verifier, gateway):
    url, vkey = gateway
    with _proxy(url, _tamper_entry) as bad:
        ran = verifier("log", bad, "--vkey", vkey)
    assert ran.returncode == 3, (ran.stdout, ran.stderr)
    # The bundle of entries 256..511 was altered: the first bad index lies in it.
    shown = ran.stderr.split("first bad index ")[1]
    assert 256 <= int(shown.split(")")[0]) < 512


def test_sovra_verify_fails_on_a_stale_log(verifier, gateway):
    url, vkey = gateway
    with urllib.request.urlopen(url + "/v1/log/checkpoints") as answer:
        published = json.load(answer)["checkpoints"]
    oldest = verify_checkpoint(published[0], vkey)
    assert oldest.size < ENTRIES
    with _proxy(url, _stale(published)) as stale:
        ran = verifier("log", stale, "--vkey", vkey)
    assert ran.returncode == 3, (ran.stdout, ran.stderr)
    assert f"stale log: its newest checkpoint covers {oldest.size} entries" in ran.stderr


def test_the_documented_commands_are_the_ones_the_verifier_takes():
    """docs/ledger.md's sovra-verify lines parse with the command's own parser."""
    from sovra_verify.cli import _parser

    page = (REPO / "docs" / "ledger.md").read_text(encoding="utf-8")
    text = page.split("## Verify without installing the gateway")[1].split("\n## ")[0]
    lines = text.replace("\\\n", " ").splitlines()
    commands = [line.split("#")[0].split()[1:] for line in lines if "bin/sovra-verify " in line]
    assert len(commands) >= 4
    for words in commands:
        args = _parser().parse_args(words)
        assert args.vkey == "log.vkey"
    assert "pip install ./verifier" in text
    assert "sovra log key --deployment deployment > log.vkey" in text
