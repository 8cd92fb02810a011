"""Fuzz targets: every parser of untrusted bytes, each a function of one ``bytes`` input.

A target feeds its input to one parser and returns; the parser may refuse it, but only
with an error of sovra's own tree (:class:`~sovra.errors.SovraError`, and for each parser
the precise subclasses it documents). Any other exception escaping a target is a bug: an
input that would be a 500 at the HTTP edge or a traceback at the command line.

The same targets run under hypothesis in the test suite (tests/fuzz/test_fuzz_parsers.py)
and under atheris, coverage-guided, in ``scripts/fuzz``. Seed inputs are in
``tests/fuzz/corpus/<target>/``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import tempfile
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.auth import Authenticator, make_token
from sovra.config import Config
from sovra.errors import (
    BadRequest,
    ConfigError,
    IntegrityError,
    NotFound,
    PayloadTooLarge,
    SovraError,
    Unauthenticated,
    VerificationError,
)
from sovra.keys import envelope
from sovra.keys.transport import TransportPins
from sovra.ledger import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    open_note,
    sign_note,
    verify_checkpoint,
)
from sovra.model import Grant, LogEntry, LogReceipt, Principal, RecordHeader, Role
from sovra.policy import Envelope, PackBundle, parse_justification, shipped_bundle
from sovra.policy.pack import PackParameters
from sovra_verify.tiles import decode_entry_bundle, parse_hash_tile, parse_tile_path

CORPUS = Path(__file__).parent / "corpus"
NOW = 1_790_000_000

# What each parser documents it raises; anything else escaping is a finding.
Allowed = tuple[type[SovraError], ...]


def _text(data: bytes) -> str:
    # surrogateescape keeps every byte: undecodable ones become lone surrogates, which
    # str-taking parsers must refuse as precisely as anything else.
    return data.decode("utf-8", "surrogateescape")


@cache
def _keys() -> tuple[Ed25519PrivateKey, NoteSigner]:
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"fuzz-principal").digest())
    log = NoteSigner("sovra.test/log", Ed25519PrivateKey.from_private_bytes(bytes(32)))
    return key, log


@cache
def _authenticator() -> Authenticator:
    key, _ = _keys()
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    principal = Principal("svc-pl", "PL", Role.SERVICE, public)

    def lookup(pid: str) -> Principal:
        if pid != "svc-pl":
            raise NotFound(pid)
        return principal

    def spend(nonces: list[tuple[str, str, int, int]]) -> list[Principal]:
        # Every nonce fresh, its principal as stored: one result per nonce, as the
        # metadata store's spend_nonces answers a batch.
        return [principal for _ in nonces]

    return Authenticator(lookup, spend, max_age_s=300, clock=lambda: NOW)


def _loads(data: bytes) -> object:
    # What a caller holds after its own JSON parse (the framework's, for an HTTP body):
    # the parsers below must take any such value.
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


def token(data: bytes) -> None:
    """A request token: raw text, or claims bytes wrapped as a well-formed token."""
    auth = _authenticator()
    if data[:1] in (b"{", b"["):
        claims = base64.urlsafe_b64encode(data).rstrip(b"=").decode()
        raw = f"v1.{claims}.{'A' * 86}"
    else:
        raw = _text(data)
    auth.authenticate(raw, "GET", "/v1/policy", b"")


def note(data: bytes) -> None:
    """A C2SP signed note, checked against the log's key."""
    _, log = _keys()
    open_note(data, [log.verifier])


def vkey(data: bytes) -> None:
    """A signed-note verifier key string."""
    NoteVerifier.from_vkey(_text(data))


def checkpoint(data: bytes) -> None:
    """A checkpoint body, and a signed checkpoint note."""
    _, log = _keys()
    text = _text(data)
    try:
        Checkpoint.parse(text)
    finally:
        verify_checkpoint(data, log.verifier)


def tile_path(data: bytes) -> None:
    """A tlog-tiles path as a client asks for it."""
    parse_tile_path(_text(data))


def tile(data: bytes) -> None:
    """A hash tile and an entry bundle of the width the first byte names."""
    width = data[0] + 1 if data else 256
    try:
        parse_hash_tile(data[1:], width)
    finally:
        decode_entry_bundle(data[1:], width)


def grant(data: bytes) -> None:
    """A grant as bytes, and as the JSON object an HTTP body hands over."""
    try:
        Grant.from_json(data)
    finally:
        obj = _loads(data)
        if isinstance(obj, dict):
            Grant.from_json(obj)


def pack(data: bytes) -> None:
    """A policy pack bundle, and its parameters member alone."""
    try:
        PackBundle.from_bytes(data)
    finally:
        obj = _loads(data)
        if obj is not None:
            PackParameters.from_dict(obj)


def pack_envelope(data: bytes) -> None:
    """A DSSE envelope carrying a policy pack."""
    Envelope.from_json(data)


def justification(data: bytes) -> None:
    """An access justification code."""
    parse_justification(_text(data))


def record_header(data: bytes) -> None:
    """A record header (the AEAD associated data)."""
    RecordHeader.from_bytes(b"sovra-record\n" + data)


def log_entry(data: bytes) -> None:
    """A log entry, as a verifier reads it from a bundle."""
    LogEntry.from_bytes(data)


def receipt(data: bytes) -> None:
    """A log receipt, as a client reads it from a response."""
    obj = _loads(data)
    if isinstance(obj, dict):
        LogReceipt.from_dict(obj)


def transport_pins(data: bytes) -> None:
    """A document of custodian transport keys pinned by a client."""
    TransportPins.from_json(data)


_HEADER = RecordHeader(
    record_id="r-fuzz",
    subject="c" * 64,
    jurisdiction="PL",
    region="eu-central-pl",
    kek_version=1,
)


class _Sink:
    def write(self, data: memoryview, /) -> int:
        return len(data)


def stream(data: bytes) -> None:
    """A sealed blob (either format, its stream header first) opened with a data key."""
    key = bytes(32)
    try:
        envelope.open_blob(_HEADER, data, key)
    finally:
        envelope.open_stream(_HEADER, io.BytesIO(data), _Sink(), key)


@cache
def _config_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="sovra-fuzz-config-"))


def config(data: bytes) -> None:
    """``sovra.toml`` as an operator might write it."""
    path = _config_dir() / "sovra.toml"
    path.write_bytes(data)
    Config.load(path)


@cache
def _app_client():  # pragma: no cover - shared by the body target only
    from fastapi.testclient import TestClient

    from sovra.deployment import Deployment
    from sovra.server import create_app

    root = Path(tempfile.mkdtemp(prefix="sovra-fuzz-app-")) / "deployment"
    Deployment.init(root, origin="sovra.test/fuzz", custodians="in-process")
    return TestClient(create_app(Deployment.open(root)))


BODY_ROUTES = (
    "/v1/records",
    "/v1/access",
    "/v1/grants",
    "/v1/subjects/report",
    "/v1/policy/activate",
    "/v1/sealed/prepare",
    "/v1/sealed/records",
    "/v1/sealed/access",
    "/v1/log/cosignatures",
)


class ServerError(AssertionError):
    """The application answered 5xx, or in another format than sovra's."""


def body(data: bytes) -> None:
    """A request body, through the whole HTTP stack: limits, parser, models, handlers.

    The first byte picks the route and the content type; the request carries no token,
    so it is answered by the body checks (400, 413) or, for a well-formed body, 401.
    """
    client = _app_client()
    pick = data[0] if data else 0
    path = BODY_ROUTES[pick % len(BODY_ROUTES)]
    content_type = ("application/json", "text/plain", None)[(pick // 16) % 3]
    headers = {"content-type": content_type} if content_type else {}
    response = client.post(path, content=data[1:], headers=headers)
    if response.status_code >= 500:
        raise ServerError(f"{path}: {response.status_code} {response.text[:200]}")
    if response.status_code >= 400:
        answer = response.json()
        if set(answer) - {"log_index"} != {"error", "message"}:
            raise ServerError(f"{path}: not sovra's error format: {answer}")


# target name -> (function, the errors it may raise)
TARGETS: dict[str, tuple[Callable[[bytes], None], Allowed]] = {
    "token": (token, (Unauthenticated,)),
    "note": (note, (BadRequest, VerificationError)),
    "vkey": (vkey, (BadRequest,)),
    "checkpoint": (checkpoint, (BadRequest, VerificationError)),
    "tile_path": (tile_path, (BadRequest, NotFound)),
    "tile": (tile, (BadRequest, IntegrityError)),
    "grant": (grant, (BadRequest,)),
    "pack": (pack, (BadRequest,)),
    "envelope": (pack_envelope, (BadRequest,)),
    "justification": (justification, (BadRequest,)),
    "record_header": (record_header, (BadRequest,)),
    "log_entry": (log_entry, (BadRequest,)),
    "receipt": (receipt, (BadRequest, VerificationError)),
    "transport_pins": (transport_pins, (BadRequest,)),
    "stream": (stream, (IntegrityError, PayloadTooLarge)),
    "config": (config, (ConfigError,)),
    "body": (body, ()),
}


def run(name: str, data: bytes) -> None:
    """Run target *name* on *data*; re-raise anything but the errors it may raise."""
    function, allowed = TARGETS[name]
    with contextlib.suppress(allowed):
        function(data)


def seeds(name: str) -> list[bytes]:
    """The corpus of target *name*: inputs that reach deep into its parser."""
    folder = CORPUS / name
    if not folder.is_dir():
        return []
    return [p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()]


def write_seeds() -> None:  # pragma: no cover - run once to lay down the starting corpus
    """Write one or more valid inputs per target, so fuzzing starts from the real shapes."""
    key, log = _keys()
    now = NOW
    good_token = make_token(key, "svc-pl", "GET", "/v1/policy", b"", now_s=now)
    claims = base64.urlsafe_b64decode(good_token.split(".")[1] + "==")
    cp = Checkpoint("sovra.test/log", 3, bytes(32))
    grant_obj = Grant(
        "g-1", "authority-us", "US", "PL", ("anna",), "foreign-legal-process", "MLAT", 0, 1 << 40
    )
    samples = {
        "token": [good_token.encode(), claims],
        "note": [sign_note("hello\n", [log]).encode()],
        "vkey": [log.vkey.encode()],
        "checkpoint": [sign_note(cp.to_text(), [log]).encode(), cp.to_text().encode()],
        "tile_path": [b"tile/0/000", b"tile/entries/x001/234.p/7", b"tile/2/x001/000"],
        "tile": [b"\x01" + bytes(64), b"\x00" + b"\x00\x05hello"],
        "grant": [grant_obj.to_json()],
        "pack": [shipped_bundle("gdsi").to_bytes()],
        "envelope": [
            Envelope(b"{}", (("PL", b"s" * 64),), "application/vnd.sovra.pack+json").to_json()
        ],
        "justification": [b"customer-initiated-support", b"domestic-legal-process"],
        "record_header": [_HEADER.to_bytes().removeprefix(b"sovra-record\n")],
        "stream": [envelope.seal(_HEADER, b"hello")[0]],
        "config": [
            b'[deployment]\norigin = "x/y"\n[limits]\nmax_body_bytes = 10\n'
            b'[jurisdictions.PL]\nregions = ["eu"]\npurposes = ["billing"]\n'
        ],
        "body": [
            b'\x00{"subject_id":"anna","jurisdiction":"PL","content":"hi"}',
            b'\x01{"purpose":"billing","record_ids":["r-1"]}',
        ],
    }
    for name, inputs in samples.items():
        folder = CORPUS / name
        folder.mkdir(parents=True, exist_ok=True)
        for data in inputs:
            (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


if __name__ == "__main__":  # pragma: no cover
    os.chdir(Path(__file__).parent)
    write_seeds()
    print(f"seeds written under {CORPUS} at {time.strftime('%Y-%m-%d')}")
