"""The page: static ES modules that verify the log in the browser, and the counts they show.

``/page/`` serves hand-written HTML, CSS and ES modules from ``server/static`` (no build
step, nothing from a CDN). The browser checks everything it is shown that the log signs:
the checkpoint's signature and witness cosignatures (WebCrypto Ed25519), consistency with
the last checkpoint it saw, and each inclusion proof of a subject's report (SHA-256).

The counts come from ``GET /v1/page/summary``, a :class:`~sovra.server.page_tally.Tally`
of the public log (decisions per jurisdiction, requester and justification, grants,
bulk-guard refusals, findings and minimisation), and every count names a facet and key
that ``GET /v1/page/entries`` turns back into the log entries behind it. Both are public,
as the log is: they say nothing the log does not.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from sovra.deployment import Deployment
from sovra.errors import BadRequest, NotFound
from sovra.ledger.cosigning import CheckpointCosignatures
from sovra.model import Principal
from sovra.server.page_tally import Tally
from sovra_verify.policy import WitnessPolicy

__all__ = ["STATIC", "add_page_routes"]

STATIC = Path(__file__).parent / "static"
_PAGE = 100
_SERIES_WIDTH = 40
_PLOTTED = ("jurisdiction", "requester", "justification", "found-kind", "minimised-kind")
"""The facets the page plots over time, a series per key."""


def add_page_routes(app: FastAPI, deployment: Deployment, answer: type[Any]) -> None:
    """Mount the page at ``/page/`` and its data routes under ``/v1/page``.

    *answer* is the response class the app answers JSON with.
    """
    log = deployment.gateway.log
    store = deployment.store
    cosigners = deployment.cosignatures

    def principal(principal_id: str) -> Principal | None:
        try:
            return store.get_principal(principal_id)
        except NotFound:
            return None

    tally = Tally(principal)
    witness_policy = _witness_policy(cosigners)

    def current() -> Tally:
        tally.update(log.stored_size(), log.iter_entries)
        return tally

    app.mount("/page", StaticFiles(directory=STATIC, html=True), name="page")

    @app.get("/page", include_in_schema=False)
    def page_root() -> RedirectResponse:
        return RedirectResponse("/page/")

    @app.get("/v1/page/summary", tags=["page"], response_class=answer)
    def summary() -> Any:
        """Counts of the log's entries by facet (decisions, grants, findings), over time.

        Each count is the number of log entries filed under ``facets[facet][key]``;
        ``GET /v1/page/entries`` lists them.
        """
        t = current()
        return answer(
            {
                "origin": deployment.config.origin,
                # size, facets, totals, series, facet_series, principals: computed once per
                # size of the log.
                **t.summary(_PLOTTED, _SERIES_WIDTH),
                # Recounted on each request: whether a grant has expired depends on the clock.
                "grants": t.grant_rows(time.time()),
                # Those of the keys or of the tlog-policy, whichever sovra.toml names.
                "witnesses": cosigners.witnesses if cosigners is not None else [],
                "witness_quorum": cosigners.quorum if cosigners is not None else 0,
                # The same as a C2SP tlog-policy (groups and thresholds, not only a count),
                # which the page checks a proof's cosignatures against.
                "witness_policy": witness_policy,
            }
        )

    @app.get("/v1/page/entries", tags=["page"], response_class=answer)
    def entries(
        facet: Annotated[str, Query(max_length=64)],
        key: Annotated[str, Query(max_length=512)],
        offset: Annotated[int, Query(ge=0)] = 0,
        start_ms: Annotated[int | None, Query(ge=0)] = None,
        end_ms: Annotated[int | None, Query(ge=0)] = None,
    ) -> Any:
        """The log entries behind one count of the summary, ``100`` at a time; with
        *start_ms* and *end_ms*, those of one span of a plot (``[start_ms, end_ms)``)."""
        t = current()
        if facet not in t.facets:
            raise BadRequest(f"unknown facet {facet!r}")
        if start_ms is not None and end_ms is not None and end_ms <= start_ms:
            raise BadRequest("end_ms must be after start_ms")
        found = t.indices(facet, key, start_ms, end_ms)
        shown = found[offset : offset + _PAGE]
        return answer(
            {
                "facet": facet,
                "key": key,
                "total": len(found),
                "offset": offset,
                "start_ms": start_ms,
                "end_ms": end_ms,
                "entries": [{"index": i, "entry": log.entry(i).decode()} for i in shown],
            }
        )


def _witness_policy(cosigners: CheckpointCosignatures | None) -> str:
    """The witnesses and quorum the log follows, as a C2SP tlog-policy: the ``[witnesses]
    policy`` file's, or ``[witnesses] keys`` and ``quorum`` as k of n, or ``quorum none``."""
    if cosigners is None or not cosigners.witnesses:
        return "quorum none\n"
    policy = cosigners.policy or WitnessPolicy.k_of_n(cosigners.witnesses, cosigners.quorum)
    return policy.to_text()
