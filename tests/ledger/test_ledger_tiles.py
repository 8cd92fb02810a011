"""tlog-tiles: paths, tile and bundle bytes, serving from the log, and the tile audit."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from sovra.errors import BadRequest, NotFound, VerificationError
from sovra.ledger import MemoryLogStorage, NoteSigner, TransparencyLog, audit_tiles
from sovra_verify.checkpoint import Checkpoint
from sovra_verify.note import sign_note
from sovra_verify.tiles import (
    TILE_WIDTH,
    decode_entry_bundle,
    encode_entry_bundle,
    entries_path,
    parse_hash_tile,
    parse_tile_path,
    tile_level_count,
    tile_path,
)

VECTORS = Path(__file__).parent.parent / "vectors"
ORIGIN = "tiles.sovra.example/log"
KEY = Ed25519PrivateKey.generate()
SIGNER = NoteSigner(ORIGIN, KEY)


def entry(i: int) -> bytes:
    return b'{"kind":"ingest","n":%d}' % i


def make_log(size: int, checkpoints_at: tuple[int, ...] = ()) -> tuple[TransparencyLog, list[str]]:
    log = TransparencyLog(MemoryLogStorage(), SIGNER, ORIGIN)
    notes = []
    done = 0
    for stop in (*sorted(checkpoints_at), size):
        for first in range(done, stop, 10_000):
            log.append_many([(entry(i), ()) for i in range(first, min(stop, first + 10_000))])
        done = max(done, stop)
        notes.append(log.checkpoint())
    return log, list(dict.fromkeys(notes))


def fetcher(log: TransparencyLog) -> Callable[[str], bytes]:
    def fetch(path: str) -> bytes:
        level, index, width = parse_tile_path(path)
        return log.entry_bundle(index, width) if level is None else log.tile(level, index, width)

    return fetch


# -- paths -----------------------------------------------------------------------------------

# The spec's own example (c2sp.org/tlog-tiles): index 1234067 is x001/x234/067.
PATHS = [
    ("spec-example", (0, 1234067, 256), "tile/0/x001/x234/067"),
    ("zero", (0, 0, 256), "tile/0/000"),
    ("partial", (1, 5, 17), "tile/1/005.p/17"),
    ("thousand", (2, 1000, 255), "tile/2/x001/000.p/255"),
    ("top-level", (63, 999, 1), "tile/63/999.p/1"),
]


@pytest.mark.parametrize(("name", "coords", "path"), PATHS, ids=[p[0] for p in PATHS])
def test_tile_paths(name: str, coords: tuple[int, int, int], path: str) -> None:
    assert tile_path(*coords) == path
    assert parse_tile_path(path) == coords


def test_entry_bundle_paths() -> None:
    assert entries_path(1234067) == "tile/entries/x001/x234/067"
    assert entries_path(3, 7) == "tile/entries/003.p/7"
    assert parse_tile_path("tile/entries/003.p/7") == (None, 3, 7)


BAD_PATHS = [
    ("not-tile", "tiles/0/000"),
    ("level-leading-zero", "tile/00/000"),
    ("level-too-high", "tile/64/000"),
    ("short-element", "tile/0/00"),
    ("x-on-last", "tile/0/x000"),
    ("missing-x", "tile/0/001/234"),
    ("leading-zero-element", "tile/0/x000/001"),
    ("width-256", "tile/0/000.p/256"),
    ("width-zero", "tile/0/000.p/0"),
    ("width-leading-zero", "tile/0/000.p/07"),
    ("width-not-number", "tile/0/000.p/ab"),
    ("empty-index", "tile/0/"),
    ("too-long", "tile/0/" + "x000/" * 40 + "000"),
    ("entries-level", "tile/entries/x/000"),
]


@pytest.mark.parametrize(("name", "path"), BAD_PATHS, ids=[p[0] for p in BAD_PATHS])
def test_non_canonical_paths_are_refused(name: str, path: str) -> None:
    with pytest.raises(BadRequest):
        parse_tile_path(path)


@given(
    level=st.integers(0, 63),
    index=st.integers(0, (1 << 64) - 1),
    width=st.integers(1, 256),
)
def test_path_round_trip(level: int, index: int, width: int) -> None:
    path = tile_path(level, index, width)
    assert parse_tile_path(path) == (level, index, width)
    assert tile_path(*parse_tile_path(path)) == path  # type: ignore[arg-type]


@given(st.text(alphabet="tile/entrx0123456789.p", max_size=40))
def test_any_accepted_path_is_canonical(path: str) -> None:
    try:
        level, index, width = parse_tile_path(path)
    except BadRequest:
        return
    again = entries_path(index, width) if level is None else tile_path(level, index, width)
    assert again == path


# -- bytes -------------------------------------------------------------------------------------


@given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=TILE_WIDTH))
def test_bundle_round_trip(entries: list[bytes]) -> None:
    data = encode_entry_bundle(entries)
    assert decode_entry_bundle(data, len(entries)) == entries
    assert encode_entry_bundle(decode_entry_bundle(data, len(entries))) == data


def test_bundle_bytes_by_hand() -> None:
    assert encode_entry_bundle([b"ab", b"c"]) == b"\x00\x02ab\x00\x01c"


BAD_BUNDLES = [
    ("truncated-length", b"\x00\x02ab\x00", 2, "truncated in the length"),
    ("truncated-entry", b"\x00\x02ab\x00\x05c", 2, "truncated in entry 1"),
    ("too-few", b"\x00\x02ab", 2, "holds 1 entries, not 2"),
    ("too-many", b"\x00\x02ab\x00\x01c", 1, "more than 1"),
    ("zero-length", b"\x00\x00", 1, "entry 0 of the entry bundle is empty"),
]


@pytest.mark.parametrize(
    ("name", "data", "width", "message"), BAD_BUNDLES, ids=[b[0] for b in BAD_BUNDLES]
)
def test_bad_bundles_are_refused(name: str, data: bytes, width: int, message: str) -> None:
    with pytest.raises(VerificationError, match=message):
        decode_entry_bundle(data, width)


def test_bundle_limits() -> None:
    with pytest.raises(BadRequest):
        encode_entry_bundle([])
    with pytest.raises(BadRequest):
        encode_entry_bundle([b"x" * 65536])
    with pytest.raises(BadRequest):
        encode_entry_bundle([b"x"] * 257)


def test_hash_tile_size_is_exact() -> None:
    assert parse_hash_tile(bytes(64), 2) == [bytes(32), bytes(32)]
    for size in (63, 65, 0):
        with pytest.raises(VerificationError, match="must be 64 bytes"):
            parse_hash_tile(bytes(size), 2)


# -- serving from the log -------------------------------------------------------------------


def test_tiles_hold_the_tree_levels() -> None:
    log, _ = make_log(300)
    leaves = [hashlib.sha256(b"\x00" + entry(i)).digest() for i in range(300)]
    assert log.tile(0, 0) == b"".join(leaves[:256])
    assert log.tile(0, 1, 44) == b"".join(leaves[256:300])
    assert log.tile(0, 1, 10) == b"".join(leaves[256:266])
    assert log.entry_bundle(1, 44) == encode_entry_bundle([entry(i) for i in range(256, 300)])
    # Level 1 holds the roots of the full level-0 tiles.
    assert log.tile(1, 0, 1) == log.root(256)


TILE_REQUESTS = [
    ("beyond-size", lambda log: log.tile(0, 1, 45), NotFound),
    ("full-tile-not-yet", lambda log: log.tile(0, 1), NotFound),
    ("level-1-width-2", lambda log: log.tile(1, 0, 2), NotFound),
    ("bundle-beyond", lambda log: log.entry_bundle(2, 1), NotFound),
    ("width-zero", lambda log: log.tile(0, 0, 0), BadRequest),
    ("level-64", lambda log: log.tile(64, 0, 1), BadRequest),
    ("level-six", lambda log: log.tile(6, 0, 1), NotFound),
    ("negative-index", lambda log: log.entry_bundle(-1, 1), BadRequest),
]


@pytest.mark.parametrize(
    ("name", "call", "error"), TILE_REQUESTS, ids=[r[0] for r in TILE_REQUESTS]
)
def test_bad_tile_requests(
    name: str, call: Callable[[TransparencyLog], bytes], error: type[Exception]
) -> None:
    log, _ = make_log(300)
    with pytest.raises(error):
        call(log)


def test_a_served_tile_never_changes() -> None:
    log, _ = make_log(300)
    before = {(lv, w): log.tile(lv, 0, w) for lv, w in ((0, 256), (0, 7), (1, 1))}
    log.append_many([(entry(i), ()) for i in range(300, 1000)])
    assert {(lv, w): log.tile(lv, 0, w) for lv, w in before} == before


# -- the audit ------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 1400), min_size=1, max_size=4))
def test_audit_accepts_every_honest_log(sizes: list[int]) -> None:
    sizes = sorted(set(sizes))
    log, notes = make_log(sizes[-1], tuple(sizes[:-1]))
    report = audit_tiles(fetcher(log), notes, SIGNER.vkey)
    report.check()
    assert (report.entries, report.size, report.checkpoints) == (sizes[-1], sizes[-1], len(notes))


def test_audit_reports_progress() -> None:
    log, notes = make_log(600)
    seen: list[tuple[int, int]] = []
    audit_tiles(fetcher(log), notes, SIGNER.vkey, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(256, 600), (512, 600), (600, 600)]


def test_incremental_audit_replays_only_the_new_entries() -> None:
    log, notes = make_log(70_000, (1000, 66_000))
    fetched: list[str] = []
    base = fetcher(log)

    def fetch(path: str) -> bytes:
        fetched.append(path)
        return base(path)

    report = audit_tiles(fetch, notes[2:], SIGNER.vkey, trusted=notes[1])
    report.check()
    assert report.entries == 70_000 - (66_000 // 256) * 256
    bundles = [parse_tile_path(p)[1] for p in fetched if p.startswith("tile/entries/")]
    assert min(bundles) == 66_000 // 256
    # Hashes left of the replayed part come from tiles; the trusted root vouches for them.
    report = audit_tiles(
        _tampered(log, "tile/2/000.p/1", _flip(3)), notes[2:], SIGNER.vkey, trusted=notes[1]
    )
    assert report.problem is not None and "root at size 66000" in report.problem


def _tampered(log: TransparencyLog, target: str, change: Callable[[bytes], bytes]):
    base = fetcher(log)

    def fetch(path: str) -> bytes:
        data = base(path)
        return change(data) if path == target else data

    return fetch


def _flip(at: int) -> Callable[[bytes], bytes]:
    return lambda d: d[:at] + bytes([d[at] ^ 1]) + d[at + 1 :]


TAMPERING = [
    # (name, path, change, expected message, first bad index)
    ("entry-byte", "tile/entries/001", _flip(2 + 5), "entry 256 does not hash", 256),
    ("later-entry", "tile/entries/002.p/88", lambda d: d[:-1] + b"!", "entry 599 does not", 599),
    ("leaf-hash", "tile/0/001", _flip(32 * 3), "entry 259 does not hash", 259),
    ("short-tile", "tile/0/000", lambda d: d[:-1], "must be 8192 bytes", None),
    ("long-tile", "tile/0/002.p/88", lambda d: d + b"x", "must be 2816 bytes", None),
    ("level-1-hash", "tile/1/000.p/2", _flip(33), "tile/1/000.p/2 hash 1 does not match", 256),
    ("bundle-extra", "tile/entries/000", lambda d: d + b"\x00\x01x", "more than 256", None),
    ("bundle-cut", "tile/entries/000", lambda d: d[:-3], "truncated in entry 255", 255),
    ("bundle-short", "tile/entries/001", lambda d: d[: 2 + len(entry(256))], "1 entries", 257),
]


@pytest.mark.parametrize(
    ("name", "path", "change", "message", "index"), TAMPERING, ids=[t[0] for t in TAMPERING]
)
def test_audit_finds_tampering(
    name: str,
    path: str,
    change: Callable[[bytes], bytes],
    message: str,
    index: int | None,
) -> None:
    log, notes = make_log(600, (100, 300))
    report = audit_tiles(_tampered(log, path, change), notes, SIGNER.vkey)
    assert report.problem is not None and message in report.problem
    assert report.first_bad_index == index
    with pytest.raises(VerificationError, match="log audit failed"):
        report.check()


def test_audit_finds_a_log_that_rewrote_signed_history() -> None:
    # Tiles and bundles agree with each other but not with an earlier signed root.
    _, notes = make_log(300, (100,))
    forged = TransparencyLog(MemoryLogStorage(), SIGNER, ORIGIN)
    forged.append_many([(entry(i) if i != 42 else b"rewritten", ()) for i in range(300)])
    report = audit_tiles(fetcher(forged), [notes[0], forged.checkpoint()], SIGNER.vkey)
    assert report.problem is not None
    assert "root at size 100" in report.problem and "[0, 100)" in report.problem


CHECKPOINT_PROBLEMS = [
    (
        "unknown-key",
        lambda n: sign_note(
            n.split("\n\n")[0] + "\n", [NoteSigner(ORIGIN, Ed25519PrivateKey.generate())]
        ),
        "not valid",
    ),
    ("truncated", lambda n: n[: len(n) // 2], "not valid"),
    (
        "bad-root",
        lambda n: sign_note(Checkpoint(ORIGIN, 600, bytes(32)).to_text(), [SIGNER]),
        "root at size 600",
    ),
    (
        "beyond-tiles",
        lambda n: sign_note(Checkpoint(ORIGIN, 601, bytes(32)).to_text(), [SIGNER]),
        "002.p/89: entry bundle 2 of width 89 is beyond the log of size 600",
    ),
]


@pytest.mark.parametrize(
    ("name", "change", "message"), CHECKPOINT_PROBLEMS, ids=[c[0] for c in CHECKPOINT_PROBLEMS]
)
def test_audit_refuses_bad_checkpoints(
    name: str, change: Callable[[str], str], message: str
) -> None:
    log, notes = make_log(600, (100,))
    report = audit_tiles(fetcher(log), [notes[0], change(notes[1])], SIGNER.vkey)
    assert report.problem is not None and message in report.problem, report.problem


def test_audit_refuses_rollback_and_disorder() -> None:
    log, notes = make_log(600, (100,))
    report = audit_tiles(fetcher(log), notes[:1], SIGNER.vkey, trusted=notes[1])
    assert report.problem is not None and "rolled back" in report.problem
    report = audit_tiles(fetcher(log), notes[::-1], SIGNER.vkey)
    assert report.problem is not None and "smaller than the one before" in report.problem
    report = audit_tiles(fetcher(log), [], SIGNER.vkey)
    assert report.problem == "no checkpoint to audit against"


def test_the_specs_tile_counts_for_a_tree_of_70000() -> None:
    # c2sp.org/tlog-tiles: 273 full level-0 tiles and a partial one of width 112, one
    # full level-1 tile and a partial one of width 17, a partial level-2 tile of width 1.
    assert divmod(tile_level_count(70_000, 0), TILE_WIDTH) == (273, 112)
    assert divmod(tile_level_count(70_000, 1), TILE_WIDTH) == (1, 17)
    assert divmod(tile_level_count(70_000, 2), TILE_WIDTH) == (0, 1)
    assert tile_level_count(70_000, 3) == 0
    # "a tree of size 256 will be represented by a full level 0 tile and a partial
    # level 1 tile of width 1"
    assert (tile_level_count(256, 0), tile_level_count(256, 1)) == (256, 1)


def test_the_specs_tile_index_example() -> None:
    vector = json.loads((VECTORS / "tlog_examples.json").read_text())["c2sp_tile_index_example"]
    assert tile_path(0, vector["index"]) == "tile/0/" + vector["encoded"]
