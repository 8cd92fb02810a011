"""Bearer JWTs from an OpenID Connect issuer, against a real JWKS served over HTTP.

The issuer here is a small HTTP server on loopback serving a JWKS of keys made for the
test (RSA, P-256, Ed25519); tokens are signed with PyJWT as an identity provider would.
Requests go through the real application (body limits, direct routes, error handlers).
Every refusal is a 401 with its own reason, and leaves the transparency log as it was.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from tests.server.conftest import Serve, logged, run_shell, shell_block

from sovra.auth import make_token
from sovra.client import Client
from sovra.config import Config
from sovra.deployment import Deployment
from sovra.errors import ConfigError
from sovra.keys.files import load_ed25519
from sovra.model import LogEntry
from sovra.oidc import READS
from sovra.server import create_app

AUDIENCE = "sovra"
PurePrivate = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Issuer:
    """An identity provider: signing keys by kid, and its JWKS served over HTTP."""

    url: str = ""
    keys: dict[str, tuple[str, PurePrivate]] = field(default_factory=dict)
    published: list[str] = field(default_factory=list)
    fetches: int = 0
    up: bool = True

    @property
    def issuer(self) -> str:
        return f"{self.url}/realms/test"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/realms/test/certs"

    def add(self, kid: str, alg: str, key: PurePrivate, *, publish: bool = True) -> None:
        self.keys[kid] = (alg, key)
        if publish:
            self.published.append(kid)

    def jwks(self) -> dict[str, Any]:
        out = []
        for kid in self.published:
            alg, key = self.keys[kid]
            make = {"RS256": RSAAlgorithm, "ES256": ECAlgorithm, "EdDSA": OKPAlgorithm}[alg]
            jwk = make.to_jwk(key.public_key(), as_dict=True)
            out.append({**jwk, "kid": kid, "alg": alg, "use": "sig"})
        return {"keys": out}

    def token(
        self, kid: str = "rsa-1", *, headers: dict[str, Any] | None = None, **claims: Any
    ) -> str:
        alg, key = self.keys[kid]
        now = int(time.time())
        body = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": "crm-backend",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "roles": ["offline_access", "crm-service"],
            "sovra_jurisdiction": "PL",
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key, algorithm=alg, headers={"kid": kid, **(headers or {})})


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with run_issuer() as idp:
        yield idp


@contextmanager
def run_issuer() -> Iterator[Issuer]:
    """An issuer with an RSA, a P-256 and an Ed25519 key, its JWKS served on loopback."""
    idp = Issuer()
    idp.add("rsa-1", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    idp.add("ec-1", "ES256", ec.generate_private_key(ec.SECP256R1()))
    idp.add("ed-1", "EdDSA", ed25519.Ed25519PrivateKey.generate())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/realms/test/certs" or not idp.up:
                self.send_error(404 if idp.up else 503)
                return
            idp.fetches += 1
            body = json.dumps(idp.jwks()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    idp.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield idp
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def oidc_table(idp: Issuer, **more: str) -> str:
    """The ``[auth.oidc]`` table for *idp*: roles from the ``roles`` claim (the IdP's
    ``crm-service`` is sovra's service role), the jurisdiction from ``sovra_jurisdiction``."""
    lines = [
        "[auth.oidc]",
        f'issuer = "{idp.issuer}"',
        f'audience = "{AUDIENCE}"',
        f'jwks_url = "{idp.jwks_url}"',
        'role_claim = "roles"',
        'jurisdiction_claim = "sovra_jurisdiction"',
        'jurisdictions = ["PL", "DE"]',
        *(f"{k} = {v}" for k, v in more.items()),
        "[auth.oidc.role_values]",
        '"crm-service" = "service"',
        '"data-analyst" = "analyst"',
    ]
    return "\n" + "\n".join(lines) + "\n"


def with_oidc(root: Path, idp: Issuer, **more: str) -> Path:
    with (root / "sovra.toml").open("a", encoding="utf-8") as f:
        f.write(oidc_table(idp, **more))
    return root


@pytest.fixture
def dep(root: Path, issuer: Issuer) -> Iterator[Deployment]:
    d = Deployment.open(with_oidc(root, issuer))
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def http(dep: Deployment) -> Iterator[TestClient]:
    with TestClient(create_app(dep), raise_server_exceptions=True) as client:
        yield client


def _signed_ingest(http: TestClient, dep: Deployment) -> str:
    body = json.dumps(
        {"subject_id": "anna@example.pl", "jurisdiction": "PL", "content": "tel. 601 234 567"}
    ).encode()
    token = make_token(
        dep.principal_key("svc-pl"), "svc-pl", "POST", "/v1/records", body, now_s=int(time.time())
    )
    r = http.post(
        "/v1/records",
        content=body,
        headers={"authorization": f"Sovra {token}", "content-type": "application/json"},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["record_id"])


def _read(http: TestClient, token: str, record: str, scheme: str = "Bearer") -> Any:
    return http.post(
        "/v1/access",
        json={"purpose": "customer-support", "record_ids": [record]},
        headers={"authorization": f"{scheme} {token}"},
    )


@pytest.mark.parametrize("kid", ["rsa-1", "ec-1", "ed-1"])
def test_a_token_from_the_issuer_reads_as_its_mapped_principal(http, dep, issuer, kid):
    record = _signed_ingest(http, dep)
    r = _read(http, issuer.token(kid), record)
    assert r.status_code == 200, r.text
    assert r.json()["decision"]["effect"] == "allow"
    assert r.json()["records"] == {record: "tel. 601 234 567"}
    decision = LogEntry.from_bytes(dep.gateway.log.entry(r.json()["log_index"]))
    assert (decision.kind, decision.principal) == ("decision", "oidc:crm-backend")
    # The same bearer token works again until it expires: it binds no request.
    assert _read(http, issuer.token(kid), record).status_code == 200


def test_the_scheme_name_is_case_insensitive_and_a_get_reads(http, dep, issuer):
    record = _signed_ingest(http, dep)
    assert _read(http, issuer.token(), record, scheme="bearer").status_code == 200
    r = http.get("/v1/policy", headers={"authorization": f"Bearer {issuer.token()}"})
    assert r.status_code in (200, 403), r.text  # authenticated: the policy decides


def _none_token(issuer: Issuer) -> str:
    good = issuer.token()
    _, payload, _ = good.split(".")
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "rsa-1"}).encode())
    return f"{header}.{payload}."


def _hs256_with_public_key(issuer: Issuer) -> str:
    # The classic confusion: the RSA public key (which anyone can fetch) as an HMAC secret.
    _, key = issuer.keys["rsa-1"]
    secret = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    _, payload, _ = issuer.token().split(".")
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(mac)}"


def _tampered_signature(issuer: Issuer) -> str:
    head, payload, sig = issuer.token().split(".")
    middle = len(sig) // 2
    flipped = "A" if sig[middle] != "A" else "B"
    return f"{head}.{payload}.{sig[:middle]}{flipped}{sig[middle + 1 :]}"


def _tampered_claims(issuer: Issuer) -> str:
    # A valid analyst's token whose claims were rewritten to another jurisdiction.
    head, payload, sig = issuer.token().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sovra_jurisdiction"] = "DE"
    return f"{head}.{_b64(json.dumps(claims).encode())}.{sig}"


def _alg_of_another_key(issuer: Issuer) -> str:
    # Signed with the RSA key, but naming the EC key's kid.
    return issuer.token("rsa-1", headers={"kid": "ec-1"})


def _refused_cases(issuer: Issuer) -> list[tuple[str, str, str | re.Pattern[str]]]:
    """(case, token, the message: exact, or a pattern where it counts seconds)."""
    now = int(time.time())
    other = Issuer(url="https://elsewhere.example")
    return [
        (
            "wrong issuer",
            issuer.token(iss=other.issuer),
            "bearer token not issued by " + issuer.issuer,
        ),
        (
            "wrong audience",
            issuer.token(aud="another-api"),
            "bearer token not meant for audience 'sovra'",
        ),
        (
            "expired",
            issuer.token(iat=now - 700, nbf=now - 700, exp=now - 400),
            re.compile(r"bearer token expired 4[0-9][0-9] s ago"),
        ),
        ("not yet valid", issuer.token(nbf=now + 600), "bearer token not valid yet (nbf)"),
        (
            "issued in the future",
            issuer.token(iat=now + 600, nbf=None, exp=now + 900),
            "bearer token issued in the future: check the issuer's clock",
        ),
        ("no exp", issuer.token(exp=None), "bearer token has no 'exp' claim"),
        (
            "alg none",
            _none_token(issuer),
            "bearer token algorithm 'none' not accepted (only RS256, PS256, ES256, EdDSA)",
        ),
        (
            "HS256 with the public key",
            _hs256_with_public_key(issuer),
            "bearer token algorithm 'HS256' not accepted (only RS256, PS256, ES256, EdDSA)",
        ),
        (
            "tampered signature",
            _tampered_signature(issuer),
            "bearer token signature does not verify",
        ),
        ("tampered claims", _tampered_claims(issuer), "bearer token signature does not verify"),
        (
            "alg of another key",
            _alg_of_another_key(issuer),
            "bearer token algorithm refused: Token algorithm 'RS256' does not match the key's "
            "algorithm 'ES256'",
        ),
        (
            "no kid",
            jwt.encode({"sub": "x"}, issuer.keys["rsa-1"][1], algorithm="RS256"),
            "bearer token names no key (kid)",
        ),
        ("oversized", issuer.token(padding="x" * 9000), "bearer token longer than 8192 bytes"),
        ("not a JWT", "not-a-jwt", "malformed bearer token: not a JWS compact JWT"),
        (
            "no role",
            issuer.token(roles=["offline_access"]),
            "bearer token's 'roles' must give exactly one of service, analyst, auditor; it gives 0",
        ),
        (
            "two roles",
            issuer.token(roles=["crm-service", "data-analyst"]),
            "bearer token's 'roles' must give exactly one of service, analyst, auditor; it gives 2",
        ),
        (
            "a jurisdiction not allowed",
            issuer.token(sovra_jurisdiction="US"),
            "bearer token's 'sovra_jurisdiction' must be one of PL, DE",
        ),
        ("no subject", issuer.token(sub=None), "bearer token has no 'sub' claim to name it"),
        (
            "an unusable subject",
            issuer.token(sub="a b"),
            "bearer token's 'sub' is not a usable principal id",
        ),
    ]


def test_every_bad_token_is_a_precise_401_and_nothing_is_logged(http, dep, issuer):
    record = _signed_ingest(http, dep)
    size = dep.gateway.log.size
    for name, token, message in _refused_cases(issuer):
        r = _read(http, token, record)
        assert (name, r.status_code, r.json()["error"]) == (name, 401, "unauthenticated")
        said = r.json()["message"]
        assert message.fullmatch(said) if isinstance(message, re.Pattern) else said == message, (
            name,
            said,
        )
    assert dep.gateway.log.size == size
    assert dep.gateway.log.stored_size() == size


class Clock:
    """The deployment's clock, moved on by hand (it starts at the wall clock's time)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_an_unknown_kid_fetches_the_key_set_again_at_most_once_per_period(root, issuer):
    clock = Clock()
    dep = Deployment.open(with_oidc(root, issuer, jwks_refresh_s="60"), clock=clock)
    try:
        with TestClient(create_app(dep)) as http:
            record = _signed_ingest(http, dep)
            assert _read(http, issuer.token(), record).status_code == 200
            size, fetched = dep.gateway.log.size, issuer.fetches
            # A key the issuer has not published (yet): refused, and a flood of such
            # tokens fetches the set once in the period, not once per token.
            new = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            issuer.add("rsa-2", "RS256", new, publish=False)
            for _ in range(20):
                r = _read(http, issuer.token("rsa-2"), record)
                assert r.json()["message"] == (
                    "bearer token key 'rsa-2' is not in the issuer's key set"
                )
            assert issuer.fetches == fetched + 1
            # Published (a key rotation): still refused within the period, taken after it.
            issuer.published.append("rsa-2")
            clock.now += 59
            assert _read(http, issuer.token("rsa-2"), record).status_code == 401
            assert issuer.fetches == fetched + 1
            clock.now += 1
            assert _read(http, issuer.token("rsa-2"), record).status_code == 200
            assert issuer.fetches == fetched + 2
            assert dep.gateway.log.size == size + 2  # the allowed read: decision, release
    finally:
        dep.close()


def test_an_unreachable_issuer_is_503_with_retry_after(http, dep, issuer):
    record = _signed_ingest(http, dep)
    issuer.up = False
    r = _read(http, issuer.token(), record)
    assert r.status_code == 503
    assert r.headers["retry-after"] == "5"
    assert r.json()["message"] == "the sign-in issuer's key set cannot be fetched"


def test_a_bearer_token_may_not_write_unless_configured(http, dep, issuer):
    body = {"subject_id": "anna@example.pl", "jurisdiction": "PL", "content": "x"}
    before = (dep.gateway.log.size, dep.store.count_records())
    r = http.post("/v1/records", json=body, headers={"authorization": f"Bearer {issuer.token()}"})
    assert r.status_code == 401
    assert r.json()["message"] == (
        "a bearer token may only read here; sign POST /v1/records with a sovra token "
        "([auth.oidc] writes = false)"
    )
    r = http.post("/v1/grants", json={}, headers={"authorization": f"Bearer {issuer.token()}"})
    assert r.status_code == 401
    assert (dep.gateway.log.size, dep.store.count_records()) == before


def test_with_writes_a_bearer_token_stores(root, issuer):
    dep = Deployment.open(with_oidc(root, issuer, writes="true"))
    try:
        with TestClient(create_app(dep)) as http:
            body = {"subject_id": "anna@example.pl", "jurisdiction": "PL", "content": "x"}
            headers = {"authorization": f"Bearer {issuer.token()}"}
            r = http.post("/v1/records", json=body, headers=headers)
            assert r.status_code == 201, r.text
            entry = LogEntry.from_bytes(dep.gateway.log.entry(r.json()["log_index"]))
            assert (entry.kind, entry.principal) == ("ingest", "oidc:crm-backend")
    finally:
        dep.close()


def test_every_post_route_a_bearer_token_may_call_only_reads(http, dep, issuer):
    """The routes a bearer token may POST to are the reading ones, and every other POST
    route of the API is refused to it (so a new write route is refused by default)."""
    spec = http.get("/openapi.json").json()
    # The POST routes that take a credential (a witness's cosignature authenticates itself).
    posts = {p for p, ops in spec["paths"].items() if ops.get("post", {}).get("security")}
    assert {p for _, p in READS} <= posts
    token = issuer.token()
    for path in sorted(posts - {p for _, p in READS}):
        r = http.post(
            path.replace("{grant_id}", "g-1"),
            content=b"{}",
            headers={"authorization": f"Bearer {token}"},
        )
        assert r.status_code == 401, path
        assert r.json()["message"].startswith("a bearer token may only read here"), path


def test_a_deployment_without_an_issuer_refuses_bearer_tokens(root, issuer):
    dep = Deployment.open(root)
    try:
        with TestClient(create_app(dep)) as http:
            r = _read(http, issuer.token(), "r-1")
    finally:
        dep.close()
    assert r.status_code == 401
    assert r.json()["message"] == (
        "this deployment takes no bearer tokens (no [auth.oidc] issuer): "
        "sign the request with a sovra token"
    )


def test_another_scheme_is_a_bad_request(http):
    r = http.post("/v1/access", json={}, headers={"authorization": "Basic dXNlcjpwYXNz"})
    assert (r.status_code, r.json()["message"]) == (
        400,
        "Authorization scheme must be 'Sovra <token>' or 'Bearer <jwt>'",
    )


# -- configuration ------------------------------------------------------------------------


BASE = """
[deployment]
origin = "sovra.test/oidc"
[jurisdictions.PL]
regions = ["eu-central-pl"]
purposes = ["customer-support"]
[jurisdictions.DE]
regions = ["eu-central-de"]
purposes = ["customer-support"]
[auth.oidc]
issuer = "https://login.example.org/realms/sovra"
audience = "sovra"
jwks_url = "https://login.example.org/realms/sovra/protocol/openid-connect/certs"
"""


def test_a_minimal_table_reads_with_its_defaults():
    oidc = Config.from_text(BASE + 'role = "analyst"\njurisdiction = "PL"\n', "t").oidc
    assert oidc is not None
    assert (oidc.algorithms, oidc.jurisdictions, oidc.writes, oidc.principal_prefix) == (
        ("RS256", "PS256", "ES256", "EdDSA"),
        ("PL", "DE"),
        False,
        "oidc:",
    )


@pytest.mark.parametrize(
    ("more", "message"),
    [
        ('role = "analyst"\n', "[auth.oidc] needs jurisdiction or jurisdiction_claim"),
        (
            'jurisdiction = "PL"\n',
            "[auth.oidc] needs role (the same for every caller) or role_claim",
        ),
        (
            'role = "analyst"\njurisdiction = "PL"\nalgorithms = ["RS256", "HS256"]\n',
            "[auth.oidc] algorithms HS256 refused: only asymmetric signatures",
        ),
        (
            'role = "analyst"\njurisdiction = "PL"\nalgorithms = ["none"]\n',
            "[auth.oidc] algorithms none refused: only asymmetric signatures",
        ),
        (
            'role = "subject"\njurisdiction = "PL"\nroles = ["subject"]\n',
            "[auth.oidc] roles: one of",
        ),
        (
            'role = "operator"\njurisdiction = "PL"\n',
            "[auth.oidc] role 'operator' is not one of roles",
        ),
        (
            'role = "analyst"\njurisdiction = "US"\n',
            "[auth.oidc] jurisdiction 'US' is not one of jurisdictions",
        ),
        (
            'role = "analyst"\njurisdiction = "PL"\njurisdictions = ["US"]\n',
            "[auth.oidc] jurisdictions: only jurisdictions configured here",
        ),
        (
            'role = "analyst"\njurisdiction = "PL"\nleeway_s = 3600\n',
            "[auth.oidc] leeway_s is at most 300",
        ),
        (
            'role = "analyst"\njurisdiction = "PL"\nwrites = "yes"\n',
            "[auth.oidc] writes must be true or false",
        ),
        (
            'role = "analyst"\njurisdiction = "PL"\nprincipal_prefix = "-x"\n',
            "[auth.oidc] principal_prefix: a letter or digit",
        ),
        (
            'role = "analyst"\njurisdiction = "PL"\nsecret = "x"\n',
            "[auth.oidc] has unknown key(s) secret",
        ),
    ],
)
def test_a_bad_table_is_refused_naming_the_setting(more, message):
    with pytest.raises(ConfigError) as refused:
        Config.from_text(BASE + more, "sovra.toml")
    assert refused.value.message.startswith(f"sovra.toml: {message}")


def test_the_key_set_must_come_over_https_except_on_loopback():
    plain = BASE.replace(
        "https://login.example.org/realms/sovra/protocol", "http://login.example.org"
    )
    with pytest.raises(ConfigError, match="jwks_url must be https://"):
        Config.from_text(plain + 'role = "analyst"\njurisdiction = "PL"\n', "t")
    local = BASE.replace("https://login.example.org/realms/sovra/protocol", "http://127.0.0.1:8080")
    assert Config.from_text(local + 'role = "analyst"\njurisdiction = "PL"\n', "t").oidc


# -- with curl, against sovra serve ------------------------------------------------------

API_DOC = Path(__file__).parents[2] / "docs" / "api.md"
MARKER = "<!-- the test tests/server/test_server_oidc.py runs this block"


def test_a_token_from_the_issuer_works_with_curl_against_sovra_serve(
    tools: None, root: Path, issuer: Issuer, serve: Serve, tmp_path: Path
) -> None:
    script = shell_block(API_DOC, MARKER)
    with serve(with_oidc(root, issuer)) as url:
        with Client(url, "svc-pl", load_ed25519(root / "principals" / "svc-pl.key")) as svc:
            record = svc.ingest("anna@example.pl", "PL", "tel. 601 234 567")["record_id"]

        def curl(token: str) -> subprocess.CompletedProcess[str]:
            return run_shell(script, {"SOVRA_URL": url, "TOKEN": token, "RECORD": record}, tmp_path)

        read = curl(issuer.token("ed-1"))
        refused = curl(issuer.token("ed-1", aud="another-api"))
    assert read.returncode == 0, read.stderr
    answer = json.loads(read.stdout)
    assert answer["decision"]["effect"] == "allow"
    assert answer["records"] == {record: "tel. 601 234 567"}
    assert refused.returncode != 0
    assert json.loads(refused.stdout) == {
        "error": "unauthenticated",
        "message": "bearer token not meant for audience 'sovra'",
    }
    entries = logged(root)
    assert [(e.kind, e.principal) for e in entries] == [
        ("ingest", "svc-pl"),
        ("decision", "oidc:crm-backend"),
        ("key_release", "oidc:crm-backend"),
    ]
