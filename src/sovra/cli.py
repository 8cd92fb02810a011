"""The ``sovra`` command: a thin adapter over the deployment, the client and the verifier.

Errors are translated once, at this edge: an error from the tree in :mod:`sovra.errors`
that leaves a command is printed with its diagnostics and ends the command with its
:class:`~sovra._cli.common.ExitCode`: 1 (bad input, a missing or broken deployment), 2 (a
usage error), 3 (an integrity or verification failure), 4 (refused by a logged decision)
or 5 (the gateway, or a store or custodian behind it, could not be reached; the message
names it). No expected failure prints a traceback.
"""

from __future__ import annotations

import base64
import gc
import importlib
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup

from sovra._cli.common import (
    DEFAULT_URL,
    AccessKeyEnv,
    As,
    Blobs,
    CredentialsFile,
    Database,
    DeploymentArg,
    DeploymentDir,
    Endpoint,
    ExitCode,
    JsonOpt,
    KeyOpt,
    Provider,
    ProviderHome,
    SecretKeyEnv,
    SigningRegion,
    Sse,
    SseKmsKeyId,
    Tiles,
    Url,
    VkeyOpt,
    connect,
    emit,
    error,
    fail,
    given_deployment,
    out,
    print_json,
    print_table,
    progress,
    trusted_key,
    usage,
    warn,
)
from sovra.errors import SovraError

if TYPE_CHECKING:
    from sovra.deployment import Deployment
    from sovra.keys.transport import TransportPins

__all__ = ["app", "main"]

ClientSide = Annotated[
    bool,
    typer.Option(
        "--client-side",
        help="seal and open the record on this machine; the gateway never sees its key",
    ),
]


# Sub-commands, one module per area under sovra/_cli/, imported only when named: `sovra
# scan` then loads neither the gateway's commands nor their imports (the root's help
# lists them all, so it loads every one). "module:attribute", a command function or a
# Typer group; the commands are listed before this module's own, the groups after.
_LAZY_COMMANDS = {
    "scan": "sovra._cli.scan:scan",
    "doctor": "sovra._cli.doctor:doctor",
    "explain": "sovra._cli.policy:explain",
    "check": "sovra._cli.check:check",
    "backup": "sovra._cli.backup:backup",
    "restore": "sovra._cli.backup:restore",
    "migrate": "sovra._cli.migrate:migrate",
}
_LAZY_GROUPS = {
    "log": "sovra._cli.log:log_app",
    "grant": "sovra._cli.grants:grant_app",
    "policy": "sovra._cli.policy:policy_app",
    "keys": "sovra._cli.keys:keys_app",
    "custodian": "sovra._cli.keys:custodian_app",
    "witness": "sovra._cli.witness:witness_app",
    "principal": "sovra._cli.principal:principal_app",
    "residency": "sovra._cli.residency:residency_app",
}


def _load(name: str) -> Any:
    """The click command for the lazily registered sub-command *name*."""
    lazy = _LAZY_COMMANDS.get(name) or _LAZY_GROUPS[name]
    module, _, attribute = lazy.partition(":")
    target = getattr(importlib.import_module(module), attribute)
    command: Any
    if isinstance(target, typer.Typer):
        command = typer.main.get_group(target)
    else:
        single = typer.Typer(add_completion=False)
        single.command(name, cls=_PlainCommand)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class _PlainValue:
    """Turns a command-line value into a str, int or bool parameter's type, as typer would.

    typer 0.29 coerces every value with a pydantic TypeAdapter, built for each
    parameter on its first use: importing pydantic and building them is 85 ms of every
    ``sovra scan``, a quarter of its start. A value of the type, or None, is returned as
    it is and ASCII digits as their int, which is what those adapters return (a test
    compares the two); any other value goes to typer's own coercion, errors and their
    messages included.
    """

    __slots__ = ("_annotation",)

    def __init__(self, annotation: type) -> None:
        self._annotation = annotation

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None or type(value) is self._annotation:  # as each adapter returns them
            return value
        if (
            self._annotation is int
            and type(value) is str
            and value.isascii()
            and value.isdigit()
            and len(value) < 19  # int() refuses more than 4300 digits
        ):
            return int(value)
        from typer._coercion import build_runtime_param

        return build_runtime_param(param.type_descriptor).coerce(value, param=param, ctx=ctx)


def _coerce_plainly(params: list[Any]) -> None:
    """Give each single str, int and bool parameter in *params* a :class:`_PlainValue`.

    Only with a typer that builds a coercion per parameter, lazily, into
    ``_runtime_param``; an older one converts with click's types, without pydantic.
    """
    for param in params:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or getattr(param, "_runtime_param", True) is not None:
            continue
        info = descriptor.parameter_info
        if (
            descriptor.annotation in (str, int, bool)
            and descriptor.file_annotation is None
            and not param.multiple
            and param.nargs == 1
            and info.parser is None
            and info.min is None
            and info.max is None
            and not info.clamp
        ):
            param._runtime_param = _PlainValue(descriptor.annotation)


class _PlainCommand(TyperCommand):
    """A lazily loaded command, whose plain values are coerced without pydantic."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        # Here, with the command's own context: its --help option is made from it.
        _coerce_plainly(self.get_params(ctx))
        return super().parse_args(ctx, args)


class _Edge(TyperGroup):
    """The root command group; turns a sovra error leaving any command into a message."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*_LAZY_COMMANDS, *super().list_commands(ctx), *_LAZY_GROUPS]

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        _coerce_plainly(self.get_params(ctx))
        return super().parse_args(ctx, args)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and (
            cmd_name in _LAZY_COMMANDS or cmd_name in _LAZY_GROUPS
        ):
            self.add_command(_load(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except SovraError as exc:
            fail(exc)


app = typer.Typer(
    cls=_Edge,
    help="sovra: a data-sovereignty gateway. Start with `sovra init DIR` or `sovra demo`.",
    no_args_is_help=True,
    # --install-completion and --show-completion: bash, zsh, fish, PowerShell (docs/cli.md).
    add_completion=True,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from sovra import __version__

        print(f"sovra {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """sovra: a data-sovereignty gateway. Start with `sovra init DIR` or `sovra demo`."""


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="where to create the deployment")],
    jurisdictions: Annotated[
        str, typer.Option(help="comma-separated ISO codes")
    ] = "PL,VN,DE,US,CN",
    origin: Annotated[str | None, typer.Option(help="log origin line")] = None,
    custodians: Annotated[
        str,
        typer.Option(
            help="'separate': each custodian its own process (its own user, as root); "
            "'in-process': every key beside the gateway, for tests and embedding",
        ),
    ] = "separate",
    database: Database = None,
    blobs: Blobs = None,
    tiles: Tiles = None,
    s3_endpoint: Endpoint = None,
    s3_signing_region: SigningRegion = None,
    s3_access_key_env: AccessKeyEnv = None,
    s3_secret_key_env: SecretKeyEnv = None,
    s3_credentials_file: CredentialsFile = None,
    s3_sse: Sse = None,
    s3_sse_kms_key_id: SseKmsKeyId = None,
    s3_provider: Provider = None,
    s3_provider_home: ProviderHome = None,
) -> None:
    """Create a deployment: SQLite, blob folder, custodian and authority keys, sovra.toml.

    With --database, PostgreSQL holds what sovra.db would (and the bulk guard's journal);
    with --blobs REGION=s3://BUCKET/PREFIX (prefix optional), that region's blobs go to
    the bucket, which must be reachable and hold no blob yet; with --tiles FOLDER or
    --tiles s3://BUCKET/PREFIX, the log is published there as static tiles (\\[log.tiles]),
    a place that must hold no checkpoint yet. Nothing is written when a check fails.
    """
    from rich.markup import escape

    from sovra._cli.targets import s3_options, s3_targets
    from sovra.deployment import Deployment

    if custodians not in ("separate", "in-process"):
        error(f"--custodians is 'separate' or 'in-process', not {custodians!r}")
        raise typer.Exit(ExitCode.USAGE)
    codes = [c.strip() for c in jurisdictions.split(",") if c.strip()]
    regions, tile_place = s3_targets(blobs, tiles, s3_options(locals()))
    notes = Deployment.init(
        directory,
        jurisdictions=codes,
        origin=origin,
        custodians="separate" if custodians == "separate" else "in-process",
        database=database,
        regions=regions,
        tiles=tile_place,
    )
    for note in notes:
        warn(note)
    shown = escape(str(directory))
    out.print(f"created deployment in [bold]{shown}[/] for {', '.join(codes)}")
    out.print(f"edit {escape(str(directory / 'sovra.toml'))}, then: sovra serve {shown}")


@app.command()
def serve(
    directory: DeploymentArg = None,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to bind")] = 8750,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="worker processes serving the port [default: one per core]"),
    ] = None,
    log_level: Annotated[
        str,
        typer.Option(
            help="critical, error, warning, info or debug; at info, one JSON access line "
            "per request on stderr"
        ),
    ] = "info",
    deployment: DeploymentDir = None,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs), and each custodian as its own process.

    Several workers serve one port, each a whole gateway over the same deployment; the
    start-up check runs once, before any of them serves. As root, each custodian runs as
    its folder's owner and the gateway as the deployment folder's owner (the system users
    ``sovra init`` made).
    """
    import os
    import signal

    import uvicorn
    from rich.markup import escape

    from sovra.deployment import Deployment, become_gateway
    from sovra.server import create_app
    from sovra.server.workers import (
        bind,
        configure_logging,
        serve_workers,
        settle_heap,
        shared_metrics,
        uvicorn_config,
    )

    directory = given_deployment(directory, deployment)
    configure_logging(log_level)
    count = workers or os.cpu_count() or 1
    processes = become_gateway(directory)
    stopped: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        stopped.append(signum)
        raise typer.Exit(0)

    # uvicorn stops gracefully on SIGTERM, then raises it again to the handler it found:
    # this one, so the custodians are stopped and waited for before the process ends.
    signal.signal(signal.SIGTERM, stop)
    try:
        dep = Deployment.open(directory, processes=processes)
        try:
            _warn_recovered(dep)
            sock = bind(host, port)
            shown = f"http://{host}:{port}"
            out.print(
                f"sovra serving [bold]{escape(str(directory))}[/] at {shown}  "
                f"(API docs: {shown}/docs, log: {shown}/v1/log/checkpoint; "
                f"{count} worker{'s' if count > 1 else ''})"
            )
            if count == 1:
                config = uvicorn_config(create_app(dep), log_level=log_level)
                settle_heap()
                uvicorn.Server(config).run(sockets=[sock])
                return
        finally:
            dep.close()

        def open_app() -> tuple[Any, Callable[[], None]]:
            # Never recover here: a worker starting again must not quarantine the rows
            # another worker is about to complete.
            worker = Deployment.open(directory, processes=processes, recover=False)
            return create_app(worker), worker.close

        forget = processes.forget if processes is not None else (lambda: None)
        with shared_metrics():
            status = serve_workers(sock, count, open_app, in_worker=forget, log_level=log_level)
        if status:
            raise typer.Exit(status)
    finally:
        if processes is not None:
            processes.close()
        if stopped:  # end as the signal would have ended it
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)


def _warn_recovered(dep: Deployment) -> None:
    """Say what the start-up check settled, if anything."""
    found = dep.recovery.counts if dep.recovery is not None else {}
    if dep.recovery is not None and (
        found.get("pending-logged") or found.get("pending-unlogged") or dep.recovery.problems
    ):
        warn(
            f"start-up check: {found.get('pending-logged', 0)} record(s) completed from "
            f"the log, {found.get('pending-unlogged', 0)} without an ingest entry "
            f"quarantined, {len(dep.recovery.problems)} integrity problem(s); "
            "`sovra check` shows them"
        )


@app.command()
def put(
    principal: As,
    source: Annotated[
        Path | None, typer.Argument(help="file with the record's text, or - for stdin")
    ] = None,
    subject: Annotated[str | None, typer.Option(help="subject id")] = None,
    jurisdiction: Annotated[str | None, typer.Option(help="subject's home jurisdiction")] = None,
    purpose: Annotated[
        str | None,
        typer.Option(help="what the data is collected for; picks the minimisation rule"),
    ] = None,
    other_home: Annotated[
        list[str] | None,
        typer.Option(
            "--other-home",
            help="the subject's second home jurisdiction: the record is keyed, placed, "
            "minimised and decided under both (docs/policy.md)",
        ),
    ] = None,
    client_side: ClientSide = False,
    pins: Annotated[
        Path | None,
        typer.Option(
            help="custodians' transport keys to require, from `sovra keys transport-key` "
            "(with --client-side)"
        ),
    ] = None,
    jsonl: Annotated[
        Path | None,
        typer.Option(
            "--jsonl",
            help="load many records: a file of JSON lines (- for stdin), each "
            '{"subject_id", "jurisdiction", "content"[, "purpose"]}',
        ),
    ] = None,
    skip: Annotated[
        int, typer.Option(min=0, help="with --jsonl: start after this many lines (to resume)")
    ] = 0,
    failures: Annotated[
        Path | None,
        typer.Option(help="with --jsonl: write each failed line's error here, not to stderr"),
    ] = None,
    receipts: Annotated[
        Path | None,
        typer.Option(help="with --jsonl: write each stored line's record id and log index here"),
    ] = None,
    chunk: Annotated[
        int, typer.Option(min=1, max=1000, help="with --jsonl: records per request")
    ] = 1000,
    key: KeyOpt = None,
    deployment: DeploymentDir = None,
    url: Url = DEFAULT_URL,
) -> None:
    """Ingest a record through a running gateway, or many with --jsonl.

    With --client-side the record (any bytes) is sealed here and its key encrypted to the
    home custodian: the gateway stores ciphertext only, and no scan or minimisation runs.
    With --pins, a custodian key the gateway offers that is not pinned is refused (exit 3)
    before anything is sealed.

    With --jsonl FILE each line is a record, sent in batches; each line that fails is
    named with its line number, the others are stored, and the exit code is 1 if any
    failed. --skip N resumes after line N.
    """
    if jsonl is not None:
        given = [
            name
            for name, value in [
                ("FILE", source),
                ("--subject", subject),
                ("--jurisdiction", jurisdiction),
                ("--purpose", purpose),
                ("--other-home", other_home),
                ("--pins", pins),
                ("--client-side", client_side or None),
            ]
            if value is not None
        ]
        if given:
            error(f"--jsonl reads every field from its lines: drop {', '.join(given)}")
            raise typer.Exit(ExitCode.USAGE)
        from sovra._cli.load import put_jsonl

        with connect(url, principal, key, deployment) as client:
            put_jsonl(client, jsonl, skip=skip, chunk=chunk, failures=failures, receipts=receipts)
        return
    batch_only = [
        name
        for name, value in [
            ("--skip", skip or None),
            ("--failures", failures),
            ("--receipts", receipts),
            ("--chunk", None if chunk == 1000 else chunk),
        ]
        if value is not None
    ]
    if batch_only:
        error(f"{', '.join(batch_only)} applies to --jsonl only")
        raise typer.Exit(ExitCode.USAGE)
    if source is None or subject is None or jurisdiction is None:
        error("put needs --subject, --jurisdiction and FILE (or --jsonl FILE for many records)")
        raise typer.Exit(ExitCode.USAGE)
    if pins is not None and not client_side:
        error("--pins applies to --client-side only")
        raise typer.Exit(ExitCode.USAGE)
    if purpose is not None and client_side:
        error("--purpose picks a minimisation rule, and none runs on a client-sealed record")
        raise typer.Exit(ExitCode.USAGE)
    if other_home and client_side:
        error("--other-home: a client-sealed record has one home")
        raise typer.Exit(ExitCode.USAGE)
    stdin = str(source) == "-"
    name = "standard input" if stdin else str(source)
    try:
        raw = sys.stdin.buffer.read() if stdin else source.read_bytes()
    except OSError as exc:
        error(f"cannot read {name}: {exc.strerror}")
        raise typer.Exit(ExitCode.ERROR) from None
    if client_side:
        transport_pins = None if pins is None else _read_pins(pins)
        if transport_pins is None:
            warn("no --pins: the custodian's transport key is taken from the gateway unchecked")
        with connect(url, principal, key, deployment, transport_pins=transport_pins) as client:
            print_json(client.ingest_sealed(subject, jurisdiction, raw))
        return
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        error(f"{name} is not UTF-8 text (byte {exc.start})")
        raise typer.Exit(ExitCode.ERROR) from None
    with connect(url, principal, key, deployment) as client:
        print_json(
            client.ingest(
                subject, jurisdiction, content, purpose=purpose, other_homes=other_home or ()
            )
        )


@app.command()
def get(
    principal: As,
    purpose: Annotated[str, typer.Option(help="declared purpose")],
    record: Annotated[list[str] | None, typer.Option(help="record id (repeatable)")] = None,
    subject: Annotated[
        list[str] | None, typer.Option(help="JURISDICTION:SUBJECT_ID (repeatable)")
    ] = None,
    everything_of: Annotated[
        str | None, typer.Option("--all-of", help="every record of this jurisdiction")
    ] = None,
    grant_file: Annotated[Path | None, typer.Option("--grant", help="signed grant JSON")] = None,
    justification: Annotated[
        str | None,
        typer.Option(help="justification code, e.g. customer-initiated-support (docs/policy.md)"),
    ] = None,
    reveal: Annotated[
        bool,
        typer.Option(
            "--reveal", help="also turn tokenized and sealed values back (if policy allows)"
        ),
    ] = False,
    client_side: ClientSide = False,
    as_json: JsonOpt = False,
    log_vkey: Annotated[
        str | None,
        typer.Option(
            "--log-vkey",
            help="the log's verifier key, from out of band (with --client-side): check that "
            "the log signed the decision naming this command's key",
        ),
    ] = None,
    key_transport: Annotated[
        str,
        typer.Option(
            "--key-transport",
            help="HPKE suite of the key the records' keys are released to (with "
            "--client-side): x25519, mlkem768-x25519 or mlkem1024-p384; a jurisdiction "
            "whose key_transport is stronger refuses a weaker one",
        ),
    ] = "x25519",
    key: KeyOpt = None,
    deployment: DeploymentDir = None,
    url: Url = DEFAULT_URL,
) -> None:
    """Read records. A deny is printed with its reason and log index, exit code 4.

    With --client-side, records sealed by `put --client-side` are opened here with keys
    released to this command alone; a record changed on the way fails with exit code 3.
    Each record is printed as text, or as {"base64": ...} if it is not UTF-8.
    """
    from sovra.model import Grant

    del as_json  # JSON either way
    if reveal and client_side:
        error("--reveal needs the gateway to read the record; a client-sealed one it cannot")
        raise typer.Exit(ExitCode.USAGE)
    if log_vkey is not None and not client_side:
        error("--log-vkey applies to --client-side only")
        raise typer.Exit(ExitCode.USAGE)
    if key_transport != "x25519" and not client_side:
        error("--key-transport applies to --client-side only")
        raise typer.Exit(ExitCode.USAGE)
    from sovra.keys.transport import SUITES

    if key_transport not in SUITES:
        error(f"--key-transport must be one of {', '.join(SUITES)}, got {key_transport!r}")
        raise typer.Exit(ExitCode.USAGE)
    log_key = None
    if log_vkey is not None:
        from sovra_verify.note import NoteVerifier

        log_key = NoteVerifier.from_vkey(log_vkey).public_key
    subjects = []
    for s in subject or []:
        j, sep, sid = s.partition(":")
        if not sep:
            error(f"--subject must be JURISDICTION:SUBJECT_ID, got {s!r}")
            raise typer.Exit(ExitCode.USAGE)
        subjects.append((j, sid))
    grant = None
    if grant_file is not None:
        try:
            raw = grant_file.read_bytes()
        except OSError as exc:
            error(f"cannot read {grant_file}: {exc.strerror}")
            raise typer.Exit(ExitCode.ERROR) from None
        grant = Grant.from_json(raw)
    request: dict[str, Any] = {
        "record_ids": record or [],
        "subjects": subjects,
        "jurisdiction": everything_of,
        "grant": grant,
        "justification": justification,
    }
    with connect(
        url, principal, key, deployment, log_key=log_key, key_transport=key_transport
    ) as client:
        if client_side:
            result = client.access_sealed(purpose, **request)
            result["records"] = {rid: _shown(data) for rid, data in result["records"].items()}
            print_json(result)
            return
        print_json(client.access(purpose, **request, reveal=reveal))


def _read_pins(path: Path) -> TransportPins:
    from sovra.keys.transport import TransportPins

    try:
        data = path.read_bytes()
    except OSError as exc:
        error(f"cannot read {path}: {exc.strerror}")
        raise typer.Exit(ExitCode.ERROR) from None
    return TransportPins.from_json(data)


def _shown(data: bytes) -> str | dict[str, str]:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode()}


@app.command()
def report(
    subject: Annotated[str, typer.Option(help="subject id")],
    jurisdiction: Annotated[str, typer.Option(help="subject's home jurisdiction")],
    principal: As,
    key: KeyOpt = None,
    deployment: DeploymentDir = None,
    url: Url = DEFAULT_URL,
    vkey: VkeyOpt = None,
    as_json: JsonOpt = False,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="print CSV: a header line, then one line per entry")
    ] = False,
) -> None:
    """Who touched this subject's data and why: time, requester, purpose, kinds of data,
    grant, effect and reason of every log entry about her, each verified against the log's
    checkpoint (exit 3 if one fails). As a table, --json or --csv (docs/cli.md)."""
    from sovra._cli.report import print_csv, print_table, report_rows

    if as_json and as_csv:
        usage("--json or --csv, not both")
    with connect(url, principal, key, deployment) as client:
        rep = client.report(jurisdiction, subject)
        log_key = trusted_key(vkey, client.verifier_key)
    shown = report_rows(rep, log_key)
    if as_csv:
        print_csv(shown["entries"])
        return
    emit(shown, as_json, lambda: print_table(shown))


@app.command()
def demo(
    deployment: Annotated[
        Path | None, typer.Option("--deployment", "-d", help="default: a fresh temporary one")
    ] = None,
    synthetic: Annotated[int, typer.Option(help="synthetic subjects to ingest")] = 300,
) -> None:
    """Run the seed scenario and print its seven outcomes; exit 1 if any is unexpected."""
    from rich.table import Table
    from rich.text import Text

    from sovra.demo import Step, demo_keys, run_demo
    from sovra.deployment import Deployment, run_as_gateway

    def scenario(dep: Deployment) -> list[Step]:
        with progress("ingesting") as bar:
            task = bar.add_task("", total=None)
            return run_demo(
                dep,
                synthetic=synthetic,
                progress=lambda n, t: bar.update(task, completed=n, total=t),
                keys=keys,
            )

    with tempfile.TemporaryDirectory(prefix="sovra-demo-") as tmp:
        # Others may walk into the folder (not list it), so the custodians' and the
        # gateway's users reach their own parts of the deployment inside.
        Path(tmp).chmod(0o711)
        root = deployment or Path(tmp) / "deployment"
        if not (root / "sovra.toml").exists():
            for note in Deployment.init(root):
                warn(note)
        # The clients' keys, read here: the gateway's user may not read them.
        keys = demo_keys(root)
        steps = run_as_gateway(root, scenario)
    table = Table(title="sovra demo: the seed scenario", show_lines=True)
    for col in ("#", "actor", "request", "expected", "outcome", "reason", "log index"):
        table.add_column(col, overflow="fold")
    for s in steps:
        table.add_row(
            str(s.number),
            s.actor,
            s.action,
            s.expected,
            Text(s.outcome, style="green" if s.ok else "bold red"),
            s.reason,
            "" if s.log_index is None else str(s.log_index),
        )
    print_table(table, markup=False, soft_wrap=False)
    bad = [s.number for s in steps if not s.ok]
    if bad:
        error(f"unexpected outcome in step(s) {bad}")
        raise typer.Exit(ExitCode.ERROR)
    out.print("[bold green]all seven outcomes as expected[/]")


def main() -> None:
    """Entry point of the ``sovra`` console script."""
    try:
        app(prog_name="sovra")
    finally:
        # The process ends here: the interpreter's last collections would walk every
        # object the scanner's tables and the imports made (25 ms after `sovra scan`),
        # to free memory the exit gives back anyway. Frozen objects are skipped.
        gc.freeze()


if __name__ == "__main__":
    main()
