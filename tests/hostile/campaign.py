"""The hostile-input campaign: named cases sent over real HTTP, every answer recorded.

Each case is one class (what kind of attack) and one name, and sends raw bytes to a
running gateway (:mod:`hostile_wire`). The campaign records each status code; the
promise it checks is that no answer is a 5xx and no request goes unanswered (a hang),
and that no refused request left a record behind.

Run it alone for the table in docs/reliability.md::

    .venv/bin/python tests/hostile/campaign.py
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hostile_wire import SURROGATE_GRANT, Answer, request_bytes, send

from sovra.auth import make_token
from sovra.model import canonical_json

WHO = "svc-pl"
"""Every signed case signs as this service, so a refusal is never just a missing role."""


@dataclass(frozen=True)
class Probe:
    """What one case sends: requests in order; the last one's answer is the case's."""

    requests: tuple[bytes, ...]
    then: tuple[bytes, ...] = ()
    pause_s: float = 0.0
    expect: frozenset[int] | None = None  # when the case knows its answer exactly
    lines: tuple[int, ...] | None = None  # a batch's: the status of each line, in order


@dataclass(frozen=True)
class Case:
    klass: str
    name: str
    build: Callable[[Ctx], Probe]


@dataclass
class Ctx:
    """What a case may use: the signing key, fresh tokens, the body limit."""

    key: Ed25519PrivateKey
    max_body: int
    now: Callable[[], int] = lambda: int(time.time())

    def token(self, method: str, path: str, body: bytes = b"", **kw: Any) -> str:
        return make_token(self.key, kw.pop("who", WHO), method, path, body, now_s=self.now(), **kw)

    def signed(
        self, method: str, path: str, body: bytes = b"", *, headers: dict | None = None
    ) -> bytes:
        token = self.token(method, path, body)
        return request_bytes(
            method, path, body, headers={"authorization": f"Sovra {token}", **(headers or {})}
        )


@dataclass
class Report:
    """The outcome of a campaign."""

    statuses: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    cases: Counter = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    ingested: int = 0

    def table(self) -> dict[str, Any]:
        return {
            "cases": sum(self.cases.values()),
            "responses_5xx": len(self.server_errors),
            "hangs": len(self.hangs),
            "by_class": {
                k: {
                    "cases": self.cases[k],
                    "statuses": dict(sorted(self.statuses[k].items(), key=lambda i: str(i[0]))),
                }
                for k in sorted(self.cases)
            },
        }


# -- the routes ------------------------------------------------------------------------------

SIGNED_POST = {
    "/v1/records": {"subject_id": "anna", "jurisdiction": "PL", "content": "hello"},
    "/v1/access": {"purpose": "billing", "record_ids": ["r-0"]},
    "/v1/grants": {"grant_id": "g-1"},
    "/v1/subjects/report": {"jurisdiction": "PL", "subject_id": "anna"},
    "/v1/policy/activate": {"payloadType": "x", "payload": "", "signatures": []},
    "/v1/sealed/prepare": {"jurisdiction": "PL", "subject_id": "anna"},
    "/v1/sealed/records": {
        "header": "",
        "expires_ms": 0,
        "ticket": "0" * 64,
        "blob": "",
        "key_envelope": "",
    },
    "/v1/sealed/access": {"purpose": "billing", "record_ids": ["r-0"], "recipient": ""},
    "/v1/grants/g-1/revoke": None,
}
SIGNED_GET = [
    "/v1/policy",
    "/v1/policy/reviews",
    "/v1/policy/alerts",
    "/v1/grants/g-1",
    "/v1/decisions/d-1/explain",
]
PUBLIC_GET = [
    "/v1/info",
    "/v1/log/checkpoint",
    "/v1/log/checkpoints",
    "/v1/log/key",
    "/v1/log/checkpoint/cosigned",
    "/v1/sealed/custodians",
    "/v1/policy/metrics",
    "/v1/log/entries?start=0&end=1",
    "/v1/log/proof/inclusion?index=0&size=1",
    "/v1/log/proof/consistency?old=1&new=1",
    "/v1/log/tile/0/000",
]
INGESTS = {"/v1/records", "/v1/sealed/records"}
NDJSON = "application/x-ndjson"
BATCH_POST = {
    "/v1/records/batch": SIGNED_POST["/v1/records"],
    "/v1/access/batch": SIGNED_POST["/v1/access"],
}
"""Batch routes: their body is JSON lines, here one line of the single route's body."""
BATCH_INGEST = "/v1/records/batch"


def _media(path: str) -> dict[str, str]:
    """The content type a route's body is sent with, when it is not JSON."""
    return {"content-type": NDJSON} if path in BATCH_POST else {}


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _raw_token(claims: bytes, signature: bytes = b"s" * 64) -> str:
    return f"v1.{_b64u(claims)}.{_b64u(signature)}"


def _claims(**over: Any) -> dict[str, Any]:
    base = {
        "sub": WHO,
        "htm": "GET",
        "htu": "/v1/policy",
        "bh": hashlib.sha256(b"").hexdigest(),
        "iat": int(time.time()),
        "exp": int(time.time()) + 60,
        "nonce": _b64u(os.urandom(16)),
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not ...}


# -- the cases -------------------------------------------------------------------------------


def _token_faults() -> dict[str, Callable[[Ctx, str, str, bytes], str | None]]:
    """Each way a token can be wrong: (ctx, method, path, body) -> Authorization value."""
    forger = Ed25519PrivateKey.generate()

    def signed_by(key: Ed25519PrivateKey, who: str = WHO, **kw: Any) -> Callable[..., str]:
        return lambda c, m, p, b: "Sovra " + make_token(key, who, m, p, b, now_s=c.now(), **kw)

    def claims(**over: Any) -> Callable[..., str]:
        return lambda c, m, p, b: (
            "Sovra "
            + _raw_token(
                canonical_json(_claims(htm=m, htu=p, bh=hashlib.sha256(b).hexdigest(), **over))
            )
        )

    return {
        "missing": lambda c, m, p, b: None,
        "empty": lambda c, m, p, b: "",
        "scheme Bearer": lambda c, m, p, b: "Bearer " + c.token(m, p, b),
        "scheme only": lambda c, m, p, b: "Sovra",
        "garbage": lambda c, m, p, b: "Sovra not-a-token",
        "version 2": lambda c, m, p, b: "Sovra v2" + c.token(m, p, b)[2:],
        "two parts": lambda c, m, p, b: "Sovra v1." + _b64u(b"{}"),
        "four parts": lambda c, m, p, b: "Sovra " + c.token(m, p, b) + ".x",
        "claims not base64": lambda c, m, p, b: "Sovra v1.!!!.AAAA",
        "claims not JSON": lambda c, m, p, b: "Sovra " + _raw_token(b"{not json"),
        "claims a list": lambda c, m, p, b: "Sovra " + _raw_token(b"[1,2,3]"),
        "claims nested 1400": lambda c, m, p, b: "Sovra " + _raw_token(b"[" * 1400),
        "claims nested 60 objects": lambda c, m, p, b: (
            "Sovra " + _raw_token(b'{"a":' * 60 + b"1" + b"}" * 60)
        ),
        "claims huge integer": lambda c, m, p, b: (
            "Sovra " + _raw_token(b'{"iat":' + b"9" * 1300 + b"}")
        ),
        "claims NaN": claims(iat=float("nan")),
        "claims lone surrogate": lambda c, m, p, b: (
            "Sovra "
            + _raw_token(
                b'{"sub":"\\ud800","htm":"GET","htu":"/","bh":"","iat":1,"exp":2,"nonce":"n"}'
            )
        ),
        "claims not UTF-8": lambda c, m, p, b: "Sovra " + _raw_token(b'{"sub":"\xff"}'),
        "claims missing nonce": claims(nonce=...),
        "claims extra field": claims(admin=True),
        "claims wrong types": claims(iat="now", exp=[1]),
        "claims duplicate sub": lambda c, m, p, b: (
            "Sovra " + _raw_token(b'{"sub":"svc-pl","sub":"operator"}')
        ),
        "forged signature": signed_by(forger),
        "signature of other principal": signed_by(forger, who="authority-pl"),
        "unknown principal": signed_by(forger, who="nobody"),
        "principal id path traversal": signed_by(forger, who="../../etc/passwd"),
        "expired": lambda c, m, p, b: (
            "Sovra " + make_token(c.key, WHO, m, p, b, now_s=c.now() - 3600)
        ),
        "issued in the future": lambda c, m, p, b: (
            "Sovra " + make_token(c.key, WHO, m, p, b, now_s=c.now() + 3600)
        ),
        "lifetime a day": lambda c, m, p, b: (
            "Sovra " + make_token(c.key, WHO, m, p, b, now_s=c.now(), lifetime_s=86400)
        ),
        "made for another path": lambda c, m, p, b: "Sovra " + c.token(m, p + "x", b),
        "made for another method": lambda c, m, p, b: (
            "Sovra " + c.token("PUT" if m != "PUT" else "GET", p, b)
        ),
        "made for another body": lambda c, m, p, b: "Sovra " + c.token(m, p, b + b" "),
        "over 2048 chars": lambda c, m, p, b: "Sovra " + "v1." + "A" * 5000 + ".AA",
        "signature truncated": lambda c, m, p, b: "Sovra " + c.token(m, p, b)[:-10],
    }


def _routes() -> Iterator[tuple[str, str, bytes]]:
    for path, body in SIGNED_POST.items():
        yield "POST", path, b"" if body is None else json.dumps(body).encode()
    for path, body in BATCH_POST.items():
        yield "POST", path, json.dumps(body).encode() + b"\n"
    for path in SIGNED_GET:
        yield "GET", path, b""


def _token_cases() -> Iterator[Case]:
    faults = _token_faults()
    for method, path, body in _routes():
        for fault, make in faults.items():

            def build(c: Ctx, m=method, p=path, b=body, make=make) -> Probe:
                value = make(c, m, p, b)
                headers = _media(p) | ({} if value is None else {"authorization": value})
                return Probe(
                    (request_bytes(m, p, b, headers=headers),), expect=frozenset({400, 401})
                )

            yield Case("bad tokens", f"{fault}: {method} {path}", build)


def _replay_cases() -> Iterator[Case]:
    for method, path, body in _routes():

        def build(c: Ctx, m=method, p=path, b=body) -> Probe:
            once = c.signed(m, p, b, headers=_media(p))
            return Probe((once, once))

        yield Case("replay", f"replayed token: {method} {path}", build)


def _method_cases() -> Iterator[Case]:
    for method, path, body in _routes():
        for wrong in ("PUT", "DELETE", "PATCH", "GET" if method == "POST" else "POST"):

            def build(c: Ctx, w=wrong, p=path, b=body) -> Probe:
                return Probe((c.signed(w, p, b),), expect=frozenset({405}))

            yield Case("wrong methods", f"{wrong} {path}", build)
    for path in PUBLIC_GET:
        for wrong in ("DELETE", "PUT"):
            yield Case(
                "wrong methods",
                f"{wrong} {path}",
                lambda c, w=wrong, p=path: Probe((request_bytes(w, p),), expect=frozenset({405})),
            )
    for odd in ("TRACE", "CONNECT", "PROPFIND", "FOO"):
        yield Case(
            "wrong methods",
            f"{odd} /v1/records",
            lambda c, o=odd: Probe((request_bytes(o, "/v1/records"),)),
        )


def _header_cases() -> Iterator[Case]:
    def big_header(c: Ctx) -> Probe:
        return Probe((c.signed("GET", "/v1/policy", headers={"x-filler": "a" * 100_000}),))

    def many_headers(c: Ctx) -> Probe:
        extra = {f"x-h{i}": "v" for i in range(2000)}
        return Probe((c.signed("GET", "/v1/policy", headers=extra),))

    def long_url(c: Ctx) -> Probe:
        return Probe((request_bytes("GET", "/v1/grants/" + "g" * 100_000),))

    def long_query(c: Ctx) -> Probe:
        return Probe((request_bytes("GET", "/v1/log/entries?start=0&end=1&" + "x=1&" * 20_000),))

    def huge_token(c: Ctx) -> Probe:
        return Probe(
            (
                request_bytes(
                    "GET", "/v1/policy", headers={"authorization": "Sovra " + "A" * 60_000}
                ),
            )
        )

    def two_tokens(c: Ctx) -> Probe:
        t = c.token("GET", "/v1/policy")
        raw = request_bytes("GET", "/v1/policy", headers={"authorization": f"Sovra {t}"})
        return Probe(
            (raw.replace(b"\r\n\r\n", f"\r\nauthorization: Sovra {t}\r\n\r\n".encode(), 1),)
        )

    def non_ascii_header(c: Ctx) -> Probe:
        return Probe(
            (
                request_bytes(
                    "GET", "/v1/policy", headers={"authorization": "Sovra v1.\u00e9\u00e9.x"}
                ),
            )
        )

    def nul_in_header(c: Ctx) -> Probe:
        return Probe((request_bytes("GET", "/v1/policy", headers={"x-a": "a\x00b"}),))

    def no_host(c: Ctx) -> Probe:
        return Probe((b"GET /v1/info HTTP/1.1\r\n\r\n",))

    def http10(c: Ctx) -> Probe:
        return Probe((b"GET /v1/info HTTP/1.0\r\n\r\n",))

    def bad_request_line(c: Ctx) -> Probe:
        return Probe((b"GET\r\n\r\n",))

    def bad_version(c: Ctx) -> Probe:
        return Probe((b"GET /v1/info HTTP/9.9\r\nhost: x\r\n\r\n",))

    def folded_header(c: Ctx) -> Probe:
        return Probe((b"GET /v1/info HTTP/1.1\r\nhost: x\r\nx-a: b\r\n c\r\n\r\n",))

    def content_type_garbage(c: Ctx) -> Probe:
        body = json.dumps(SIGNED_POST["/v1/records"]).encode()
        return Probe(
            (c.signed("POST", "/v1/records", body, headers={"content-type": "\x01;;;=="}),)
        )

    def content_type_text(c: Ctx) -> Probe:
        body = json.dumps(SIGNED_POST["/v1/records"]).encode()
        return Probe(
            (c.signed("POST", "/v1/records", body, headers={"content-type": "text/plain"}),)
        )

    def content_type_form(c: Ctx) -> Probe:
        return Probe(
            (
                c.signed(
                    "POST",
                    "/v1/records",
                    b"a=1&b=2",
                    headers={"content-type": "application/x-www-form-urlencoded"},
                ),
            )
        )

    def content_type_multipart(c: Ctx) -> Probe:
        body = b"--x\r\ncontent-disposition: form-data; name=a\r\n\r\n1\r\n--x--\r\n"
        return Probe(
            (
                c.signed(
                    "POST",
                    "/v1/records",
                    body,
                    headers={"content-type": "multipart/form-data; boundary=x"},
                ),
            )
        )

    def content_encoding_gzip(c: Ctx) -> Probe:
        return Probe(
            (
                c.signed(
                    "POST",
                    "/v1/records",
                    b"\x1f\x8b\x08\x00garbage",
                    headers={"content-encoding": "gzip"},
                ),
            )
        )

    def expect_continue(c: Ctx) -> Probe:
        body = json.dumps(SIGNED_POST["/v1/access"]).encode()
        return Probe((c.signed("POST", "/v1/access", body, headers={"expect": "100-continue"}),))

    for name, f in list(locals().items()):
        if callable(f) and name not in ("c",):
            yield Case("headers", name.replace("_", " "), f)


def _bad_json_bodies() -> dict[str, bytes]:
    return {
        "not JSON": b"{not json",
        "truncated": b'{"subject_id": "a", "jurisd',
        "empty": b"",
        "null": b"null",
        "a list": b"[]",
        "a string": b'"x"',
        "a number": b"7",
        "nested 1400 arrays": b"[" * 1400 + b"]" * 1400,
        "nested 1400 unclosed": b"[" * 1400,
        "nested 40 objects": b'{"a":' * 40 + b"1" + b"}" * 40,
        "NaN": b'{"subject_id": NaN}',
        "Infinity": b'{"subject_id": -Infinity}',
        "5000-digit integer": b'{"x": ' + b"9" * 5000 + b"}",
        "duplicate field": b'{"purpose": "billing", "purpose": "marketing"}',
        "UTF-8 BOM": b"\xef\xbb\xbf{}",
        "UTF-16": '{"a": 1}'.encode("utf-16"),
        "invalid UTF-8": b'{"a": "\xc3\x28"}',
        "overlong UTF-8 slash": b'{"a": "\xc0\xaf"}',
        "trailing garbage": b'{"a": 1} xyz',
        "control char in string": b'{"a": "\x01"}',
        "lone high surrogate": b'{"a": "\\ud800"}',
        "lone low surrogate key": b'{"\\udc00": 1}',
        "huge array of numbers": b"[" + b"1," * 200_000 + b"1]",
    }


def _bad_json_cases() -> Iterator[Case]:
    bodies = _bad_json_bodies()
    for path, good in SIGNED_POST.items():
        if good is None:
            continue
        for what, body in bodies.items():
            yield Case(
                "bad JSON",
                f"{what}: POST {path}",
                lambda c, p=path, b=body: Probe(
                    (c.signed("POST", p, b),), expect=frozenset({400, 403, 404, 413})
                ),
            )


def _wrong_type_cases() -> Iterator[Case]:
    wrongs = {
        "null": None,
        "number": 7,
        "bool": True,
        "list": ["x"],
        "object": {"a": 1},
        "float": 1.5,
        "huge int": 10**40,
        "negative": -1,
    }
    for path, good in SIGNED_POST.items():
        if not good:
            continue
        for fld in good:
            for label, value in wrongs.items():
                if isinstance(good[fld], type(value)) and not isinstance(value, bool):
                    continue
                body = json.dumps({**good, fld: value}).encode()
                yield Case(
                    "wrong types",
                    f"{fld} as {label}: POST {path}",
                    lambda c, p=path, b=body: Probe((c.signed("POST", p, b),)),
                )


def _unicode_cases() -> Iterator[Case]:
    tricks = {
        "lone surrogate in content": ("/v1/records", "content", "\ud800"),
        "lone surrogate in subject": ("/v1/records", "subject_id", "a\udfff"),
        "lone surrogate in purpose": ("/v1/access", "purpose", "\ud83d"),
        "lone surrogate in record id": ("/v1/access", "record_ids", ["r-\ud800"]),
        "lone surrogate in ticket": ("/v1/sealed/records", "ticket", "\ud800" * 64),
        "non-ASCII ticket": ("/v1/sealed/records", "ticket", "\u00e9" * 64),
        "non-ASCII header b64": ("/v1/sealed/records", "header", "\u00e9\u00e9\u00e9\u00e9"),
        "non-ASCII recipient": ("/v1/sealed/access", "recipient", "\u0410" * 44),
        "Cyrillic jurisdiction": ("/v1/records", "jurisdiction", "\u0420L"),
        "fullwidth jurisdiction": ("/v1/records", "jurisdiction", "\uff30\uff2c"),
        "NUL in subject": ("/v1/records", "subject_id", "anna\x00admin"),
        "NUL in content": ("/v1/records", "content", "a\x00b"),
        "RTL override in subject": ("/v1/records", "subject_id", "anna\u202eadmin"),
        "zero-width in subject": ("/v1/records", "subject_id", "an\u200bna"),
        "combining marks in purpose": ("/v1/access", "purpose", "billing\u0301"),
        "emoji in subject": ("/v1/records", "subject_id", "\U0001f600"),
        "Turkish dotless i purpose": ("/v1/access", "purpose", "b\u0131lling"),
        "lone surrogate in grant id": ("/v1/grants", "grant_id", "\ud800"),
        "lone surrogate as field name": ("/v1/records", "\ud800", "x"),
        "lone surrogate in pack type": ("/v1/policy/activate", "payloadType", "\udbff"),
        "non-ASCII pack payload": ("/v1/policy/activate", "payload", "\u0080AAA"),
        "non-ASCII pack signature": (
            "/v1/policy/activate",
            "signatures",
            [{"keyid": "PL", "sig": "\u00e9" * 8}],
        ),
    }
    for name, (path, fld, value) in tricks.items():
        for escaped in (True, False):
            body = json.dumps({**(SIGNED_POST[path] or {}), fld: value}, ensure_ascii=escaped)
            data = body.encode("utf-8", "surrogatepass")
            how = "escaped" if escaped else "raw bytes"
            yield Case(
                "unicode tricks",
                f"{name} ({how})",
                lambda c, p=path, b=data: Probe((c.signed("POST", p, b),)),
            )
    grant_body = {**SURROGATE_GRANT, "grant_id": "g-u"}
    yield Case(
        "unicode tricks",
        "lone surrogate in a grant's legal basis",
        lambda c: Probe((c.signed("POST", "/v1/grants", json.dumps(grant_body).encode()),)),
    )
    yield Case(
        "unicode tricks",
        "lone surrogate in an access grant",
        lambda c: Probe(
            (
                c.signed(
                    "POST",
                    "/v1/access",
                    json.dumps(
                        {
                            "purpose": "foreign-legal-process",
                            "record_ids": ["r-1"],
                            "grant": grant_body,
                        }
                    ).encode(),
                ),
            )
        ),
    )


def _traversal_cases() -> Iterator[Case]:
    paths = [
        "/v1/grants/..%2F..%2Fetc%2Fpasswd",
        "/v1/grants/%2e%2e",
        "/v1/grants/g%00x",
        "/v1/grants/%ED%A0%80",
        "/v1/grants/%FF%FE",
        "/v1/decisions/..%2F..%2Fsovra.toml/explain",
        "/v1/decisions/%00/explain",
        "/v1/log/tile/../../sovra.toml",
        "/v1/log/tile/..%2F..%2Fsovra.toml",
        "/v1/log/tile/0/x../../../etc",
        "/v1/log/tile/entries/%2e%2e/%2e%2e",
        "/v1/log/tile/99/000",
        "/v1/log/tile/0/x999/999/999/999",
        "/v1/log/tile/0/000.p/0",
        "/v1/log/tile/0/000.p/300",
        "/docs-assets/../../../etc/passwd",
        "/docs-assets/%2e%2e/%2e%2e/etc/passwd",
        "//v1/info",
        "/v1/./info",
        "/v1/info/..",
    ]
    for p in paths:
        yield Case(
            "path traversal",
            f"GET {p}",
            lambda c, p=p: Probe((c.signed("GET", p),), expect=frozenset({400, 401, 404})),
        )
    for fld, value in [
        ("record_ids", ["../../../etc/passwd"]),
        ("record_ids", ["r-/../../sovra.db"]),
        ("record_ids", ["%2e%2e"]),
        ("record_ids", ["r-" + "a" * 5000]),
        ("jurisdiction", "../PL"),
    ]:
        body = json.dumps({"purpose": "billing", fld: value}).encode()
        yield Case(
            "path traversal",
            f"{fld} {str(value)[:30]} in access",
            lambda c, b=body: Probe((c.signed("POST", "/v1/access", b),)),
        )
    for subject in ["../../etc/passwd", "..\\..\\boot.ini", "/absolute", "a/b", "~root"]:
        body = json.dumps({"subject_id": subject, "jurisdiction": "PL", "content": "x"}).encode()
        yield Case(
            "path traversal",
            f"subject id {subject}",
            lambda c, b=body: Probe((c.signed("POST", "/v1/records", b),)),
        )


def _oversized_cases() -> Iterator[Case]:
    def field_of(path: str, fld: str, value: Any) -> Callable[[Ctx], Probe]:
        def build(c: Ctx) -> Probe:
            body = json.dumps({**(SIGNED_POST[path] or {}), fld: value}).encode()
            return Probe((c.signed("POST", path, body),))

        return build

    yield Case(
        "oversized fields",
        "content over the record limit",
        field_of("/v1/records", "content", "a" * 600_000),
    )
    yield Case(
        "oversized fields",
        "subject id of 100 kB",
        field_of("/v1/records", "subject_id", "s" * 100_000),
    )
    yield Case(
        "oversized fields", "purpose of 100 kB", field_of("/v1/records", "purpose", "p" * 100_000)
    )
    yield Case(
        "oversized fields",
        "100k record ids",
        field_of("/v1/access", "record_ids", ["r-x"] * 100_000),
    )
    yield Case(
        "oversized fields",
        "20k subjects",
        field_of(
            "/v1/access",
            "subjects",
            [{"jurisdiction": "PL", "subject_id": f"s{i}"} for i in range(20_000)],
        ),
    )
    yield Case(
        "oversized fields",
        "justification of 500 kB",
        field_of("/v1/access", "justification", "j" * 500_000),
    )
    yield Case(
        "oversized fields", "grant id of 200 kB", field_of("/v1/grants", "grant_id", "g" * 200_000)
    )
    yield Case(
        "oversized fields",
        "grant with 50k subjects",
        field_of("/v1/access", "grant", {"subjects": ["s"] * 50_000}),
    )
    yield Case(
        "oversized fields",
        "envelope of 900 kB",
        field_of("/v1/policy/activate", "payload", "A" * 900_000),
    )
    yield Case(
        "oversized fields",
        "sealed blob of 900 kB",
        field_of("/v1/sealed/records", "blob", "A" * 900_000),
    )
    yield Case(
        "oversized fields",
        "expires_ms of 10^40",
        field_of("/v1/sealed/records", "expires_ms", 10**40),
    )
    for name, query in [
        ("entries end 10^30", "/v1/log/entries?start=0&end=1000000000000000000000000000000"),
        ("entries start -1", "/v1/log/entries?start=-1&end=1"),
        ("entries 1001 at once", "/v1/log/entries?start=0&end=1001"),
        ("inclusion size 2^64", "/v1/log/proof/inclusion?index=0&size=18446744073709551616"),
        ("inclusion index beyond", "/v1/log/proof/inclusion?index=5&size=1"),
        ("consistency old > new", "/v1/log/proof/consistency?old=9&new=1"),
        ("consistency new 10^20", "/v1/log/proof/consistency?old=1&new=100000000000000000000"),
        ("entries start float", "/v1/log/entries?start=0.5&end=1"),
        ("entries repeated", "/v1/log/entries?start=0&start=1&end=2"),
        ("tile index 10^30", "/v1/log/tile/0/x1000/000/000/000/000/000/000/000/000/000"),
    ]:
        yield Case("oversized fields", name, lambda c, q=query: Probe((request_bytes("GET", q),)))


def _body_limit_cases() -> Iterator[Case]:
    def declared(n: str) -> Callable[[Ctx], Probe]:
        return lambda c: Probe((request_bytes("POST", "/v1/records", content_length=n),))

    yield Case("body limits", "Content-Length 10^12, no body", declared(str(10**12)))
    yield Case("body limits", "Content-Length 10^30, no body", declared(str(10**30)))
    yield Case("body limits", "Content-Length of 5000 digits", declared("9" * 5000))
    yield Case("body limits", "Content-Length negative", declared("-1"))
    yield Case("body limits", "Content-Length hex", declared("0x10"))
    yield Case(
        "body limits",
        "Content-Length limit+1",
        lambda c: Probe(
            (request_bytes("POST", "/v1/records", content_length=str(c.max_body + 1)),),
            expect=frozenset({413}),
        ),
    )

    def two_lengths(c: Ctx) -> Probe:
        raw = request_bytes("POST", "/v1/records", b"{}")
        return Probe((raw.replace(b"\r\n\r\n", b"\r\ncontent-length: 5\r\n\r\n", 1),))

    def length_and_chunked(c: Ctx) -> Probe:
        raw = request_bytes(
            "POST",
            "/v1/records",
            b"0\r\n\r\n",
            headers={"transfer-encoding": "chunked"},
            content_length="5",
        )
        return Probe((raw,))

    def chunked_over(c: Ctx) -> Probe:
        head = request_bytes("POST", "/v1/records", headers={"transfer-encoding": "chunked"})
        chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
        return Probe((head,), then=(chunk,) * (c.max_body // 65536 + 2), expect=frozenset({413}))

    def chunked_bad_size(c: Ctx) -> Probe:
        return Probe(
            (
                request_bytes(
                    "POST",
                    "/v1/records",
                    b"zz\r\nabc\r\n0\r\n\r\n",
                    headers={"transfer-encoding": "chunked"},
                ),
            )
        )

    def chunked_huge_size(c: Ctx) -> Probe:
        return Probe(
            (
                request_bytes(
                    "POST",
                    "/v1/records",
                    b"ffffffffffffffff\r\nabc",
                    headers={"transfer-encoding": "chunked"},
                ),
            )
        )

    def two_hundred_mb(c: Ctx) -> Probe:
        raw = c.signed("POST", "/v1/records").replace(
            b"content-length: 0", b"content-length: 200000000"
        )
        return Probe((raw + b" " * 65536,), expect=frozenset({413}))

    def slow_body(c: Ctx) -> Probe:
        return Probe(
            (request_bytes("POST", "/v1/records", b'{"a', content_length="64"),),
            expect=frozenset({408}),
        )

    def trickle(c: Ctx) -> Probe:
        head = request_bytes("POST", "/v1/records", content_length="400")
        return Probe((head,), then=(b" ",) * 12, pause_s=0.5, expect=frozenset({408}))

    def body_on_get(c: Ctx) -> Probe:
        return Probe((c.signed("GET", "/v1/policy", b'{"a":1}'),))

    def smuggle(c: Ctx) -> Probe:
        inner = request_bytes("POST", "/v1/records", b"{}")
        return Probe(
            (
                request_bytes(
                    "POST",
                    "/v1/info",
                    b"0\r\n\r\n" + inner,
                    headers={"transfer-encoding": "chunked"},
                ),
            )
        )

    for name, f in [
        ("two different Content-Lengths", two_lengths),
        ("Content-Length and chunked", length_and_chunked),
        ("chunked past the limit", chunked_over),
        ("chunk size not hex", chunked_bad_size),
        ("chunk size 2^64-1", chunked_huge_size),
        ("200 MB declared, 64 kB sent", two_hundred_mb),
        ("body never finished (408)", slow_body),
        ("body trickled a byte at a time (408)", trickle),
        ("body on a GET", body_on_get),
        ("request smuggled after a chunked body", smuggle),
    ]:
        yield Case("body limits", name, f)


def _batch_cases(max_record: int) -> Iterator[Case]:
    """Hostile batches: each line is answered on its own, a batch over a limit is refused
    whole, and a batch not declared as JSON lines is refused before any line is read."""
    good = json.dumps(SIGNED_POST["/v1/records"]).encode()
    line_limit = max_record + 64 * 1024

    def record(**over: Any) -> bytes:
        return json.dumps({**SIGNED_POST["/v1/records"], **over}).encode()

    def batch(path: str, body: bytes, statuses: tuple[int, ...]) -> Callable[[Ctx], Probe]:
        return lambda c: Probe(
            (c.signed("POST", path, body, headers={"content-type": NDJSON}),),
            expect=frozenset({200}),
            lines=statuses,
        )

    lines = {
        "malformed line": ([good, b"{not json", good], (201, 400, 201)),
        "truncated line": ([b'{"subject_id": "a", "jurisd'], (400,)),
        "duplicate keys": ([b'{"subject_id": "a", "subject_id": "b"}'], (400,)),
        "bad UTF-8": (
            [b'{"subject_id": "\xc3\x28", "jurisdiction": "PL", "content": "x"}'],
            (400,),
        ),
        "overlong UTF-8": ([record(content="x")[:-2] + b'\xc0\xaf"}'], (400,)),
        "lone surrogate": ([record(content="\ud800")], (400,)),
        "nested 1400 arrays": ([b"[" * 1400 + b"]" * 1400], (400,)),
        "a list, not an object": ([b"[1, 2]"], (400,)),
        "null": ([b"null"], (400,)),
        "NaN": ([b'{"subject_id": NaN}'], (400,)),
        "unknown field": ([record(admin=True)], (400,)),
        "missing field": ([b'{"subject_id": "a", "jurisdiction": "PL"}'], (400,)),
        "content a number": ([record(content=7)], (400,)),
        "blank line between": ([good, b"", good], (201, 400, 201)),
        "whitespace line": ([b" \t "], (400,)),
        "CRLF line ends": ([good + b"\r", good + b"\r"], (201, 201)),
        "NUL in content": ([record(content="a\x00b")], (201,)),
        "oversize line": ([record(content="x" * line_limit)], (413,)),
        "content over the record limit": ([record(content="x" * (max_record + 1))], (413,)),
        "unknown jurisdiction": ([record(jurisdiction="ZZ")], (400,)),
        "path traversal subject": ([record(subject_id="../../etc/passwd")], (400,)),
    }
    for name, (body_lines, statuses) in lines.items():
        yield Case("batch lines", name, batch(BATCH_INGEST, b"\n".join(body_lines), statuses))
    access = json.dumps(SIGNED_POST["/v1/access"]).encode()
    surrogate_grant = {"purpose": "billing", "record_ids": ["r-0"], "grant": SURROGATE_GRANT}
    access_lines = {
        "access: malformed line": ([b"{", access], (400, 404)),
        "access: no target": ([b'{"purpose": "billing"}'], (400,)),
        "access: lone surrogate purpose": (
            [b'{"purpose": "\\udfff", "record_ids": ["r"]}'],
            (400,),
        ),
        "access: grant with a lone surrogate": ([json.dumps(surrogate_grant).encode()], (400,)),
    }
    for name, (body_lines, statuses) in access_lines.items():
        yield Case("batch lines", name, batch("/v1/access/batch", b"\n".join(body_lines), statuses))
    whole = {
        "too many lines": ((good + b"\n") * 1001, 413),
        "a million newlines": (b"\n" * 1_000_000, 413),
        "empty batch": (b"", 400),
    }
    for name, (body, status) in whole.items():
        yield Case(
            "batch lines",
            f"{name} (refused whole)",
            lambda c, b=body, s=status: Probe(
                (c.signed("POST", BATCH_INGEST, b, headers={"content-type": NDJSON}),),
                expect=frozenset({s}),
            ),
        )
    for media in ("application/json", "text/plain", None):
        yield Case(
            "batch lines",
            f"declared as {media} (refused whole)",
            lambda c, m=media: Probe(
                (c.signed("POST", BATCH_INGEST, good + b"\n", headers={"content-type": m}),),
                expect=frozenset({415}),
            ),
        )
    yield Case(
        "batch lines",
        "two lines declared as JSON (refused whole)",
        lambda c: Probe(
            (c.signed("POST", BATCH_INGEST, good + b"\n" + good),), expect=frozenset({400})
        ),
    )
    yield Case(
        "batch lines",
        "body over the limit (refused whole)",
        lambda c: Probe(
            (
                c.signed(
                    "POST",
                    BATCH_INGEST,
                    (good + b"\n") * (c.max_body // len(good) + 1),
                    headers={"content-type": NDJSON},
                ),
            ),
            expect=frozenset({413}),
        ),
    )
    yield Case(
        "batch lines",
        "signed for another batch",
        lambda c: Probe(
            (
                request_bytes(
                    "POST",
                    BATCH_INGEST,
                    good + b"\n" + good + b"\n",
                    headers={
                        "authorization": "Sovra " + c.token("POST", BATCH_INGEST, good + b"\n"),
                        "content-type": NDJSON,
                    },
                ),
            ),
            expect=frozenset({401}),
        ),
    )


def all_cases(max_record: int = 512 << 10) -> list[Case]:
    """Every case of the campaign, in a fixed order."""
    return [
        *_token_cases(),
        *_replay_cases(),
        *_method_cases(),
        *_header_cases(),
        *_bad_json_cases(),
        *_wrong_type_cases(),
        *_unicode_cases(),
        *_traversal_cases(),
        *_oversized_cases(),
        *_body_limit_cases(),
        *_batch_cases(max_record),
    ]


def run_campaign(url: str, ctx: Ctx, max_record: int = 512 << 10) -> Report:
    """Send every case to the gateway at *url*; record what came back."""
    report = Report()
    for case in all_cases(max_record):
        probe = case.build(ctx)
        answer: Answer | None = None
        for i, payload in enumerate(probe.requests):
            last = i == len(probe.requests) - 1
            answer = send(
                url,
                payload,
                then=list(probe.then) if last else None,
                pause_s=probe.pause_s if last else 0.0,
            )
            if answer.status is not None and 200 <= answer.status < 300:
                report.accepted.append(f"{case.klass} / {case.name} #{i}: {answer.status}")
                if payload_path(payload) in INGESTS:
                    report.ingested += 1
                if payload_path(payload) == BATCH_INGEST:
                    report.ingested += batch_statuses(answer.body).count(201)
        assert answer is not None
        label = f"{case.klass} / {case.name}"
        report.cases[case.klass] += 1
        status = answer.status if answer.status is not None else "hang"
        report.statuses[case.klass][status] += 1
        if answer.status is None:
            report.hangs.append(label)
        elif answer.status >= 500:
            report.server_errors.append(f"{label}: {answer.status} {answer.body[:200]!r}")
        elif probe.expect is not None and answer.status not in probe.expect:
            report.unexpected.append(f"{label}: {answer.status} {answer.body[:200]!r}")
        elif probe.lines is not None and batch_statuses(answer.body) != list(probe.lines):
            report.unexpected.append(f"{label}: lines {answer.body[:300]!r}")
    return report


def batch_statuses(body: bytes) -> list[int]:
    """The status of each line of a batch's answer, in order; checks its summary."""
    lines = [json.loads(line) for line in body.splitlines()]
    if not lines or "summary" not in lines[-1]:
        return []
    statuses = [line["status"] for line in lines[:-1]]
    summary = lines[-1]["summary"]
    ok = sum(s < 300 for s in statuses)
    if summary != {"lines": len(statuses), "ok": ok, "failed": len(statuses) - ok}:
        return []
    return statuses


def payload_path(payload: bytes) -> str:
    """The path of a raw request (the second word of its request line)."""
    line = payload.split(b"\r\n", 1)[0].split(b" ")
    return line[1].decode("latin-1") if len(line) > 1 else ""


def main() -> None:  # pragma: no cover - the command that made the table in the docs
    import tempfile
    from pathlib import Path

    from sovra.deployment import Deployment
    from sovra.server import create_app
    from sovra.server.background import running

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "deployment"
        Deployment.init(root, origin="sovra.test/hostile", custodians="in-process")
        toml = root / "sovra.toml"
        toml.write_text(toml.read_text().replace("body_timeout_s = 30", "body_timeout_s = 2"))
        dep = Deployment.open(root)
        try:
            with running(create_app(dep)) as url:
                started = time.monotonic()
                ctx = Ctx(dep.principal_key(WHO), dep.config.max_body_bytes)
                report = run_campaign(url, ctx, dep.config.max_record_bytes)
                took = time.monotonic() - started
                table = report.table()
                table["records_added"] = dep.store.count_records()
                table["ingests_accepted"] = report.ingested
                table["seconds"] = round(took, 1)
                print(json.dumps(table))
        finally:
            dep.close()


if __name__ == "__main__":
    main()
