"""``sovra custodian witnesses init|add|check``: a custodian's own witness policy.

A custodian with a ``<J>.witnesses`` file beside its key file releases a key only
against an allow included in a checkpoint its witnesses cosigned (ADR 0023,
:mod:`sovra.keys.witnessed`). These commands write that file (atomically, 0600, given to
the custodian's user when run as root) from witness vkeys and a quorum or from a C2SP
tlog-policy file, add witnesses to it, and say what the custodian will require, and
whether a log's current checkpoint meets it. Every input is checked the way the
custodian checks the file when it starts; a malformed one changes nothing and exits 1.
The custodian reads the file when it starts: restart it (``sovra serve`` restarts its
custodians) for a change to apply.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sovra._cli.common import DeploymentDir, ExitCode, JsonOpt, emit, need_deployment, out, usage
from sovra._cli.keys import Jurisdiction, LogVkey, _log_public
from sovra.errors import BadRequest, ConfigError, SovraError, VerificationError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from sovra.keys.witnessed import ReleasePolicy
    from sovra_verify.policy import WitnessPolicy

__all__ = ["witnesses_app"]

witnesses_app: typer.Typer = typer.Typer(
    help="The custodian's own witnesses: whose cosignatures it requires before it releases.",
    no_args_is_help=True,
)

Witnesses = Annotated[
    list[str] | None,
    typer.Option(
        "--witness",
        help="a witness's C2SP cosignature vkey, <name>+<key id>+<base64(0x04||key)> "
        "(repeatable; `sovra witness vkey DIR` prints one)",
    ),
]
Quorum = Annotated[
    int | None,
    typer.Option(help="how many of the witnesses must cosign [default: all of them]"),
]
MaxAge = Annotated[
    float | None,
    typer.Option(
        "--max-age",
        help="seconds a cosignature stays fresh enough to release against [init default: 60]",
    ),
]


def _key_path(deployment: Path, jurisdiction: str) -> tuple[str, Path]:
    """The custodian's code and key file; its witness file goes beside it.

    Raises:
        ConfigError: no such custodian here, or it runs on a host of its own.
    """
    from sovra.custody import custodian_key_path
    from sovra.model import check_jurisdiction

    code = check_jurisdiction(jurisdiction)
    if (deployment / "custodians" / f"{code}.url").exists():
        raise ConfigError(
            f"custodian {code} runs on a host of its own (custodians/{code}.url): "
            "write its witness policy there, beside its key file"
        )
    path = custodian_key_path(deployment, code)
    if not path.exists():
        raise ConfigError(f"no custodian {code} in {deployment}: {path} is missing")
    return code, path


def _vkeys(witnesses: list[str]) -> list[str]:
    """The witness keys, each checked on its own so a bad one is named.

    Raises:
        BadRequest: a key that is not a C2SP cosignature vkey (type 0x04).
    """
    from sovra_verify.cosignature import CosignatureVerifier

    for n, vkey in enumerate(witnesses, 1):
        try:
            CosignatureVerifier.from_vkey(vkey)
        except BadRequest as exc:
            raise BadRequest(f"--witness {n} ({vkey[:80]!r}): {exc.message}") from None
    return witnesses


def _age_s(max_age: float) -> float:
    if not max_age > 0:
        raise BadRequest(f"--max-age is seconds above 0, not {max_age}")
    return max_age


def _log_key(
    deployment: Path, log_vkey: str | None, rules: WitnessPolicy
) -> Ed25519PublicKey | None:
    """The log key, when the policy names logs (they must include it) or one is given."""
    if not rules.logs and log_vkey is None:
        return None
    return _log_public(deployment, log_vkey)


def _checked(policy: ReleasePolicy, log_key: Ed25519PublicKey | None) -> ReleasePolicy:
    """*policy*, once the custodian's own start-up check accepts it with *log_key*.

    Raises:
        ConfigError: the policy names logs and the custodian's log is not one of them.
    """
    from sovra.keys.witnessed import WitnessedRelease

    if log_key is not None:
        WitnessedRelease(policy, log_key)
    return policy


def _show(
    code: str, path: Path, policy: ReleasePolicy, verdict: dict[str, object] | None, as_json: bool
) -> None:
    report = {"jurisdiction": code, "file": str(path), **policy.report(), "checkpoint": verdict}

    def text() -> None:
        lines = [
            f"custodian {code} ({path}) releases a key only against an allow included in a "
            f"checkpoint signed by the log key and cosigned by {report['quorum']} "
            f"(at least {report['minimum']} witnesses), those cosignatures at most "
            f"{report['max_checkpoint_age_s']} s old:",
            *(f"  {w['name']} {w['vkey']}" for w in policy.report()["witnesses"]),  # type: ignore[attr-defined]
        ]
        if report["logs"]:
            lines.append("  only of the log " + ", ".join(report["logs"]))  # type: ignore[arg-type]
        if verdict is not None:
            lines.append(_verdict_words(verdict))
        out.print("\n".join(lines), markup=False, highlight=False)

    emit(report, as_json, text)


def _verdict_words(verdict: dict[str, object]) -> str:
    where = (
        f"the checkpoint at size {verdict['size']}"
        if verdict.get("size") is not None
        else "the checkpoint"
    )
    if verdict["satisfied"]:
        ages = verdict["cosigned"]
        assert isinstance(ages, dict)
        who = ", ".join(f"{n} {a} s ago" for n, a in ages.items())
        return f"{where} meets it: cosigned by {who}"
    return f"{where} does not meet it: {verdict['reason']}"


@witnesses_app.command("init")
def witnesses_init(
    jurisdiction: Jurisdiction,
    deployment: DeploymentDir = None,
    witness: Witnesses = None,
    quorum: Quorum = None,
    policy: Annotated[
        Path | None,
        typer.Option(
            help="a C2SP tlog-policy file (witness, group and quorum lines) instead of --witness"
        ),
    ] = None,
    max_age: MaxAge = None,
    force: Annotated[bool, typer.Option(help="replace an existing witness policy")] = False,
    log_vkey: LogVkey = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the custodian's witness policy: --witness keys and --quorum, or --policy FILE."""
    from sovra.keys.witnessed import ReleasePolicy, _age_ms
    from sovra_verify.proof import trust_policy

    deployment = need_deployment(deployment)
    if policy is not None and (witness or quorum is not None):
        usage("give --policy FILE, or --witness (and --quorum), not both")
    if policy is None and not witness:
        usage("give the witnesses: --witness VKEY (repeatable) and --quorum K, or --policy FILE")
    code, key = _key_path(deployment, jurisdiction)
    age = _age_s(60.0 if max_age is None else max_age)
    if policy is not None:
        rules: WitnessPolicy = trust_policy(policy=policy)
        made = ReleasePolicy(rules, _age_ms(age))
    else:
        made = ReleasePolicy.of(
            _vkeys(witness or []), len(witness or []) if quorum is None else quorum, age
        )
    _checked(made, _log_key(deployment, log_vkey, made.witnesses))
    path = made.save(key, overwrite=force)
    _show(code, path, made, None, as_json)


@witnesses_app.command("add")
def witnesses_add(
    jurisdiction: Jurisdiction,
    deployment: DeploymentDir = None,
    witness: Witnesses = None,
    quorum: Quorum = None,
    max_age: MaxAge = None,
    log_vkey: LogVkey = None,
    as_json: JsonOpt = False,
) -> None:
    """Add witnesses to a policy of k of n witnesses (and change k or the age).

    A policy of nested groups is rewritten whole with ``init --policy FILE --force``.
    """
    from sovra.keys.witnessed import ReleasePolicy, _age_ms
    from sovra_verify.cosignature import CosignatureVerifier
    from sovra_verify.policy import PolicyWitness, WitnessPolicy

    deployment = need_deployment(deployment)
    if not witness and quorum is None and max_age is None:
        usage("nothing to change: give --witness VKEY, --quorum K or --max-age SECONDS")
    code, key = _key_path(deployment, jurisdiction)
    current = ReleasePolicy.load(key)
    if current is None:
        raise ConfigError(
            f"custodian {code} has no witness policy yet: write one with "
            f"`sovra custodian witnesses init -j {code} --witness VKEY ... --quorum K`"
        )
    rules = current.witnesses
    group, k = _flat(rules)
    names = {w.name for w in rules.witnesses}
    held = {w.verifier.public_key.public_bytes_raw(): w.name for w in rules.witnesses}
    added = []
    for n, vkey in enumerate(_vkeys(witness or []), 1):
        verifier = CosignatureVerifier.from_vkey(vkey)
        raw = verifier.public_key.public_bytes_raw()
        if raw in held:
            raise BadRequest(f"--witness {n}: that key is witness {held[raw]}'s already")
        name = next(f"w{i}" for i in range(1, len(names) + 2) if f"w{i}" not in names)
        names.add(name)
        held[raw] = name
        added.append(PolicyWitness(name, verifier))
    members = [w.name for w in rules.witnesses] + [w.name for w in added]
    threshold = k if quorum is None else quorum
    if not 1 <= threshold <= len(members):
        raise BadRequest(f"a quorum of {threshold} out of {len(members)} witnesses is not possible")
    try:
        new_rules = WitnessPolicy(
            rules.logs, [*rules.witnesses, *added], [(group, threshold, members)], group
        )
    except BadRequest as exc:
        raise BadRequest(f"the policy with these witnesses: {exc.message}") from None
    age = current.max_age_ms if max_age is None else _age_ms(_age_s(max_age))
    made = ReleasePolicy(new_rules, age)
    _checked(made, _log_key(deployment, log_vkey, new_rules))
    path = made.save(key, overwrite=True)
    _show(code, path, made, None, as_json)


def _flat(rules: WitnessPolicy) -> tuple[str, int]:
    """The quorum group's name and k, for a policy of one group of every witness.

    Raises:
        BadRequest: the policy nests groups, or its quorum is one witness or leaves
            some out.
    """
    text = rules.to_text()
    groups = [line.split(" ") for line in text.splitlines() if line.startswith("group ")]
    names = [w.name for w in rules.witnesses]
    if len(groups) == 1 and groups[0][1] == rules.quorum and groups[0][3:] == names:
        return groups[0][1], int(groups[0][2])
    raise BadRequest(
        f"this policy's quorum is {rules.describe()}, not k of its witnesses: write the "
        "whole policy anew with `init --policy FILE --force`"
    )


@witnesses_app.command("check")
def witnesses_check(
    jurisdiction: Jurisdiction,
    deployment: DeploymentDir = None,
    url: Annotated[
        str | None,
        typer.Option(help="a gateway: check its newest cosigned checkpoint against the policy"),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="a checkpoint note file (with cosignature lines) to check instead"),
    ] = None,
    log_vkey: LogVkey = None,
    as_json: JsonOpt = False,
) -> None:
    """Say what the custodian will require, and whether a current checkpoint meets it.

    Exits 1 when the policy file is missing or malformed (the custodian would not
    start), 3 when the checkpoint does not meet it, 5 when the gateway is unreachable.
    """
    from sovra.keys.witnessed import ReleasePolicy, policy_path

    deployment = need_deployment(deployment)
    if url is not None and checkpoint is not None:
        usage("give --url or --checkpoint, not both")
    if url is not None and not url.startswith(("http://", "https://")):
        usage(f"--url {url} is not a gateway URL: give http:// or https://")
    code, key = _key_path(deployment, jurisdiction)
    policy = ReleasePolicy.load(key)
    if policy is None:
        raise ConfigError(
            f"custodian {code} has no witness policy ({policy_path(key)} is missing): it "
            "releases on receipts alone"
        )
    wanted = url is not None or checkpoint is not None
    log_key = (
        _log_public(deployment, log_vkey)
        if wanted
        else _log_key(deployment, log_vkey, policy.witnesses)
    )
    _checked(policy, log_key)
    verdict = None
    if wanted:
        assert log_key is not None
        verdict = _verdict(policy, log_key, _note(url, checkpoint))
    _show(code, policy_path(key), policy, verdict, as_json)
    if verdict is not None and not verdict["satisfied"]:
        raise typer.Exit(ExitCode.VERIFICATION)


def _note(url: str | None, checkpoint: Path | None) -> str | SovraError:
    """The checkpoint note to check, or why there is none to check.

    Raises:
        BadRequest: the file cannot be read. Unavailable: the gateway cannot be reached.
    """
    from sovra._cli.common import connect
    from sovra.errors import NotFound
    from sovra_verify.note import MAX_NOTE_BYTES

    if checkpoint is not None:
        try:
            data = checkpoint.read_bytes()
        except OSError as exc:
            raise BadRequest(f"cannot read the checkpoint {checkpoint}: {exc.strerror}") from None
        if len(data) > MAX_NOTE_BYTES:
            raise BadRequest(
                f"{checkpoint} is over {MAX_NOTE_BYTES} bytes, too large for a checkpoint"
            )
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(f"{checkpoint} is not UTF-8 text") from None
    assert url is not None
    with connect(url) as client:
        try:
            return client.cosigned_checkpoint()
        except NotFound as exc:
            return exc


def _verdict(
    policy: ReleasePolicy, log_key: Ed25519PublicKey, note: str | SovraError
) -> dict[str, object]:
    from sovra.keys.witnessed import WitnessedRelease

    if isinstance(note, SovraError):
        return {
            "satisfied": False,
            "size": None,
            "reason": f"no cosigned checkpoint: {note.message}",
        }
    now_ms = int(time.time() * 1000)
    try:
        found = WitnessedRelease(policy, log_key).check_checkpoint(note, now_ms)
    except VerificationError as exc:
        return {"satisfied": False, "size": None, "reason": exc.message}
    return {
        "satisfied": True,
        "origin": found.checkpoint.origin,
        "size": found.checkpoint.size,
        "cosigned": {n: round(now_ms / 1000 - ts) for n, ts in found.cosigned.items()},
        "ignored": list(found.problems),
    }
