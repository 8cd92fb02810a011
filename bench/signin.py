"""CPU per sign-in check: a signed sovra token against a bearer JWT of each algorithm.

    .venv/bin/python bench/signin.py [--quick] [--rounds N]

The signed token is checked as a gateway worker checks it (``Authenticator.authenticate``
over a real SQLite store: signature, claims, and the nonce spent in the replay store, one
transaction per call since nothing runs beside it). A bearer JWT is checked by
``BearerAuthenticator.authenticate`` against a JWKS served over HTTP on loopback (fetched
once, then kept, as between two refreshes): header, key lookup, signature, claims,
mapping. The figure is the median over batches of the calling thread's CPU time per
check, in microseconds (the machine is shared: CPU, not wall clock). The last line printed
is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from sovra.auth import Authenticator, make_token
from sovra.config import OidcConfig
from sovra.model import Principal, Role
from sovra.oidc import BearerAuthenticator
from sovra.store.sqlite import SQLiteMetadataStore

_BATCHES = 7


def _cpu_us(check: Callable[[int], object], rounds: int) -> float:
    """Median over batches of thread CPU per call, in microseconds."""
    per_batch = max(1, rounds // _BATCHES)
    figures = []
    for b in range(_BATCHES):
        start = time.thread_time()
        for i in range(per_batch):
            check(b * per_batch + i)
        figures.append((time.thread_time() - start) / per_batch * 1e6)
    return round(statistics.median(figures), 1)


def signed(tmp: Path, rounds: int) -> float:
    key = _ed25519()
    with SQLiteMetadataStore(tmp / "metadata.db") as store:
        store.put_principal(
            Principal("svc-pl", "PL", Role.SERVICE, key.public_key().public_bytes_raw())
        )
        auth = Authenticator(
            store.get_principal, store.spend_nonces, max_age_s=300, clock=time.time
        )
        body = b'{"purpose":"customer-support","record_ids":["r-1"]}'
        now = int(time.time())
        tokens = [
            make_token(key, "svc-pl", "POST", "/v1/access", body, now_s=now)
            for _ in range(rounds + _BATCHES)
        ]
        return _cpu_us(lambda i: auth.authenticate(tokens[i], "POST", "/v1/access", body), rounds)


def _ed25519() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


_KEYS: dict[str, tuple[Any, Any]] = {
    "RS256": (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), RSAAlgorithm),
    "ES256": (lambda: ec.generate_private_key(ec.SECP256R1()), ECAlgorithm),
    "EdDSA": (_ed25519, OKPAlgorithm),
}


def bearer(rounds: int) -> dict[str, float]:
    keys = {alg: make() for alg, (make, _) in _KEYS.items()}
    jwks = json.dumps(
        {
            "keys": [
                {**_KEYS[alg][1].to_jwk(k.public_key(), as_dict=True), "kid": alg, "alg": alg}
                for alg, k in keys.items()
            ]
        }
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(jwks)))
            self.end_headers()
            self.wfile.write(jwks)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        issuer = f"http://127.0.0.1:{server.server_address[1]}"
        config = OidcConfig(
            issuer=issuer,
            audience="sovra",
            jwks_url=f"{issuer}/certs",
            jurisdictions=("PL",),
            role="service",
            jurisdiction="PL",
        )
        auth = BearerAuthenticator(config, clock=time.time)
        out = {}
        for alg, key in keys.items():
            now = int(time.time())
            claims = {"iss": issuer, "aud": "sovra", "sub": "crm", "iat": now, "exp": now + 300}
            token = jwt.encode(claims, key, algorithm=alg, headers={"kid": alg})
            auth.authenticate(token, "POST", "/v1/access")  # fetches the key set once
            out[alg] = _cpu_us(
                lambda _i, t=token: auth.authenticate(t, "POST", "/v1/access"), rounds
            )
        return out
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run, a few seconds")
    parser.add_argument("--rounds", type=int, default=None, help="checks per measurement")
    args = parser.parse_args()
    rounds = args.rounds or (700 if args.quick else 7000)
    with tempfile.TemporaryDirectory(prefix="sovra-signin-") as tmp:
        signed_us = signed(Path(tmp), rounds)
    bearer_us = bearer(rounds)
    print("| check | CPU us per check |")
    print("|---|---:|")
    print(f"| signed sovra token (Ed25519, nonce spent in SQLite) | {signed_us} |")
    for alg, us in bearer_us.items():
        print(f"| bearer JWT, {alg} (JWKS kept) | {us} |")
    print(json.dumps({"rounds": rounds, "signed_us": signed_us, "bearer_us": bearer_us}))


if __name__ == "__main__":
    main()
