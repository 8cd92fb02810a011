"""Apply a jurisdiction's minimisation rule to what the scanner found.

Each kind of finding gets one :class:`Action`. The result reports how many findings of
each kind there were and what was done to them; it never carries a found value.

``tokenize`` and ``seal`` replace a value with a marker whose body only the subject's
custodian can turn back (:mod:`sovra.keys.values`); this module only places and finds the
markers, through a *protect* callable the caller wires to the custodian::

    [TOKEN:<kind>:<body>]     deterministic: the same value of one subject, same token
    [SEALED:<kind>:<body>]    randomised and bound to the record

Bodies are unpadded base64url. A token protects the value's canonical form (look-alike
characters folded; e-mail lower-cased, other kinds reduced to upper-cased letters and
digits), so the same number written with spaces or full-width digits joins; a sealed value
keeps the exact text.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from sovra.classify._fold import fold
from sovra.classify.registry import KINDS
from sovra.errors import BadRequest
from sovra.model import KIND_NAME, Finding

__all__ = [
    "Action",
    "Minimised",
    "Prepared",
    "Protect",
    "ProtectedSpan",
    "Rules",
    "canonical",
    "finish",
    "minimise",
    "parse_rules",
    "prepare",
    "protected_spans",
    "restore",
]

Protect = Callable[[Sequence[tuple[str, str, str]]], Sequence[str]]
"""Takes ``(mode, kind, value)`` items, mode ``tokenize`` or ``seal``, and returns one
protected body per item, in order."""

_MARKER = re.compile(rf"\[(TOKEN|SEALED):({KIND_NAME}):([A-Za-z0-9_-]{{1,2048}})\]")
_MODES = {"TOKEN": "tokenize", "SEALED": "seal"}
_LABELS = {mode: label for label, mode in _MODES.items()}


class Action(enum.StrEnum):
    """What minimisation does with one kind of finding."""

    KEEP = "keep"
    REDACT = "redact"
    TOKENIZE = "tokenize"
    SEAL = "seal"
    REFUSE = "refuse"


_VALUES = {action: action.value for action in Action}
"""Each action's string: ``Action.value`` goes through the enum's descriptor, several
times slower, paid for every finding of every record."""


@dataclass(frozen=True, slots=True)
class ProtectedSpan:
    """A tokenized or sealed value's marker found in a text: where, how and of what kind."""

    start: int
    end: int
    mode: str  # "tokenize" or "seal"
    kind: str
    body: str


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


_ACTIONS = {a.value: a for a in Action}
_PROTECTING = frozenset({Action.TOKENIZE, Action.SEAL})
# The members as plain names: reading Action.KEEP goes through the enum's descriptor,
# a cost paid per finding in the loops below.
_KEEP, _REDACT, _TOKENIZE, _REFUSE = Action.KEEP, Action.REDACT, Action.TOKENIZE, Action.REFUSE
# Neither a letter nor a digit: what str.isalnum() refuses (\w is isalnum() or "_").
_NOT_ALNUM = re.compile(r"[\W_]+")


def _parse_action(value: object, where: str) -> Action:
    # str() of a str subclass is its plain value: a StrEnum member looks itself up.
    action = _ACTIONS.get(str(value)) if isinstance(value, str) else None
    if action is None:
        raise BadRequest(f"{where} must be one of {list(_ACTIONS)}, not {value!r}")
    return action


@dataclass(frozen=True, slots=True)
class Rules:
    """A minimisation rule, checked once: an :class:`Action` per kind and a default.

    Made by :func:`parse_rules`; :func:`prepare` takes it in place of a mapping, so a
    caller minimising many texts under one rule checks the rule once.
    """

    plan: Mapping[str, Action]
    default: Action
    protects: bool  # some kind (or the default) is tokenized or sealed
    refuses: bool  # some kind (or the default) is refused


def parse_rules(rules: Mapping[str, Action] | Rules, default: Action = Action.KEEP) -> Rules:
    """Check *rules* (kind -> action) and *default*; see :func:`minimise`.

    Raises:
        BadRequest: a rule names an unknown kind, or an action is not an :class:`Action`.
    """
    if isinstance(rules, Rules):
        return rules
    parsed: dict[str, Action] = {}
    for kind, action in rules.items():
        # A misspelt kind would silently fall back to the default and keep the data.
        if kind not in KINDS:
            raise BadRequest(f"minimisation rule names unknown kind {kind!r}")
        parsed[kind] = _parse_action(action, f"the rule for {kind}")
    fallback = _parse_action(default, "the default action")
    used = {fallback, *parsed.values()}
    return Rules(parsed, fallback, bool(used & _PROTECTING), Action.REFUSE in used)


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


def canonical(kind: str, value: str) -> str:
    """The form of *value* a token protects: the same number written with full-width
    digits, spaces or dashes gets the same token, so tokens still join records."""
    folded = fold(value)
    if kind == "email":
        return folded.lower()
    return _NOT_ALNUM.sub("", folded).upper()


def protected_spans(text: str) -> list[ProtectedSpan]:
    """Every ``[TOKEN:...]`` and ``[SEALED:...]`` marker in *text*, left to right.

    Whether a marker is real is for the custodian to say: text that only looks like one
    does not open, and stays as it is.
    """
    return [
        ProtectedSpan(m.start(), m.end(), _MODES[m[1]], m[2], m[3]) for m in _MARKER.finditer(text)
    ]


def restore(text: str, spans: Sequence[ProtectedSpan], values: Sequence[str | None]) -> str:
    """*text* with each span replaced by its value; a ``None`` value leaves the span as is.

    Raises:
        BadRequest: *spans* and *values* differ in length, or spans are out of order.
    """
    if len(spans) != len(values):
        raise BadRequest(f"{len(spans)} protected spans but {len(values)} values")
    pieces: list[str] = []
    cursor = 0
    for span, value in zip(spans, values, strict=True):
        if span.start < cursor or span.end > len(text):
            raise BadRequest("protected spans must be disjoint, in order, and inside the text")
        if value is None:
            continue
        pieces.append(text[cursor : span.start])
        pieces.append(value)
        cursor = span.end
    pieces.append(text[cursor:])
    return "".join(pieces)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A text checked against its rule, waiting for the bodies of its protected values.

    The first half of :func:`minimise`: a caller minimising many texts calls
    :func:`prepare` on each, has the custodians protect every text's :attr:`requests`
    in one call per custodian, and hands each text its bodies with :func:`finish`.

    Attributes:
        text: the text the findings were made on.
        requests: ``(mode, kind, value)`` items to protect, in the order of the text.
        counts: kind -> number of findings of that kind (kept ones included).
        actions: kind -> the :class:`Action` value applied to that kind.
    """

    text: str
    changed: tuple[tuple[Finding, Action], ...]
    requests: tuple[tuple[str, str, str], ...]
    counts: dict[str, int]
    actions: dict[str, str]


def prepare(
    text: str,
    findings: Iterable[Finding],
    rules: Mapping[str, Action] | Rules,
    *,
    default: Action = Action.KEEP,
    can_protect: bool = True,
) -> Prepared:
    """Check *findings* against *rules* and list the values to protect; see :func:`minimise`.

    *rules* may be a mapping or a :class:`Rules` made by :func:`parse_rules` (whose own
    default then applies, not *default*). *can_protect* false says no custodian will
    protect values: a rule that tokenizes or seals is then refused, whatever this text holds.

    Raises:
        BadRequest: as :func:`minimise`, except for the bodies (:func:`finish` checks them).
    """
    if not isinstance(text, str):
        raise BadRequest(f"minimise takes text, not {type(text).__name__}")
    parsed = parse_rules(rules, default)
    plan, fallback = parsed.plan, parsed.default
    ordered = _ordered(text, findings)
    if not can_protect and parsed.protects:
        raise BadRequest("a rule tokenizes or seals, so the subject's custodian is required")
    applied = [(f, plan.get(f.kind, fallback)) for f in ordered]
    if parsed.refuses:
        for finding, action in applied:
            if action is _REFUSE:
                raise BadRequest(
                    f"content contains {finding.kind}, which this jurisdiction's "
                    "minimisation rule refuses"
                )
    changed = tuple((f, a) for f, a in applied if a is not _KEEP)
    requests = []
    for finding, action in changed:
        if action in _PROTECTING:
            value = text[finding.start : finding.end]
            if action is _TOKENIZE:
                value = canonical(finding.kind, value)
            requests.append((_VALUES[action], finding.kind, value))
    counts: dict[str, int] = {}
    for finding in ordered:
        counts[finding.kind] = counts.get(finding.kind, 0) + 1
    counts = dict(sorted(counts.items()))
    actions = {kind: _VALUES[plan.get(kind, fallback)] for kind in counts}
    return Prepared(text, changed, tuple(requests), counts, actions)


def finish(prepared: Prepared, bodies: Sequence[str]) -> Minimised:
    """Put the redaction markers and the protected *bodies* in place: the second half of
    :func:`minimise`, with one body per item of ``prepared.requests``, in order.

    Raises:
        BadRequest: the number of bodies is not the number of requests.
    """
    if len(bodies) != len(prepared.requests):
        raise BadRequest(
            f"{len(prepared.requests)} values to protect, but {len(bodies)} bodies came back"
        )
    text = prepared.text
    # Pieces are gathered left to right and joined once: each replacement is cut from
    # the untouched original, so every span stays valid, and the work is linear where
    # replacing in place (even right to left) would copy the text once per finding.
    pieces: list[str] = []
    cursor = 0
    next_body = iter(bodies)
    for finding, action in prepared.changed:
        pieces.append(text[cursor : finding.start])
        if action is _REDACT:
            pieces.append(f"[REDACTED:{finding.kind}]")
        else:
            pieces.append(f"[{_LABELS[action.value]}:{finding.kind}:{next(next_body)}]")
        cursor = finding.end
    pieces.append(text[cursor:])
    return Minimised(text="".join(pieces), counts=prepared.counts, actions=prepared.actions)


def minimise(
    text: str,
    findings: Iterable[Finding],
    rules: Mapping[str, Action],
    *,
    default: Action = Action.KEEP,
    protect: Protect | None = None,
) -> Minimised:
    """Keep, redact, tokenize, seal or refuse each finding according to *rules*.

    ``redact`` puts ``[REDACTED:<kind>]`` in place of the span; ``tokenize`` and ``seal``
    put the markers described in this module's docstring there, with bodies from one call
    of *protect* for the whole text; ``refuse`` rejects the whole text. Nothing is
    replaced, and *protect* is not called, unless no finding is refused. This is
    :func:`prepare`, *protect*, then :func:`finish`.

    Args:
        text: the text the findings were made on.
        findings: pairwise disjoint findings over *text*, as :func:`scan` returns.
        rules: kind -> action; every key MUST be a kind in ``KINDS``. Values may be
            :class:`Action` members or their string values.
        default: the action for kinds *rules* does not name.
        protect: makes the bodies of tokens and sealed values (the subject's custodian);
            required when any rule (or the default) tokenizes or seals, even if nothing
            in this text is, so a missing custodian shows up at the first call.

    Returns:
        The minimised text with per-kind counts and the action applied to each kind.

    Raises:
        BadRequest: a finding of a refused kind is present (the message names the kind,
            never the value); *text* is not a string; a rule names an unknown kind or
            action; a finding lies outside *text* or overlaps another; a rule tokenizes
            or seals without *protect*; *protect* returns the wrong number of bodies.
    """
    prepared = prepare(text, findings, rules, default=default, can_protect=protect is not None)
    requests = prepared.requests
    bodies: Sequence[str] = protect(requests) if requests and protect is not None else ()
    return finish(prepared, bodies)
