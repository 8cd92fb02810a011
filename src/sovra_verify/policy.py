"""Transparency log trust policies: C2SP tlog-policy (https://c2sp.org/tlog-policy).

A policy names the logs a verifier accepts, the witnesses it knows, and the quorum: a
witness, or a group of ``k`` of ``n`` members (witnesses or earlier groups), or
``none``. A checkpoint is valid under it when one of the logs signed it and the quorum
witnessed it::

    log example.sovra.dev/log+6efc8b25+AY5M...
    witness X1 witness.example/w1+e6886263+BP7I... https://w1.example/
    witness X2 witness.example/w2+0c3c4a9f+BDx2...
    group X-witnesses 2 X1 X2
    quorum X-witnesses

:meth:`WitnessPolicy.check` verifies a signed checkpoint note against the policy and
returns what it established (:class:`PolicyCheck`); it never returns a bool a caller
could forget to test. :meth:`WitnessPolicy.k_of_n` builds the flat policy that
``--witness ... --quorum k`` means.

Where this implementation is narrower than the specification: the file must be UTF-8
(the specification leaves octets above 0x7F opaque; names are compared as the bytes
they are either way), log keys are Ed25519 (type 0x01) and witness keys Ed25519
cosignature keys (type 0x04), and a policy holds at most :data:`MAX_ENTRIES` logs,
witnesses and groups each (the specification asks for at least 32).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sovra_verify.checkpoint import Checkpoint
from sovra_verify.cosignature import CosignatureVerifier
from sovra_verify.errors import BadRequest, VerificationError
from sovra_verify.note import (
    MAX_SIGNATURES,
    NoteVerifier,
    _decode_note,
    split_signed_note,
)

__all__ = [
    "MAX_ENTRIES",
    "MAX_POLICY_BYTES",
    "PolicyCheck",
    "PolicyWitness",
    "WitnessPolicy",
]

MAX_POLICY_BYTES = 64 * 1024
MAX_ENTRIES = 256
_NONE = "none"
_WS = re.compile(r"[ \t]+")
_K = re.compile(r"[1-9][0-9]{0,3}")
_BAD_OCTETS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class PolicyWitness:
    """A witness of the policy: its name in the policy, its key, its submission URL."""

    name: str
    verifier: CosignatureVerifier
    url: str | None = None


@dataclass(frozen=True, slots=True)
class _Group:
    name: str
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PolicyCheck:
    """What :meth:`WitnessPolicy.check` established about a checkpoint note.

    Attributes:
        checkpoint: the checkpoint a policy log signed.
        log: the vkey of the log key that signed it.
        witnesses: the policy names of the witnesses whose cosignatures verified.
        timestamps: each of those witnesses' cosignature time (POSIX seconds).
    """

    checkpoint: Checkpoint
    log: str
    witnesses: tuple[str, ...]
    timestamps: dict[str, int]


class WitnessPolicy:
    """Known logs, known witnesses and a quorum rule over them (immutable once built)."""

    __slots__ = ("_groups", "_logs", "_quorum", "_witnesses")

    def __init__(
        self,
        logs: Sequence[NoteVerifier],
        witnesses: Sequence[PolicyWitness],
        groups: Sequence[tuple[str, int, Sequence[str]]],
        quorum: str,
    ) -> None:
        """Build a policy; the same rules as :meth:`parse` apply.

        Args:
            logs: the accepted log keys (may be empty when the log is known otherwise).
            witnesses: the known witnesses, each with a unique name and key.
            groups: ``(name, k, members)`` in definition order; a member is a witness or
                an earlier group, named at most once in the whole policy.
            quorum: a witness or group name, or ``"none"``.

        Raises:
            BadRequest: a rule of the specification is broken (duplicate key or name, a
                member defined later or listed twice, k outside 1..n, unknown quorum).
        """
        self._logs: tuple[NoteVerifier, ...] = tuple(logs)
        self._witnesses: dict[str, PolicyWitness] = {}
        self._groups: dict[str, _Group] = {}
        if len(self._logs) > MAX_ENTRIES or len(witnesses) > MAX_ENTRIES:
            raise BadRequest(f"a policy holds at most {MAX_ENTRIES} logs and witnesses")
        if len(groups) > MAX_ENTRIES:
            raise BadRequest(f"a policy holds at most {MAX_ENTRIES} groups")
        _no_duplicate_keys([log.public_key for log in self._logs], "log")
        _no_duplicate_keys([w.verifier.public_key for w in witnesses], "witness")
        for w in witnesses:
            self._check_new_name(w.name)
            self._witnesses[w.name] = w
        used: set[str] = set()
        for name, k, members in groups:
            self._check_new_name(name)
            self._check_members(name, members, used)
            if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(members):
                raise BadRequest(f"group {name!r}: k must be in 1..{len(members)}, not {k!r}")
            self._groups[name] = _Group(name, k, tuple(members))
        if quorum != _NONE and quorum not in self._witnesses and quorum not in self._groups:
            raise BadRequest(f"the quorum {quorum!r} is not a witness or group defined before")
        self._quorum = quorum

    def _check_members(self, name: str, members: Sequence[str], used: set[str]) -> None:
        if not members:
            raise BadRequest(f"group {name!r} has no members")
        for member in members:
            if member == _NONE:
                raise BadRequest(f"group {name!r}: 'none' cannot be a group member")
            if member not in self._witnesses and member not in self._groups:
                raise BadRequest(f"group {name!r} names {member!r}, which no earlier line defines")
            if member in used:
                raise BadRequest(f"{member!r} is a group member twice")
            used.add(member)

    def _check_new_name(self, name: str) -> None:
        if not isinstance(name, str) or not name or _WS.search(name) or "\n" in name:
            raise BadRequest(f"{name!r} is not a policy name")
        if name == _NONE:
            raise BadRequest("'none' is predefined and cannot name a witness or group")
        if name in self._witnesses or name in self._groups:
            raise BadRequest(f"the name {name!r} is defined twice")

    # -- building ----------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str | bytes) -> WitnessPolicy:
        """Parse a tlog-policy file.

        Raises:
            BadRequest: oversized, not UTF-8, a control character other than tab and
                newline, an unknown keyword, a malformed line or key, no quorum line or
                two of them, or any rule :meth:`__init__` enforces; the message names
                the line.
        """
        if isinstance(text, bytes | bytearray):
            if len(text) > MAX_POLICY_BYTES:
                raise BadRequest(f"a policy file is at most {MAX_POLICY_BYTES} bytes")
            try:
                text = bytes(text).decode("utf-8")
            except UnicodeDecodeError:
                raise BadRequest("a policy file must be UTF-8") from None
        if not isinstance(text, str):
            raise BadRequest("a policy must be text")
        if len(text.encode("utf-8", "surrogatepass")) > MAX_POLICY_BYTES:
            raise BadRequest(f"a policy file is at most {MAX_POLICY_BYTES} bytes")
        bad = _BAD_OCTETS.search(text)
        if bad:
            raise BadRequest(f"a policy file holds control character U+{ord(bad.group()):04X}")
        lines = _Lines()
        for number, line in enumerate(text.split("\n"), 1):
            words = _WS.split(line.strip(" \t"))
            if words == [""] or words[0].startswith("#"):
                continue
            try:
                lines.add(words[0], words[1:])
            except BadRequest as exc:
                raise BadRequest(f"policy line {number}: {exc.message}") from None
        if lines.quorum is None:
            raise BadRequest("the policy has no quorum line")
        return cls(lines.logs, lines.witnesses, lines.groups, lines.quorum)

    @classmethod
    def k_of_n(
        cls,
        witnesses: Sequence[str | CosignatureVerifier],
        k: int | None = None,
        logs: Sequence[str | NoteVerifier] = (),
    ) -> WitnessPolicy:
        """The flat policy "*k* of these witnesses" (all of them by default; none: no quorum).

        Raises:
            BadRequest: a malformed key, two witnesses with one key, or k outside 1..n
                (or a k without witnesses).
        """
        verifiers = [
            w if isinstance(w, CosignatureVerifier) else CosignatureVerifier.from_vkey(w)
            for w in witnesses
        ]
        log_keys = [v if isinstance(v, NoteVerifier) else NoteVerifier.from_vkey(v) for v in logs]
        if not verifiers:
            if k is not None:
                raise BadRequest("a quorum needs at least one witness key")
            return cls(log_keys, [], [], _NONE)
        needed = len(verifiers) if k is None else k
        if isinstance(needed, bool) or not isinstance(needed, int):
            raise BadRequest(f"a quorum must be an integer, not {needed!r}")
        if not 0 < needed <= len(verifiers):
            raise BadRequest(
                f"a quorum of {needed} out of {len(verifiers)} witnesses is not possible"
            )
        members = [PolicyWitness(f"w{n}", v) for n, v in enumerate(verifiers, 1)]
        group = ("quorum-group", needed, [m.name for m in members])
        return cls(log_keys, members, [group], "quorum-group")

    # -- reading -----------------------------------------------------------------------

    @property
    def logs(self) -> tuple[NoteVerifier, ...]:
        """The accepted log keys."""
        return self._logs

    @property
    def witnesses(self) -> tuple[PolicyWitness, ...]:
        """The known witnesses, in definition order."""
        return tuple(self._witnesses.values())

    @property
    def quorum(self) -> str:
        """The quorum's name (``"none"`` when no cosignature is required)."""
        return self._quorum

    def satisfied_by(self, names: Iterable[str]) -> bool:
        """Whether the witnesses named (policy names) together witness a checkpoint."""
        have = set(names)
        return self._quorum == _NONE or self._met(self._quorum, have)

    def _met(self, name: str, have: set[str]) -> bool:
        group = self._groups.get(name)
        if group is None:
            return name in have
        count = 0
        for member in group.members:
            if self._met(member, have):
                count += 1
                if count >= group.threshold:
                    return True
        return False

    def minimum(self) -> int:
        """The fewest witnesses whose cosignatures can satisfy the quorum."""
        return 0 if self._quorum == _NONE else self._fewest(self._quorum)

    def _fewest(self, name: str) -> int:
        group = self._groups.get(name)
        if group is None:
            return 1
        return sum(sorted(self._fewest(m) for m in group.members)[: group.threshold])

    def to_text(self) -> str:
        """The policy as a tlog-policy file that :meth:`parse` reads back to the same rules."""
        lines = [f"log {log.vkey}" for log in self._logs]
        for w in self._witnesses.values():
            lines.append(f"witness {w.name} {w.verifier.vkey}" + (f" {w.url}" if w.url else ""))
        for g in self._groups.values():
            lines.append(f"group {g.name} {g.threshold} {' '.join(g.members)}")
        lines.append(f"quorum {self._quorum}")
        return "".join(line + "\n" for line in lines)

    def check(self, note: str | bytes, log_vkey: str | NoteVerifier | None = None) -> PolicyCheck:
        """Verify *note*: signed by a policy log (or *log_vkey*), witnessed by the quorum.

        Cosignature lines by keys the policy does not know are ignored (signed-note);
        a line by a known witness that does not verify condemns the note.

        Raises:
            BadRequest: a malformed note or key, or neither a policy log nor *log_vkey*.
            VerificationError: no accepted log key signed it (naming the origin), a
                known witness's cosignature does not verify, or the witnesses that did
                cosign do not meet the quorum (naming them and the rule).
        """
        logs = list(self._logs)
        if log_vkey is not None:
            logs.append(
                log_vkey if isinstance(log_vkey, NoteVerifier) else NoteVerifier.from_vkey(log_vkey)
            )
        if not logs:
            raise BadRequest("the policy names no log and no log key was given")
        text, lines = split_signed_note(_decode_note(note), MAX_SIGNATURES)
        checkpoint = Checkpoint.parse(text)
        message = text.encode("utf-8")
        signer = None
        for _, name, key_id, blob in lines:
            for log in logs:
                if (log.name, log.key_id) == (name, key_id) and log.name == checkpoint.origin:
                    log.verify(message, blob)
                    signer = log
        if signer is None:
            raise VerificationError(
                f"no accepted log key signed this checkpoint of {checkpoint.origin[:100]!r}"
            )
        by_id = {(w.verifier.name, w.verifier.key_id): w for w in self._witnesses.values()}
        timestamps: dict[str, int] = {}
        for _, name, key_id, blob in lines:
            witness = by_id.get((name, key_id))
            if witness is None or witness.name in timestamps:
                continue
            witness.verifier.verify(message, blob)
            timestamps[witness.name] = int.from_bytes(blob[:8], "big")
        if not self.satisfied_by(timestamps):
            got = ", ".join(timestamps) or "none"
            raise VerificationError(
                f"checkpoint at size {checkpoint.size} is below the witness quorum "
                f"{self._describe(self._quorum)}: cosigned by {got}"
            )
        return PolicyCheck(checkpoint, signer.vkey, tuple(timestamps), timestamps)

    def describe(self) -> str:
        """The quorum rule in words: ``2 of (w1, w2, w3)``, one witness's name, or ``none``."""
        return self._describe(self._quorum)

    def _describe(self, name: str) -> str:
        group = self._groups.get(name)
        if group is None:
            return name
        inner = ", ".join(self._describe(m) for m in group.members)
        return f"{group.threshold} of ({inner})"

    def __repr__(self) -> str:
        return (
            f"WitnessPolicy({len(self._logs)} logs, {len(self._witnesses)} witnesses, "
            f"quorum {self._describe(self._quorum)})"
        )


class _Lines:
    """The definitions of a policy file, gathered line by line."""

    def __init__(self) -> None:
        self.logs: list[NoteVerifier] = []
        self.witnesses: list[PolicyWitness] = []
        self.groups: list[tuple[str, int, Sequence[str]]] = []
        self.quorum: str | None = None

    def add(self, keyword: str, args: list[str]) -> None:
        if keyword == "log":
            self.logs.append(_log_line(args))
        elif keyword == "witness":
            self.witnesses.append(_witness_line(args))
        elif keyword == "group":
            self.groups.append(_group_line(args))
        elif keyword == "quorum":
            self._quorum_line(args)
            return
        else:
            raise BadRequest(f"unknown keyword {keyword[:40]!r}")
        # Each definition is checked on its own line, so an error names that line.
        WitnessPolicy(self.logs, self.witnesses, self.groups, _NONE)

    def _quorum_line(self, args: list[str]) -> None:
        if self.quorum is not None:
            raise BadRequest("a policy has exactly one quorum line")
        if len(args) != 1:
            raise BadRequest("the quorum line is 'quorum <name>'")
        # A quorum may only name what is defined before it.
        WitnessPolicy(self.logs, self.witnesses, self.groups, args[0])
        self.quorum = args[0]


def _no_duplicate_keys(keys: Sequence[Ed25519PublicKey], what: str) -> None:
    raw = [k.public_bytes_raw() for k in keys]
    if len(set(raw)) != len(raw):
        word = "the key of another witness" if what == "witness" else "listed twice"
        raise BadRequest(f"a {what} key is {word}")


def _url(args: list[str], at: int, what: str) -> str | None:
    if len(args) > at + 1:
        raise BadRequest(f"a {what} line has at most a key and a URL")
    return args[at] if len(args) == at + 1 else None


def _log_line(args: list[str]) -> NoteVerifier:
    if not args:
        raise BadRequest("a log line is 'log <vkey> [<url>]'")
    _url(args, 1, "log")
    return NoteVerifier.from_vkey(args[0])


def _witness_line(args: list[str]) -> PolicyWitness:
    if len(args) < 2:
        raise BadRequest("a witness line is 'witness <name> <vkey> [<url>]'")
    url = _url(args, 2, "witness")
    return PolicyWitness(args[0], CosignatureVerifier.from_vkey(args[1]), url)


def _group_line(args: list[str]) -> tuple[str, int, Sequence[str]]:
    if len(args) < 3:
        raise BadRequest("a group line is 'group <name> all|any|<k> <member>...'")
    name, rule, members = args[0], args[1], args[2:]
    if rule == "all":
        k = len(members)
    elif rule == "any":
        k = 1
    elif _K.fullmatch(rule):
        k = int(rule)
    else:
        raise BadRequest(f"group {name!r}: {rule[:20]!r} is not all, any or a decimal k")
    return name, k, members
