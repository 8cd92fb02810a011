# The C module built from _native.c; see _runs.py for what each function gives.
from typing import Any

def windows(text: str, margin: int, step: int, /) -> tuple[tuple[int, int], ...]: ...
def segments(
    text: str,
    windows: tuple[tuple[int, int], ...],
    segment_type: type[Any],
    group_type: type[Any],
    longest_part: int,
    max_groups: int,
    /,
) -> tuple[Any, ...]: ...
