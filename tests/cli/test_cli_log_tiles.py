"""The tiled log over HTTP, and `sovra log verify` replaying it, in full and incrementally."""

from __future__ import annotations

import httpx
import pytest

from sovra.ledger import entries_path, tile_path, verify_checkpoint
from sovra_verify.tiles import encode_entry_bundle


def _grow(live, count: int) -> None:
    log = live.dep.gateway.log
    start = log.size
    log.append_many([(b'{"kind":"test","n":%d}' % (start + i), ()) for i in range(count)])


def test_tiles_are_served_immutable_and_match_the_log(live):
    _grow(live, 300)
    log = live.dep.gateway.log
    size = log.size
    with httpx.Client(base_url=live.url) as http:
        full = http.get(f"/v1/log/{tile_path(0, 0)}")
        assert full.status_code == 200, full.text
        assert full.content == log.tile(0, 0)
        assert full.headers["content-type"] == "application/octet-stream"
        assert full.headers["cache-control"] == "public, max-age=31536000, immutable"
        width = size - 256
        partial = http.get(f"/v1/log/{tile_path(0, 1, width)}")
        assert partial.content == log.tile(0, 1, width)
        bundle = http.get(f"/v1/log/{entries_path(0, 3)}")
        assert bundle.content == encode_entry_bundle(log.entries(0, 3))
        assert http.get(f"/v1/log/{tile_path(0, 1, width + 1)}").status_code == 404
        assert http.get(f"/v1/log/{tile_path(3, 0)}").status_code == 404
        for bad in ("tile/0/0", "tile/64/000", "tile/0/000.p/256", "tile/entries/x000/001"):
            answer = http.get(f"/v1/log/{bad}")
            assert answer.status_code == 400, bad
            assert answer.json()["error"] == "bad_request"


def test_log_verify_replays_from_tiles_incrementally(sovra, live, tmp_path):
    log = live.dep.gateway.log
    _grow(live, 10)
    first = tmp_path / "first.note"
    first.write_text(log.checkpoint(), encoding="utf-8")
    _grow(live, 600)
    second = tmp_path / "second.note"
    second.write_text(log.checkpoint(), encoding="utf-8")
    _grow(live, 5)
    log.checkpoint()

    ran = sovra(
        "log",
        "verify",
        "--url",
        live.url,
        "--from-checkpoint",
        first,
        "--to-checkpoint",
        second,
    )
    assert ran.code == 0, ran.err
    a = verify_checkpoint(first.read_text(), log.verifier_key).size
    b = verify_checkpoint(second.read_text(), log.verifier_key).size
    replayed = int(ran.out.split()[1])
    assert b - a <= replayed < b - a + 256  # from the tile holding the trusted end

    whole = sovra("log", "verify", "--url", live.url, "--vkey", log.verifier_key)
    assert whole.code == 0, whole.err
    assert int(whole.out.split()[1]) == log.size


@pytest.mark.parametrize(
    ("option", "content", "message"),
    [
        ("--from-checkpoint", b"\xff\xfe", "is not UTF-8"),
        ("--to-checkpoint", b"not a note\n", "bad_request"),
    ],
)
def test_log_verify_refuses_bad_checkpoint_files(sovra, live, tmp_path, option, content, message):
    note = tmp_path / "bad.note"
    note.write_bytes(content)
    ran = sovra("log", "verify", "--url", live.url, option, note)
    assert ran.code == 1
    assert message in ran.message
    missing = sovra("log", "verify", "--url", live.url, option, tmp_path / "absent.note")
    assert missing.code == 1 and "cannot read the checkpoint note" in missing.message


def test_log_verify_refuses_a_rolled_back_log(sovra, live, tmp_path):
    log = live.dep.gateway.log
    _grow(live, 3)
    older = tmp_path / "older.note"
    older.write_text(log.checkpoint(), encoding="utf-8")
    _grow(live, 3)
    newer = tmp_path / "newer.note"
    newer.write_text(log.checkpoint(), encoding="utf-8")
    ran = sovra(
        "log", "verify", "--url", live.url, "--from-checkpoint", newer, "--to-checkpoint", older
    )
    assert ran.code == 3
    assert "rolled back" in ran.message
