"""A real witness that answers only when a test lets it: for rounds that go on at quorum."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from sovra.errors import SovraError
from sovra.ledger import Witness
from sovra_verify.checkpoint import Checkpoint


class SlowWitness(Witness):
    """A real witness (its state on disk) that takes each request only once the test
    opens *gate*: a witness slow to answer, as one with a slow disk or a long queue is."""

    def __init__(self, gate: threading.Event, *args: Any) -> None:
        super().__init__(*args)
        self.gate = gate
        self.asked: list[tuple[int, int]] = []  # (old size, checkpoint size) of each request
        self.answered: list[str] = []  # "200" or the refusal's name, in order

    def add_checkpoint(self, note: str, old_size: int, proof: Sequence[bytes]) -> str:
        self.asked.append((old_size, Checkpoint.parse(note[: note.index("\n\n") + 1]).size))
        assert self.gate.wait(timeout=60)
        try:
            cosigned = super().add_checkpoint(note, old_size, proof)
        except SovraError as exc:
            self.answered.append(type(exc).__name__)
            raise
        self.answered.append("200")
        return cosigned
