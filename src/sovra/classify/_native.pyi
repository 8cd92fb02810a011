# The C module built from _native.c; see _fold.py, _runs.py, _words.py and special.py for
# what each gives.
from typing import Any

def fold(text: str, table: bytes, /) -> str: ...
def occurrences(text: str, words: tuple[str, ...], /) -> list[list[int]]: ...
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
def spans(
    text: str, segment: tuple[Any, ...], lengths: frozenset[int] | None, /
) -> list[tuple[int, int, str]]: ...
def code_point_offsets(
    data: bytes, matches: list[tuple[int, int, int]], /
) -> list[tuple[int, int, int]]: ...
