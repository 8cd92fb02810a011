"""C2SP tlog-tiles (https://c2sp.org/tlog-tiles): paths, tile and bundle bytes, tile audit.

A log published as tiles is a set of static files any client can verify::

    tile/<L>/<N>[.p/<W>]            hashes of tree level 8*L, nodes [N*256, N*256 + W)
    tile/entries/<N>[.p/<W>]        entries [N*256, N*256 + W), each as uint16 length || data

``<N>`` is written in 3-digit path elements, all but the last prefixed with ``x``
(1234067 is ``x001/x234/067``); ``.p/<W>`` marks a partial tile of width ``W < 256``.
A full tile never changes; a partial tile of a given width never changes either.

:func:`audit_tiles` is an auditor that needs nothing but a way to fetch those files and
the log's verifier key. It recomputes every leaf hash from the entry bundles, every tile
from the tiles below it, every checkpoint's root, and a consistency proof between
consecutive checkpoints built from the tiles, and names the first bad index it meets.
Like :mod:`sovra_verify.verify`, it shares no tree code with the log.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sovra_verify._merkle import verify_consistency
from sovra_verify.checkpoint import Checkpoint
from sovra_verify.errors import BadRequest, SovraError, VerificationError
from sovra_verify.note import NoteVerifier
from sovra_verify.verify import verify_checkpoint

__all__ = [
    "MAX_TILE_LEVEL",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TileAudit",
    "audit_tiles",
    "decode_entry_bundle",
    "encode_entry_bundle",
    "entries_path",
    "parse_hash_tile",
    "parse_tile_path",
    "tile_level_count",
    "tile_path",
]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
# The spec allows levels 0..63; a uint64 tree size needs at most 0..7.
MAX_TILE_LEVEL = 63
_HASH = 32
_MAX_INDEX = (1 << 64) - 1
_ELEMENT = re.compile(r"x[0-9]{3}")
_LAST = re.compile(r"[0-9]{3}")
_WIDTH = re.compile(r"[1-9][0-9]{0,2}")
_MAX_PATH_ELEMENTS = 7  # 2**64 has 20 digits: at most 7 groups of three

Fetch = Callable[[str], bytes]
_MEMO_HEIGHT = 4  # subtrees of 16 leaves or more; an eighth of the leaves' count at most


def tile_level_count(tree_size: int, level: int) -> int:
    """How many hashes the tree of *tree_size* leaves has at tile *level* (height 8*L)."""
    return tree_size >> (TILE_HEIGHT * level)


def _encode_index(index: int) -> str:
    if not 0 <= index <= _MAX_INDEX:
        raise BadRequest(f"tile index {index} is out of range")
    digits = f"{index:d}"
    digits = digits.zfill(-(-len(digits) // 3) * 3)
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([f"x{g}" for g in groups[:-1]] + [groups[-1]])


def _suffix(width: int) -> str:
    if not 1 <= width <= TILE_WIDTH:
        raise BadRequest(f"tile width {width} is not in 1..{TILE_WIDTH}")
    return "" if width == TILE_WIDTH else f".p/{width}"


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """The path ``tile/<L>/<N>[.p/<W>]`` of a hash tile.

    Raises:
        BadRequest: level, index or width out of range.
    """
    if not 0 <= level <= MAX_TILE_LEVEL:
        raise BadRequest(f"tile level {level} is not in 0..{MAX_TILE_LEVEL}")
    return f"tile/{level}/{_encode_index(index)}{_suffix(width)}"


def entries_path(index: int, width: int = TILE_WIDTH) -> str:
    """The path ``tile/entries/<N>[.p/<W>]`` of an entry bundle.

    Raises:
        BadRequest: index or width out of range.
    """
    return f"tile/entries/{_encode_index(index)}{_suffix(width)}"


def parse_tile_path(path: str) -> tuple[int | None, int, int]:
    """Parse a tile or entry-bundle path into ``(level, index, width)``.

    *level* is ``None`` for an entry bundle. Only the one canonical spelling of each
    tile is accepted (no leading zeros in levels or widths, no ``.p/256``), so a
    cache can never hold one tile under two names.

    Raises:
        BadRequest: the path is not a canonical tile path.
    """
    if not isinstance(path, str) or len(path) > 128:
        raise BadRequest("a tile path must be a short string")
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile":
        raise BadRequest(f"{path!r} is not under tile/")
    level: int | None
    if parts[1] == "entries":
        level = None
    elif parts[1].isdigit() and parts[1] == str(int(parts[1])):
        level = int(parts[1])
        if level > MAX_TILE_LEVEL:
            raise BadRequest(f"tile level {level} is not in 0..{MAX_TILE_LEVEL}")
    else:
        raise BadRequest(f"tile level {parts[1]!r} is not a decimal without leading zeros")
    rest = parts[2:]
    width = TILE_WIDTH
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        if not _WIDTH.fullmatch(rest[-1]) or int(rest[-1]) >= TILE_WIDTH:
            raise BadRequest(f"partial tile width {rest[-1]!r} is not in 1..255")
        width = int(rest[-1])
        rest = [*rest[:-2], rest[-2][:-2]]
    if not 1 <= len(rest) <= _MAX_PATH_ELEMENTS:
        raise BadRequest(f"tile index in {path!r} has a wrong number of path elements")
    if not all(_ELEMENT.fullmatch(e) for e in rest[:-1]) or not _LAST.fullmatch(rest[-1]):
        raise BadRequest(f"tile index in {path!r} is not 3-digit elements, x-prefixed but last")
    index = int("".join(e.lstrip("x") for e in rest))
    if _encode_index(index) != "/".join(rest):
        raise BadRequest(f"tile index in {path!r} has leading zero elements")
    return level, index, width


def parse_hash_tile(data: bytes, width: int) -> list[bytes]:
    """Split a hash tile of *width* hashes into its 32-byte hashes.

    Raises:
        VerificationError: the tile is not exactly ``32 * width`` bytes.
    """
    if len(data) != _HASH * width:
        raise VerificationError(
            f"hash tile of width {width} must be {_HASH * width} bytes, got {len(data)}"
        )
    return [data[i : i + _HASH] for i in range(0, len(data), _HASH)]


def encode_entry_bundle(entries: Sequence[bytes]) -> bytes:
    """Entries as an entry bundle: each one as big-endian uint16 length, then its bytes.

    Raises:
        BadRequest: more than 256 entries, or an entry empty or over 65535 bytes.
    """
    if not 1 <= len(entries) <= TILE_WIDTH:
        raise BadRequest(f"an entry bundle holds 1..{TILE_WIDTH} entries, got {len(entries)}")
    out = bytearray()
    for n, entry in enumerate(entries):
        if not 0 < len(entry) <= 0xFFFF:
            raise BadRequest(f"entry {n} of {len(entry)} bytes does not fit an entry bundle")
        out += len(entry).to_bytes(2, "big")
        out += entry
    return bytes(out)


class _BadBundle(VerificationError):
    """A malformed entry bundle; *position* is the first entry it fails to hold, if one."""

    def __init__(self, message: str, position: int | None) -> None:
        super().__init__(message)
        self.position = position


def decode_entry_bundle(data: bytes, width: int) -> list[bytes]:
    """Split an entry bundle that must hold exactly *width* entries.

    Raises:
        VerificationError: truncated, too few or too many entries, or trailing bytes.
    """
    entries: list[bytes] = []
    pos, end = 0, len(data)
    while pos < end:
        n = len(entries)
        if n == width:
            raise _BadBundle(f"entry bundle holds more than {width} entries", None)
        if pos + 2 > end:
            raise _BadBundle(f"entry bundle is truncated in the length of entry {n}", n)
        size = (data[pos] << 8) | data[pos + 1]
        pos += 2
        if size == 0:
            raise _BadBundle(f"entry {n} of the entry bundle is empty", n)
        if pos + size > end:
            raise _BadBundle(f"entry bundle is truncated in entry {n}", n)
        entries.append(data[pos : pos + size])
        pos += size
    if len(entries) != width:
        raise _BadBundle(f"entry bundle holds {len(entries)} entries, not {width}", len(entries))
    return entries


def _perfect_root(hashes: list[bytes]) -> bytes:
    """Root of a perfect subtree over *hashes* (a power-of-two count), bottom-up."""
    sha = hashlib.sha256
    while len(hashes) > 1:
        hashes = [
            sha(b"\x01" + hashes[i] + hashes[i + 1]).digest() for i in range(0, len(hashes), 2)
        ]
    return hashes[0]


@dataclass(frozen=True, slots=True)
class TileAudit:
    """What :func:`audit_tiles` found. Call :meth:`check` to turn a problem into an error.

    Attributes:
        entries: how many entries were read and hashed.
        size: the tree size audited up to (the last checkpoint's).
        checkpoints: how many checkpoints were verified.
        first_bad_index: the first entry proven bad, when one is.
        problem: the first problem found; the audit stops there.
    """

    entries: int
    size: int
    checkpoints: int
    first_bad_index: int | None
    problem: str | None

    def check(self) -> None:
        """Return if the audit found nothing.

        Raises:
            VerificationError: naming the problem (and the first bad index, if known).
        """
        if self.problem is not None:
            where = (
                "" if self.first_bad_index is None else f" (first bad index {self.first_bad_index})"
            )
            raise VerificationError(f"log audit failed: {self.problem}{where}")


class _Failure(Exception):
    def __init__(self, problem: str, index: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.index = index


class _TileHashes:
    """Node hashes of one tree size, from tiles fetched or recomputed, by tile."""

    def __init__(self, fetch: Fetch, size: int) -> None:
        self._fetch = fetch
        self._size = size
        self.tiles: dict[tuple[int, int], list[bytes]] = {}
        # Subtree roots of height _MEMO_HEIGHT and above, computed once: a log that
        # publishes a checkpoint per batch has thousands, and each checkpoint's root and
        # consistency proof are made of the same few large subtrees.
        self._nodes: dict[tuple[int, int], bytes] = {}

    def width(self, level: int, index: int) -> int:
        return min(TILE_WIDTH, tile_level_count(self._size, level) - index * TILE_WIDTH)

    def fetched(self, level: int, index: int, width: int) -> list[bytes]:
        path = tile_path(level, index, width)
        try:
            data = self._fetch(path)
        except SovraError as exc:
            raise _Failure(f"cannot fetch {path}: {exc.message}") from None
        try:
            return parse_hash_tile(data, width)
        except VerificationError as exc:
            raise _Failure(f"{path}: {exc.message}") from None

    def hashes(self, level: int, start: int, end: int) -> list[bytes]:
        """Hashes at height 8*level, indices [start, end), all inside one tile."""
        index = start // TILE_WIDTH
        tile = self.tiles.get((level, index))
        if tile is None:
            tile = self.fetched(level, index, self.width(level, index))
            self.tiles[(level, index)] = tile
        base = index * TILE_WIDTH
        return tile[start - base : end - base]

    def node(self, height: int, index: int) -> bytes:
        """The perfect subtree of *height* at *index*, via the tile holding its base."""
        if height < _MEMO_HEIGHT:
            return self._node(height, index)
        value = self._nodes.get((height, index))
        if value is None:
            value = self._nodes[(height, index)] = self._node(height, index)
        return value

    def _node(self, height: int, index: int) -> bytes:
        level, rest = divmod(height, TILE_HEIGHT)
        if level > MAX_TILE_LEVEL:
            level, rest = MAX_TILE_LEVEL, height - MAX_TILE_LEVEL * TILE_HEIGHT
        if rest > TILE_HEIGHT or (1 << rest) > TILE_WIDTH:
            # Above the top tile level: combine the two halves.
            return hashlib.sha256(
                b"\x01" + self.node(height - 1, 2 * index) + self.node(height - 1, 2 * index + 1)
            ).digest()
        start = index << rest
        return _perfect_root(self.hashes(level, start, start + (1 << rest)))

    def mth(self, start: int, end: int) -> bytes:
        """RFC 9162 MTH of leaves [start, end) of a node of the tree (start < end)."""
        runs = []
        while start < end:
            height = (end - start).bit_length() - 1
            while start & ((1 << height) - 1):
                height -= 1
            runs.append(self.node(height, start >> height))
            start += 1 << height
        acc = runs[-1]
        for h in reversed(runs[:-1]):
            acc = hashlib.sha256(b"\x01" + h + acc).digest()
        return acc

    def consistency(self, m: int, n: int) -> list[bytes]:
        """RFC 9162 PROOF(m, D[0:n]) written from the definition (section 2.1.4.1)."""
        return self._subproof(m, 0, n, True)

    def _subproof(self, m: int, start: int, end: int, whole: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if whole else [self.mth(start, end)]
        k = 1 << ((n - 1).bit_length() - 1)
        if m <= k:
            return [*self._subproof(m, start, start + k, whole), self.mth(start + k, end)]
        return [*self._subproof(m - k, start + k, end, False), self.mth(start, start + k)]


def audit_tiles(
    fetch: Fetch,
    checkpoints: Sequence[str | bytes],
    vkey: str | NoteVerifier,
    *,
    origin: str | None = None,
    trusted: str | bytes | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TileAudit:
    """Replay a tiled log: recompute every hash and check every checkpoint.

    Every entry of ``[start, N)`` is read from the entry bundles and hashed, each hash
    compared with the level-0 tile; each tile of a higher level is recomputed from the
    tiles below it; the root of every checkpoint is rebuilt from those hashes; and a
    consistency proof built from the tiles is verified between each checkpoint and the
    next. ``N`` is the last checkpoint's size; ``start`` is 0, or the tile holding the
    end of *trusted* for an incremental audit (hashes left of it then come from tiles
    and are authenticated by the trusted checkpoint's root).

    Args:
        fetch: returns the bytes at a tile path (e.g. an HTTP GET under the log's URL);
            a :class:`~sovra_verify.errors.SovraError` it raises is reported as a problem.
        checkpoints: signed checkpoint notes, oldest first.
        vkey: the log's verifier key.
        origin: the expected origin (default: the key's name).
        trusted: a checkpoint audited before; only entries after it are replayed.
        progress: called with ``(entries done, entries to do)`` after each bundle.

    Raises:
        BadRequest: the vkey is malformed.
    """
    verifier = vkey if isinstance(vkey, NoteVerifier) else NoteVerifier.from_vkey(vkey)
    state = _Audit(fetch, progress)
    try:
        cps = [_verified(note, verifier, origin, n) for n, note in enumerate(checkpoints)]
        base = None if trusted is None else _verified(trusted, verifier, origin, -1)
        state.run(cps, base)
    except _Failure as exc:
        return TileAudit(state.entries, state.size, state.checked, exc.index, exc.problem)
    return TileAudit(state.entries, state.size, state.checked, None, None)


def _verified(note: str | bytes, verifier: NoteVerifier, origin: str | None, n: int) -> Checkpoint:
    what = "the trusted checkpoint" if n < 0 else f"checkpoint #{n}"
    try:
        return verify_checkpoint(note, verifier, origin=origin)
    except (BadRequest, VerificationError) as exc:
        raise _Failure(f"{what} is not valid: {exc.message}") from None


class _Audit:
    def __init__(self, fetch: Fetch, progress: Callable[[int, int], None] | None) -> None:
        self.fetch = fetch
        self.progress = progress
        self.entries = 0
        self.size = 0
        self.checked = 0

    def run(self, cps: list[Checkpoint], base: Checkpoint | None) -> None:
        if not cps:
            raise _Failure("no checkpoint to audit against")
        for n in range(1, len(cps)):
            if cps[n].size < cps[n - 1].size:
                raise _Failure(f"checkpoint #{n} is smaller than the one before it")
        final = cps[-1]
        if base is not None:
            if base.size > final.size:
                raise _Failure(
                    f"the trusted checkpoint (size {base.size}) is beyond the last one "
                    f"(size {final.size}): the log rolled back"
                )
            cps = [base, *(c for c in cps if c.size >= base.size)]
        self.size = size = final.size
        tree = _TileHashes(self.fetch, size)
        first_tile = 0 if base is None else base.size // TILE_WIDTH
        self._leaves(tree, first_tile, size)
        self._upper(tree, first_tile)
        previous: Checkpoint | None = None
        for cp in cps:
            root = tree.mth(0, cp.size) if cp.size else hashlib.sha256(b"").digest()
            if root != cp.root_hash:
                lo = 0 if previous is None else previous.size
                raise _Failure(
                    f"the root at size {cp.size} rebuilt from the entries is not the signed "
                    f"one: an entry in [{lo}, {cp.size}) differs from what was signed"
                )
            if previous is not None and previous.size > 0:
                try:
                    verify_consistency(
                        previous.size,
                        cp.size,
                        previous.root_hash,
                        cp.root_hash,
                        tree.consistency(previous.size, cp.size) if previous.size < cp.size else [],
                    )
                except VerificationError as exc:
                    raise _Failure(
                        f"sizes {previous.size} and {cp.size} are not consistent: {exc.message}"
                    ) from None
            previous = cp
            self.checked += 1

    def _leaves(self, tree: _TileHashes, first_tile: int, size: int) -> None:
        """Hash every entry from *first_tile* on; compare with the level-0 tiles."""
        sha = hashlib.sha256
        todo = size - first_tile * TILE_WIDTH
        for index in range(first_tile, -(-size // TILE_WIDTH)):
            width = tree.width(0, index)
            path = entries_path(index, width)
            try:
                data = self.fetch(path)
            except SovraError as exc:
                # Whatever the log says went wrong, nothing here proves which entry.
                raise _Failure(f"cannot fetch {path}: {exc.message}") from None
            try:
                entries = decode_entry_bundle(data, width)
            except _BadBundle as exc:
                at = None if exc.position is None else index * TILE_WIDTH + exc.position
                raise _Failure(f"{path}: {exc.message}", at) from None
            leaves = [sha(b"\x00" + e).digest() for e in entries]
            published = tree.fetched(0, index, width)
            if leaves != published:
                bad = next(
                    n for n, (a, b) in enumerate(zip(leaves, published, strict=True)) if a != b
                )
                first = index * TILE_WIDTH + bad
                raise _Failure(
                    f"entry {first} does not hash to its leaf hash in {tile_path(0, index, width)}",
                    first,
                )
            tree.tiles[(0, index)] = leaves
            self.entries += width
            if self.progress is not None:
                self.progress(self.entries, todo)

    def _upper(self, tree: _TileHashes, first_tile: int) -> None:
        """Recompute each higher tile from the full tiles below it and compare."""
        level, first = 1, first_tile // TILE_WIDTH
        below_first = first_tile
        while level <= MAX_TILE_LEVEL and tile_level_count(self.size, level):
            count = tile_level_count(self.size, level)
            for index in range(first, -(-count // TILE_WIDTH)):
                width = tree.width(level, index)
                published = tree.fetched(level, index, width)
                computed = []
                for n in range(width):
                    child = index * TILE_WIDTH + n
                    if child < below_first:
                        computed.append(
                            published[n]
                        )  # left of the audit: authenticated by the root
                    else:
                        computed.append(
                            _perfect_root(
                                tree.hashes(level - 1, child * TILE_WIDTH, (child + 1) * TILE_WIDTH)
                            )
                        )
                if computed != published:
                    bad = next(
                        n
                        for n, (a, b) in enumerate(zip(computed, published, strict=True))
                        if a != b
                    )
                    span = TILE_WIDTH**level
                    raise _Failure(
                        f"{tile_path(level, index, width)} hash {bad} does not match the tiles "
                        f"below it",
                        (index * TILE_WIDTH + bad) * span,
                    )
                tree.tiles[(level, index)] = computed
            below_first, first = first, first // TILE_WIDTH
            level += 1
