"""``sovra put --other-home``: a subject's second home declared on the command line.

The live deployment has ``sovra init``'s default regions, where no two jurisdictions share
one, so a two-home record is refused there with the reason; the other refusals are of the
declaration itself. Each leaves nothing stored and nothing logged.
"""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("homes", "code", "message"),
    [
        (
            ["DE"],
            1,
            "error bad_request: no storage region is allowed by both PL (eu-central-pl) and DE "
            "(eu-central-de); nothing was stored",
        ),
        (
            ["DE", "VN"],
            1,
            "error bad_request: a subject has at most 2 home jurisdictions, got 3: PL, DE, VN",
        ),
        (["PL"], 1, "error bad_request: home jurisdiction PL is named twice; name each home once"),
        (
            ["XX"],
            1,
            "error bad_request: second home 'XX' is not a jurisdiction of this deployment "
            "(it serves CN, DE, PL, US, VN)",
        ),
    ],
)
def test_put_with_a_second_home_is_refused_precisely(sovra, live, tmp_path, homes, code, message):
    note = tmp_path / "note.txt"
    note.write_text("Anna, tel. +48 601 234 567", encoding="utf-8")
    rows, size = live.dep.store.count_records(), live.dep.gateway.log.size
    more = [arg for home in homes for arg in ("--other-home", home)]
    ran = sovra(
        *live.args(
            "put",
            "--as",
            "svc-pl",
            "--subject",
            "anna@example.eu",
            "--jurisdiction",
            "PL",
            *more,
            note,
        )
    )
    assert (ran.code, ran.message) == (code, message), ran.err
    assert (live.dep.store.count_records(), live.dep.gateway.log.size) == (rows, size)


def test_other_home_does_not_go_with_client_side_or_jsonl(sovra, live, tmp_path):
    note = tmp_path / "note.txt"
    note.write_text("Anna", encoding="utf-8")
    ran = sovra(
        *live.args(
            "put",
            "--as",
            "svc-pl",
            "--subject",
            "anna@example.eu",
            "--jurisdiction",
            "PL",
            "--other-home",
            "DE",
            "--client-side",
            note,
        )
    )
    assert (ran.code, ran.message) == (2, "error --other-home: a client-sealed record has one home")
    ran = sovra(*live.args("put", "--as", "svc-pl", "--jsonl", note, "--other-home", "DE"))
    assert ran.code == 2 and "drop --other-home" in ran.message, ran.err
