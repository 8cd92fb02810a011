"""What every ``sovra`` sub-command shares: consoles, options, the client, error output.

The exit codes (:class:`ExitCode`), the deployment option (``-d/--deployment``, or
``SOVRA_DEPLOYMENT``), ``--as``, ``--json`` and its output helper are defined here once;
docs/cli.md documents them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, cast

import typer
from rich.console import Console, RenderableType
from rich.text import Text

from sovra.errors import ConfigError, Denied, IntegrityError, SovraError, Unavailable

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from rich.progress import Progress, TaskID

    from sovra.client import Client
    from sovra.keys.transport import TransportPins
    from sovra_verify.note import NoteVerifier

__all__ = [
    "DEFAULT_URL",
    "AccessKeyEnv",
    "As",
    "Blobs",
    "CredentialsFile",
    "Database",
    "DeploymentArg",
    "DeploymentDir",
    "Endpoint",
    "ExitCode",
    "JsonOpt",
    "KeyOpt",
    "Provider",
    "ProviderHome",
    "SecretKeyEnv",
    "SigningRegion",
    "Sse",
    "SseKmsKeyId",
    "Tiles",
    "Url",
    "VkeyOpt",
    "connect",
    "emit",
    "err",
    "error",
    "exit_code",
    "fail",
    "given_deployment",
    "need_deployment",
    "out",
    "print_json",
    "print_table",
    "progress",
    "trusted_key",
    "usage",
    "warn",
]

# soft_wrap: a line of text is never broken at the console's width, so a path or a
# message can be copied or grepped whole; tables still fit the width.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class ExitCode(IntEnum):
    """How a ``sovra`` command ends; the same for every command (docs/cli.md)."""

    OK = 0
    ERROR = 1  # anything else: bad input, a missing or broken deployment, not found
    USAGE = 2  # the command line itself is wrong (Typer's and click's own code)
    VERIFICATION = 3  # a proof, signature, checkpoint or stored bytes failed to verify
    REFUSED = 4  # a policy decision (or a custodian) refused; the refusal is logged
    UNREACHABLE = 5  # the gateway, or a database, bucket or custodian, could not be reached


def exit_code(exc: SovraError) -> ExitCode:
    """The exit code for an error from :mod:`sovra.errors` that ends a command."""
    if isinstance(exc, IntegrityError):
        return ExitCode.VERIFICATION
    if isinstance(exc, Denied):
        return ExitCode.REFUSED
    if isinstance(exc, Unavailable):
        return ExitCode.UNREACHABLE
    return ExitCode.ERROR


DEFAULT_URL = "http://127.0.0.1:8750"
DEPLOYMENT_ENV = "SOVRA_DEPLOYMENT"
# What ./run creates; a command falls back to it where it exists.
_DEFAULT_DEPLOYMENT = Path("deployment")


def _deployment_given(
    ctx: typer.Context, param: typer.CallbackParam, value: Path | None
) -> Path | None:
    """The folder named by ``-d`` or ``SOVRA_DEPLOYMENT``, checked; else ./deployment
    where it exists; else None (:func:`need_deployment` then says what to do).

    Only that the folder exists is checked here: a custodian's host holds a part of a
    deployment, without its ``sovra.toml``; opening a deployment says what is missing.

    Ends the command (exit 1) when the folder named does not exist, or is a file.
    """
    if value is None:
        return _DEFAULT_DEPLOYMENT if _DEFAULT_DEPLOYMENT.is_dir() else None
    from typer._click.core import ParameterSource  # typer 0.29 carries its own click

    source = ctx.get_parameter_source(param.name or "deployment")
    named = f"{DEPLOYMENT_ENV}={value}" if source is ParameterSource.ENVIRONMENT else str(value)
    if not value.is_dir():
        what = "is not a folder" if value.exists() else "no such folder"
        fail(ConfigError(f"{named}: {what}; `sovra init DIR` creates a deployment"))
    return value


DeploymentDir = Annotated[
    Path | None,
    typer.Option(
        "--deployment",
        "-d",
        envvar=DEPLOYMENT_ENV,
        callback=_deployment_given,
        help="deployment directory [default: ./deployment, where it exists]",
    ),
]
# For the commands that name their deployment first (`sovra serve DIR`, `doctor`, `migrate`).
DeploymentArg = Annotated[
    Path | None,
    typer.Argument(
        help="deployment directory [default: -d/--deployment, else ./deployment]",
        show_default=False,
    ),
]


def _gateway_url(value: str) -> str:
    """A gateway URL names its scheme; ``127.0.0.1:8750`` is a usage error, not a
    gateway that cannot be reached."""
    if not value.startswith(("http://", "https://")):
        usage(f"--url {value} is not a gateway URL: give http:// or https://, e.g. {DEFAULT_URL}")
    return value


Url = Annotated[
    str,
    typer.Option("--url", envvar="SOVRA_URL", callback=_gateway_url, help="gateway URL"),
]
As = Annotated[
    str,
    typer.Option("--as", envvar="SOVRA_AS", help="principal id to act as"),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="print JSON, with the field names docs/cli.md lists")
]
KeyOpt = Annotated[
    Path | None,
    typer.Option("--key", help="principal's key file [default: DEPLOYMENT/principals/ID.key]"),
]
VkeyOpt = Annotated[
    str | None,
    typer.Option(
        "--vkey",
        help="the log's verifier key you trust: a vkey string or a file holding one "
        "(default: the one the server states, trusted on first use)",
    ),
]

# The stores of a scale-out deployment (`init`, `migrate`).
Database = Annotated[
    str | None,
    typer.Option(
        help="a postgresql:// URL: keep the metadata, the log and the bulk guard's "
        "journal in that database (empty, one per deployment) instead of sovra.db; "
        "put the password in ~/.pgpass or PGPASSWORD, not the URL (sovra.toml keeps it)",
    ),
]
Blobs = Annotated[
    list[str] | None,
    typer.Option(
        "--blobs",
        metavar="REGION=s3://BUCKET/PREFIX",
        help="keep that storage region's blobs in an S3-compatible bucket (repeatable); "
        "the --s3-* options apply to every bucket named",
    ),
]
Tiles = Annotated[
    str | None,
    typer.Option(
        "--tiles",
        metavar="FOLDER|s3://BUCKET/PREFIX",
        help="publish the log as static C2SP tlog-tiles files ([log.tiles]): a folder "
        "inside the deployment, or an S3-compatible bucket (reachable, holding no "
        "checkpoint yet; the --s3-* options apply to it too)",
    ),
]
# Each --s3-* option: VALUE for every bucket --blobs and --tiles name, REGION=VALUE for one
# region, log.tiles=VALUE for the tile bucket.
_PER_REGION = (
    " (repeatable: VALUE for every bucket named, REGION=VALUE for one region, "
    "log.tiles=VALUE for the --tiles bucket)"
)

Endpoint = Annotated[
    list[str] | None,
    typer.Option(
        "--s3-endpoint",
        metavar="[REGION=]VALUE",
        help=("the S3 endpoint URL [default: AWS itself]" + _PER_REGION),
    ),
]
SigningRegion = Annotated[
    list[str] | None,
    typer.Option(
        "--s3-signing-region",
        metavar="[REGION=]VALUE",
        help=("the region S3 requests are signed for [default: us-east-1]" + _PER_REGION),
    ),
]
AccessKeyEnv = Annotated[
    list[str] | None,
    typer.Option(
        "--s3-access-key-env",
        metavar="[REGION=]VALUE",
        help=(
            "the environment variable holding the access key (with --s3-secret-key-env) "
            "[default: the S3 client's own chain: AWS_* variables, an instance role]" + _PER_REGION
        ),
    ),
]
SecretKeyEnv = Annotated[
    list[str] | None,
    typer.Option(
        "--s3-secret-key-env",
        metavar="[REGION=]VALUE",
        help=("the variable holding the secret key" + _PER_REGION),
    ),
]
CredentialsFile = Annotated[
    list[str] | None,
    typer.Option(
        "--s3-credentials-file",
        metavar="[REGION=]VALUE",
        help=(
            'instead: a JSON file {"access_key": ..., "secret_key": ...} only its owner can '
            "read (chmod 600)" + _PER_REGION
        ),
    ),
]
Sse = Annotated[
    list[str] | None,
    typer.Option(
        "--s3-sse",
        metavar="[REGION=]VALUE",
        help=(
            "server-side encryption asked for on every write: AES256, aws:kms or "
            "aws:kms:dsse" + _PER_REGION
        ),
    ),
]
SseKmsKeyId = Annotated[
    list[str] | None,
    typer.Option(
        "--s3-sse-kms-key-id",
        metavar="[REGION=]VALUE",
        help=("the KMS key of --s3-sse aws:kms" + _PER_REGION),
    ),
]
Provider = Annotated[
    list[str] | None,
    typer.Option(
        "--s3-provider",
        metavar="[REGION=]VALUE",
        help=("who operates the storage (a name, for reports)" + _PER_REGION),
    ),
]
ProviderHome = Annotated[
    list[str] | None,
    typer.Option(
        "--s3-provider-home",
        metavar="[REGION=]VALUE",
        help=(
            "the jurisdiction whose laws reach that operator (rules may exclude providers "
            "by it)" + _PER_REGION
        ),
    ),
]


def error(message: str) -> None:
    # Plain Text, not markup: messages quote user input, which may contain brackets.
    err.print(Text.assemble(("error", "bold red"), " ", message))


def warn(message: str) -> None:
    err.print(Text.assemble(("warning", "bold yellow"), " ", message))


def trusted_key(vkey: str | None, stated: Callable[[], str]) -> NoteVerifier:
    """The log key given with ``--vkey``, or, with a warning, the one the server states.

    Raises:
        BadRequest: a malformed key (given or stated).
    """
    from sovra_verify.audit import load_vkey

    if vkey is not None:
        return load_vkey(vkey)
    key = load_vkey(stated())
    warn(
        "no --vkey: checking the log against the key the server itself states "
        f"({key.vkey}), trusted on first use; a server that lies can lie about its key too. "
        "Pin the key with --vkey."
    )
    return key


def fail(exc: SovraError) -> NoReturn:
    error(exc.diagnostics())
    raise typer.Exit(exit_code(exc))


def usage(message: str) -> NoReturn:
    """End the command as a usage error (exit 2)."""
    error(message)
    raise typer.Exit(ExitCode.USAGE)


def given_deployment(directory: Path | None, deployment: Path | None) -> Path:
    """The deployment of a command that takes it as DIR or as -d (or its variable).

    Ends the command as a usage error when DIR and -d name two folders, or neither
    names one.
    """
    if directory is None:
        return need_deployment(deployment)
    from typer._click.core import ParameterSource
    from typer._click.globals import get_current_context

    ctx = get_current_context(silent=True)
    named = (
        ctx is not None and ctx.get_parameter_source("deployment") is ParameterSource.COMMANDLINE
    )
    if named and deployment is not None and deployment.resolve() != directory.resolve():
        usage(f"DIR {directory} and --deployment {deployment} name two deployments")
    return directory


def need_deployment(deployment: Path | None) -> Path:
    """The deployment a command works on; a usage error when none was named and there is
    no ./deployment."""
    if deployment is None:
        usage(
            f"no deployment: give -d/--deployment DIR or set {DEPLOYMENT_ENV} "
            f"(there is no ./{_DEFAULT_DEPLOYMENT} here)"
        )
    return deployment


@contextmanager
def connect(
    url: str,
    principal: str | None = None,
    key: Path | None = None,
    deployment: Path | None = None,
    *,
    transport_pins: TransportPins | None = None,
    log_key: Ed25519PublicKey | None = None,
    key_transport: str = "x25519",
) -> Iterator[Client]:
    """A client for *url*, signing as *principal* when given, with *transport_pins* and the
    log's *log_key* if any, and keys released to it in suite *key_transport*."""
    from sovra.client import Client
    from sovra.keys import load_ed25519
    from sovra.model import check_id

    signing_key = None
    if principal is not None:
        name = check_id(principal, "principal")
        path = key or need_deployment(deployment) / "principals" / f"{name}.key"
        if key is None and not path.exists():
            raise ConfigError(
                f"no key for principal {principal}: {path} does not exist; give its private "
                "key with --key FILE, or --deployment DIR where `sovra init` wrote it"
            )
        signing_key = load_ed25519(path)
    with Client(
        url,
        principal,
        signing_key,
        transport_pins=transport_pins,
        log_key=log_key,
        key_transport=key_transport,
    ) as client:
        yield client


class _Hidden:
    """A progress bar that is not shown: what rich's Progress is when disabled, without
    the 9 ms of loading rich's progress and live display (in every piped ``sovra scan``).
    """

    def __enter__(self) -> _Hidden:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, **fields: Any) -> TaskID:
        return cast("TaskID", 0)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        return None

    def update(self, task_id: TaskID, **fields: Any) -> None:
        return None


def progress(label: str) -> Progress | _Hidden:
    """A progress bar on stderr, shown only on a terminal so pipes stay clean."""
    if not err.is_terminal:
        return _Hidden()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


# Tables written to a file or a pipe are not folded to the 80 columns of a terminal that
# is not there: a row stays on one line, for grep and for a reader of the saved output
# (unless COLUMNS asks for a width).
_UNFOLDED_WIDTH = 400


def print_table(table: RenderableType, **options: Any) -> None:
    """Print *table* on ``out``: as wide as the terminal, or unfolded into a file or pipe."""
    if out.is_terminal or os.environ.get("COLUMNS"):
        out.print(table, **options)
    else:
        Console(file=out.file, soft_wrap=True, width=_UNFOLDED_WIDTH).print(table, **options)


def print_json(value: object) -> None:
    out.print_json(json.dumps(value, ensure_ascii=False))


def emit(value: object, as_json: bool, text: Callable[[], None]) -> None:
    """Print *value* as JSON with ``--json``, else as *text* prints it for a reader."""
    if as_json:
        print_json(value)
    else:
        text()
