"""Apply a jurisdiction's minimisation rule to what the scanner found.

Each kind of finding gets one :class:`Action`. The result reports how many findings of
each kind there were and what was done to them; it never carries a found value.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sovra.classify._fold import fold
from sovra.classify.registry import KINDS
from sovra.errors import BadRequest
from sovra.model import Finding

__all__ = ["MIN_TOKEN_KEY_BYTES", "Action", "Minimised", "minimise", "token_for"]

MIN_TOKEN_KEY_BYTES = 16
_TOKEN_HEX = 16


class Action(enum.StrEnum):
    """What minimisation does with one kind of finding."""

    KEEP = "keep"
    REDACT = "redact"
    TOKENIZE = "tokenize"
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class Minimised:
    """The minimised text and a value-free account of what was done.

    Attributes:
        text: the text with every redacted or tokenized span replaced.
        counts: kind -> number of findings of that kind (kept ones included).
        actions: kind -> the :class:`Action` value applied to that kind.
    """

    text: str
    counts: dict[str, int]
    actions: dict[str, str]


def _parse_action(value: object, where: str) -> Action:
    allowed = [a.value for a in Action]
    if not isinstance(value, str) or value not in allowed:
        raise BadRequest(f"{where} must be one of {allowed}, not {value!r}")
    return Action(value)


def _parse_rules(rules: Mapping[str, Action], default: Action) -> tuple[dict[str, Action], Action]:
    parsed: dict[str, Action] = {}
    for kind, action in rules.items():
        # A misspelt kind would silently fall back to the default and keep the data.
        if kind not in KINDS:
            raise BadRequest(f"minimisation rule names unknown kind {kind!r}")
        parsed[kind] = _parse_action(action, f"the rule for {kind}")
    return parsed, _parse_action(default, "the default action")


def _ordered(text: str, findings: Iterable[Finding]) -> list[Finding]:
    ordered = sorted(findings, key=lambda f: (f.start, f.end))
    previous_end = 0
    for finding in ordered:
        if not 0 <= finding.start < finding.end <= len(text):
            raise BadRequest(
                f"a {finding.kind} finding spans {finding.start}..{finding.end}, "
                f"outside a text of {len(text)} characters"
            )
        if finding.start < previous_end:
            # Replacing one span would shift or cut the other; the scanner never
            # produces this, so it is a caller's mistake, not something to guess about.
            raise BadRequest("findings overlap; pass the scanner's resolved findings")
        previous_end = finding.end
    return ordered


def _canonical(kind: str, value: str) -> str:
    # The same number written with full-width digits, spaces or dashes gets the same
    # token, so tokens still join records that hold the same value.
    folded = fold(value)
    if kind == "email":
        return folded.lower()
    return "".join(c for c in folded if c.isalnum()).upper()


def token_for(kind: str, value: str, key: bytes) -> str:
    """The replacement that :attr:`Action.TOKENIZE` puts in place of *value*.

    ``[TOKEN:<kind>:<hex>]`` where hex is the first 16 hex digits of
    HMAC-SHA256(key, kind || 0x00 || canonical value), UTF-8 encoded. The NUL keeps the
    kind and the value apart; the canonical value is the value with look-alike
    characters folded, and then lower-cased for e-mail addresses, or reduced to its
    upper-cased letters and digits for every other kind.

    Args:
        kind: the finding's kind.
        value: the matched text.
        key: the tokenization key, at least :data:`MIN_TOKEN_KEY_BYTES` long.

    Returns:
        The token text.

    Raises:
        BadRequest: the key is missing or too short.
    """
    if len(key) < MIN_TOKEN_KEY_BYTES:
        raise BadRequest(f"the tokenization key must be at least {MIN_TOKEN_KEY_BYTES} bytes")
    message = kind.encode() + b"\x00" + _canonical(kind, value).encode("utf-8", "surrogatepass")
    digest = hmac.new(key, message, hashlib.sha256).hexdigest()
    return f"[TOKEN:{kind}:{digest[:_TOKEN_HEX]}]"


def minimise(
    text: str,
    findings: Iterable[Finding],
    rules: Mapping[str, Action],
    *,
    default: Action = Action.KEEP,
    token_key: bytes | None = None,
) -> Minimised:
    """Keep, redact, tokenize or refuse each finding according to *rules*.

    ``redact`` puts ``[REDACTED:<kind>]`` in place of the span; ``tokenize`` puts the
    keyed, deterministic :func:`token_for` token there; ``refuse`` rejects the whole
    text. Nothing is replaced unless no finding is refused.

    Args:
        text: the text the findings were made on.
        findings: pairwise disjoint findings over *text*, as :func:`scan` returns.
        rules: kind -> action; every key MUST be a kind in ``KINDS``. Values may be
            :class:`Action` members or their string values.
        default: the action for kinds *rules* does not name.
        token_key: the HMAC key for ``tokenize``; required when any rule (or the
            default) tokenizes, even if nothing in this text is tokenized, so a missing
            key shows up at the first call rather than with the first match.

    Returns:
        The minimised text with per-kind counts and the action applied to each kind.

    Raises:
        BadRequest: a finding of a refused kind is present (the message names the kind,
            never the value); *text* is not a string; a rule names an unknown kind or
            action; a finding lies outside *text* or overlaps another; tokenizing
            without a key of at least :data:`MIN_TOKEN_KEY_BYTES` bytes.
    """
    if not isinstance(text, str):
        raise BadRequest(f"minimise takes text, not {type(text).__name__}")
    plan, fallback = _parse_rules(rules, default)
    ordered = _ordered(text, findings)
    tokenizes = fallback is Action.TOKENIZE or Action.TOKENIZE in plan.values()
    if tokenizes and (token_key is None or len(token_key) < MIN_TOKEN_KEY_BYTES):
        raise BadRequest(
            f"a rule tokenizes, so a token key of at least {MIN_TOKEN_KEY_BYTES} bytes is required"
        )
    for finding in ordered:
        if plan.get(finding.kind, fallback) is Action.REFUSE:
            raise BadRequest(
                f"content contains {finding.kind}, which this jurisdiction's "
                "minimisation rule refuses"
            )

    key = token_key if token_key is not None else b""
    # Pieces are gathered left to right and joined once: each replacement is cut from
    # the untouched original, so every span stays valid, and the work is linear where
    # replacing in place (even right to left) would copy the text once per finding.
    pieces: list[str] = []
    cursor = 0
    for finding in ordered:
        action = plan.get(finding.kind, fallback)
        if action is Action.KEEP:
            continue
        pieces.append(text[cursor : finding.start])
        if action is Action.REDACT:
            pieces.append(f"[REDACTED:{finding.kind}]")
        else:
            pieces.append(token_for(finding.kind, text[finding.start : finding.end], key))
        cursor = finding.end
    pieces.append(text[cursor:])

    counts = dict(sorted(Counter(f.kind for f in ordered).items()))
    actions = {kind: plan.get(kind, fallback).value for kind in counts}
    return Minimised(text="".join(pieces), counts=counts, actions=actions)
