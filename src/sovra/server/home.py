"""The public facts of a deployment: ``/v1/info`` for programs, ``/`` for people."""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from sovra.governance import Governance

__all__ = ["add_home_routes"]


def add_home_routes(app: FastAPI, governance: Governance) -> None:
    """Add ``GET /v1/info`` and the home page ``GET /``."""
    gov = governance

    @app.get("/v1/info", tags=["log"])
    def info() -> dict[str, Any]:
        """Public facts: jurisdictions, regions, purposes, log origin and key."""
        return gov.describe()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home() -> str:
        facts = gov.describe()
        rows = "".join(
            f"<tr><td>{escape(c)}</td><td>{escape(j['name'])}</td>"
            f"<td>{escape(', '.join(j['regions']))}</td></tr>"
            for c, j in facts["jurisdictions"].items()
        )
        return (
            "<!doctype html><meta charset=utf-8><title>sovra</title>"
            "<style>body{font:15px system-ui;max-width:50em;margin:2em auto}td{padding:2px 8px}"
            "</style><h1>sovra</h1>"
            f"<p>Log <code>{escape(facts['origin'])}</code>, {facts['log_size']} entries. "
            f"Verifier key <code>{escape(facts['log_verifier_key'])}</code></p>"
            "<p><a href=/page/>the page: the log verified in your browser</a> · "
            "<a href=/docs>API docs</a> · <a href=/v1/log/checkpoint>latest checkpoint</a>"
            " · <a href=/v1/log/checkpoints>all checkpoints</a> · <a href=/v1/info>info</a></p>"
            f"<table><tr><th>jurisdiction</th><th>name</th><th>regions</th></tr>{rows}</table>"
        )
