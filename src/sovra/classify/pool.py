"""Scan a batch's texts on two cores: this process takes the head, a helper the tail.

The scanner is Python and holds the interpreter, so threads cannot share it out; a helper
process can. :meth:`ScanPool.scan_many` hands the tail of a large batch to the helper and
scans the head here meanwhile; the caller reads the results in order, head first, so by
the time it reaches the tail the helper has usually finished it. Texts go to the helper
and findings come back (kinds and offsets, never a value) as :mod:`marshal` frames over
its standard input and output; nothing else crosses (:mod:`sovra.classify._helper`).

The helper runs :func:`sovra.classify._helper.main`, started by the first batch large
enough to share, in the background: until it says it is ready (its imports and the
scanner's tables take about a second), batches are scanned here whole, so no caller
waits for it to start. One batch at a time uses it; another batch meanwhile is scanned
here. A helper that dies is not replaced for a while: its share is scanned here, and the
batch goes on. It ends when its input closes, so it never outlives this process.
"""

from __future__ import annotations

import contextlib
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from sovra.classify._helper import read_frame, results_from, write_frame
from sovra.classify.scanner import Scanned, scan_many

__all__ = ["MIN_SHARED", "ScanPool", "Scanned"]

MIN_SHARED = 64
"""Texts a batch holds at least before the helper takes a share of it."""

_HELPER_SHARE = 0.7
"""The part of a shared batch (its tail) the helper scans at first: the caller does more
per record than the scan, so it keeps less of the scanning. Each shared batch moves it a
step: down if the caller had to wait for the helper's answer, up if the answer was there
first, within the bounds below (the machine may be shared, and either side slowed)."""

_SHARE_STEP = 0.05
_SHARE_BOUNDS = (0.2, 0.9)
_PROMPT_S = 0.001
"""An answer read within this long was there before the caller came for it."""

_RETRY_AFTER_S = 60.0
"""After a helper failed, how long batches are scanned here alone before another starts."""

_SRC = str(Path(__file__).resolve().parent.parent.parent)
"""The folder holding the ``sovra`` package, for the helper's imports."""


class _Helper:
    """One helper process and its pipes."""

    def __init__(self) -> None:
        # This package's own folder first, unless it is on the path anyway (installed):
        # the helper runs the same code, and site-packages never goes before the stdlib.
        boot = (
            f"import sys; src = {_SRC!r}\n"
            "if src not in sys.path: sys.path.insert(0, src)\n"
            "from sovra.classify._helper import main; main()"
        )
        self.proc = subprocess.Popen(  # noqa: S603 - this interpreter, a constant program
            [sys.executable, "-c", boot],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.stdin: IO[bytes] = self.proc.stdin
        self.stdout: IO[bytes] = self.proc.stdout
        self.ready = False
        self.busy = threading.Lock()

    def poll_ready(self) -> bool:
        """Whether the helper has said it is ready (reads its one-byte hello if there)."""
        if not self.ready:
            readable, _, _ = select.select([self.stdout], [], [], 0)
            if readable:
                if self.stdout.read(1) != b"R":
                    raise OSError("the scan helper did not start")
                self.ready = True
        return self.ready

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(OSError):
            self.stdout.close()


class ScanPool:
    """Scans batches here and, with *helpers* above 0, in one helper process too."""

    def __init__(self, helpers: int) -> None:
        self._enabled = helpers > 0
        self._lock = threading.Lock()
        self._helper: _Helper | None = None
        self._failed_at = -_RETRY_AFTER_S
        self._closed = False
        self._share = _HELPER_SHARE  # moved by the batch holding the helper only

    def scan_many(self, texts: Sequence[str]) -> Iterator[Scanned]:
        """Each text's findings (or the error scanning it raised), in order.

        A batch of at least :data:`MIN_SHARED` texts has its tail scanned by the helper
        while this process scans the head, as the results are read.
        """
        helper = self._take(len(texts))
        if helper is None:
            return _here(texts)
        cut = len(texts) - int(len(texts) * self._share)
        try:
            write_frame(helper.stdin, list(texts[cut:]))
        except (OSError, ValueError):
            helper.busy.release()
            self._lost(helper)
            return _here(texts)
        return self._shared(helper, texts, cut)

    def _shared(self, helper: _Helper, texts: Sequence[str], cut: int) -> Iterator[Scanned]:
        found: list[Scanned] | None = None
        asked = True  # the helper's answer is still to be read
        try:
            yield from _here(texts[:cut])
            asked = False
            start = time.monotonic()
            frame = read_frame(helper.stdout)
            step = _SHARE_STEP if time.monotonic() - start < _PROMPT_S else -_SHARE_STEP
            found = results_from(frame, len(texts) - cut)
            low, high = _SHARE_BOUNDS
            self._share = min(high, max(low, self._share + step))
        except (OSError, ValueError, EOFError, TypeError):
            found = None
        finally:
            if asked:  # left early: read the answer, or the next batch would get it
                try:
                    read_frame(helper.stdout)
                except (OSError, ValueError, EOFError):
                    found = None
            helper.busy.release()
        if found is None:
            self._lost(helper)
            yield from _here(texts[cut:])
        else:
            yield from found

    def _take(self, n: int) -> _Helper | None:
        """The helper, held for one batch, if a batch of *n* texts is to be shared and it
        is ready and free; starts it (in the background) on the first such batch."""
        if n < MIN_SHARED or not self._enabled:
            return None
        with self._lock:
            if self._closed or time.monotonic() - self._failed_at < _RETRY_AFTER_S:
                return None
            helper = self._helper
            if helper is None:
                try:
                    self._helper = _Helper()
                except OSError:
                    self._failed_at = time.monotonic()
                return None
            if not helper.busy.acquire(blocking=False):
                return None
        try:
            if helper.poll_ready():
                return helper
        except (OSError, ValueError):
            helper.busy.release()
            self._lost(helper)
            return None
        helper.busy.release()
        return None

    def _lost(self, helper: _Helper) -> None:
        with self._lock:
            if self._helper is helper:
                self._helper = None
                self._failed_at = time.monotonic()
        helper.stop()

    def close(self) -> None:
        """Stop the helper; later batches are scanned here alone."""
        with self._lock:
            self._closed = True
            helper, self._helper = self._helper, None
        if helper is not None:
            with helper.busy:  # a batch reading from it finishes first
                helper.stop()


def _here(texts: Sequence[str]) -> Iterator[Scanned]:
    # Scanned when the caller first reads from it, all at once: one joined scan pays the
    # scanner's set-up once for the batch (see sovra.classify.scanner.scan_many).
    yield from scan_many(texts)
