"""The scan helper process of :mod:`sovra.classify.pool`, and the frames both ends speak.

``python -m sovra.classify._helper`` writes ``R`` once its scanner is ready, then reads
frames from its standard input until it closes: each a list of texts, answered by one
frame of one result per text, in order. A frame is a 4-byte big-endian length and a
:mod:`marshal` body (plain strings, numbers and tuples only; both ends are this package).
A result is a tuple of findings, each ``(kind, start, end, confidence, validated)``, or
``(error class name, message)`` as a list for a text the scanner refused.
"""

from __future__ import annotations

import marshal
import signal
import struct
import sys
from typing import IO, Any

from sovra.classify._findings import finding
from sovra.classify.scanner import scan, scan_many
from sovra.errors import BadRequest, PayloadTooLarge, SovraError
from sovra.model import Finding

__all__ = ["read_frame", "results_from", "write_frame"]

_LENGTH = struct.Struct(">I")
_ERRORS: dict[str, type[SovraError]] = {
    "BadRequest": BadRequest,
    "PayloadTooLarge": PayloadTooLarge,
}


def write_frame(out: IO[bytes], value: Any) -> None:
    """Write *value* as one frame and flush it."""
    body = marshal.dumps(value)
    out.write(_LENGTH.pack(len(body)) + body)
    out.flush()


def read_frame(source: IO[bytes]) -> Any:
    """The value of the next frame.

    Raises:
        EOFError: the stream ended before a whole frame.
    """
    head = _read_exactly(source, _LENGTH.size)
    body = _read_exactly(source, _LENGTH.unpack(head)[0])
    return marshal.loads(body)  # noqa: S302 - both ends are this package, on its own pipes


def _read_exactly(source: IO[bytes], n: int) -> bytes:
    data = source.read(n)
    if data is None or len(data) != n:
        raise EOFError("the scan helper's stream ended")
    return data


def results_from(frame: Any, expected: int) -> list[list[Finding] | SovraError]:
    """The helper's answer for *expected* texts, as :func:`~sovra.classify.scan` gives it.

    Raises:
        ValueError: not an answer for *expected* texts.
    """
    if not isinstance(frame, list) or len(frame) != expected:
        raise ValueError("the scan helper answered for another number of texts")
    out: list[list[Finding] | SovraError] = []
    for result in frame:
        if isinstance(result, list):
            name, message = result
            out.append(_ERRORS.get(name, SovraError)(message))
        else:
            out.append([finding(k, s, e, c, v) for k, s, e, c, v in result])
    return out


def _answer(texts: list[str]) -> list[Any]:
    return [
        [type(found).__name__, str(found)]
        if isinstance(found, SovraError)
        else tuple((f.kind, f.start, f.end, f.confidence, f.validated) for f in found)
        for found in scan_many(texts)
    ]


def main() -> None:
    """Serve scans on standard input and output until the input closes."""
    # A Ctrl-C meant for the gateway reaches its whole process group; the helper ends
    # when the gateway closes its input, not before.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    source, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # the frames own the output; a stray print goes elsewhere
    scan("+48 601 234 567, jan@example.pl, PESEL 44051401359, 10.0.0.1")  # tables built
    out.write(b"R")
    out.flush()
    while True:
        try:
            texts = read_frame(source)
        except EOFError:
            return
        write_frame(out, _answer(texts))


if __name__ == "__main__":
    main()
