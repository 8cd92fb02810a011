"""Word lists looked for in the few dozen characters around a candidate, and a few
literal words looked for in a whole text.

Detectors ask "does any of these words occur just before this number?" once per
candidate, so the test is on the hot path of text dense with numbers. One Aho-Corasick
automaton per list answers it in one pass over the window, four times faster than
testing each word with ``in``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import ahocorasick_rs

from sovra.classify import _compiled

__all__ = ["WordLists", "Words", "occurrences"]


def occurrences(text: str, words: tuple[str, ...]) -> list[list[int]]:
    """For each of *words*, the offset of each of its occurrences in *text*, in order.

    Overlapping occurrences are included, as ``str.find`` repeated from one past the
    last one gives them. Compiled, each word's first character is searched for (the
    fast single-character search) and the rest compared only there: prose beyond
    Latin-1 costs about 0.16 ms per MB and word, against about 0.6 for ``str.find``.

    Args:
        text: the text to search.
        words: non-empty words, compared exactly.

    Returns:
        One list of offsets per word, in the order of *words*.
    """
    if _compiled.NATIVE is not None:
        found: list[list[int]] = _compiled.NATIVE.occurrences(text, words)
        return found
    every: list[list[int]] = []
    for word in words:
        starts: list[int] = []
        at = text.find(word)
        while at != -1:
            starts.append(at)
            at = text.find(word, at + 1)
        every.append(starts)
    return every


class Words:
    """A fixed list of lower-case words, for :meth:`found_in`."""

    __slots__ = ("_automaton", "words")

    def __init__(self, words: Iterable[str]) -> None:
        self.words = tuple(words)
        self._automaton = ahocorasick_rs.AhoCorasick(self.words)

    def found_in(self, window: str) -> bool:
        """True when one of the words occurs in *window* (compared as given).

        Args:
            window: a short stretch of text, usually lower-cased by the caller; it may
                hold lone surrogates.

        Returns:
            Whether any word is a substring of *window*.
        """
        try:
            return bool(self._automaton.find_matches_as_indexes(window))
        except UnicodeEncodeError:
            # The automaton reads UTF-8, which has no lone surrogates; no word holds one.
            return any(word in window for word in self.words)


class WordLists:
    """Several named lists of lower-case words, all searched in one pass by :meth:`names_in`.

    A detector that asks the same window about many lists (one per identifier kind)
    pays for one automaton call instead of one per list.
    """

    __slots__ = ("_automaton", "_labels", "lists")

    def __init__(self, lists: Mapping[str, Iterable[str]]) -> None:
        self.lists = {label: tuple(words) for label, words in lists.items()}
        labels_of: dict[str, set[str]] = {}
        for label, words in self.lists.items():
            for word in words:
                labels_of.setdefault(word, set()).add(label)
        patterns = sorted(labels_of)
        self._labels = tuple(frozenset(labels_of[word]) for word in patterns)
        self._automaton = ahocorasick_rs.AhoCorasick(patterns)

    def names_in(self, window: str) -> frozenset[str]:
        """The labels of the lists with a word that occurs in *window* (compared as given).

        Args:
            window: a short stretch of text, usually lower-cased by the caller; it may
                hold lone surrogates.

        Returns:
            Each label whose list has a word that is a substring of *window*.
        """
        try:
            # Every occurrence, overlapping ones included: one word must not hide
            # another that overlaps it and belongs to another list.
            hits = self._automaton.find_matches_as_indexes(window, overlapping=True)
        except UnicodeEncodeError:
            return frozenset(
                label for label, words in self.lists.items() if any(w in window for w in words)
            )
        if not hits:
            return _NONE
        if len(hits) == 1:
            return self._labels[hits[0][0]]
        return frozenset().union(*[self._labels[index] for index, _, _ in hits])


_NONE: frozenset[str] = frozenset()
