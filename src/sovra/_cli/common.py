"""What every ``sovra`` sub-command shares: consoles, options, the client, error output."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, cast

import typer
from rich.console import Console
from rich.text import Text

from sovra.errors import ConfigError, IntegrityError, SovraError

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
    "DeploymentDir",
    "Endpoint",
    "KeyOpt",
    "SecretKeyEnv",
    "SigningRegion",
    "Url",
    "VkeyOpt",
    "connect",
    "err",
    "error",
    "fail",
    "out",
    "print_json",
    "progress",
    "trusted_key",
    "warn",
]

# soft_wrap: a line of text is never broken at the console's width, so a path or a
# message can be copied or grepped whole; tables still fit the width.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

DEFAULT_URL = "http://127.0.0.1:8750"
DeploymentDir = Annotated[Path, typer.Option("--deployment", "-d", help="deployment directory")]
Url = Annotated[str, typer.Option("--url", envvar="SOVRA_URL", help="gateway URL")]
As = Annotated[str, typer.Option("--as", help="principal id to act as")]
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
Endpoint = Annotated[
    str | None,
    typer.Option("--s3-endpoint", help="the S3 endpoint URL [default: AWS itself]"),
]
SigningRegion = Annotated[
    str, typer.Option("--s3-signing-region", help="the region S3 requests are signed for")
]
AccessKeyEnv = Annotated[
    str | None,
    typer.Option(
        "--s3-access-key-env",
        metavar="VAR",
        help="the environment variable holding the access key (with --s3-secret-key-env) "
        "[default: the S3 client's own chain: AWS_* variables, an instance role]",
    ),
]
SecretKeyEnv = Annotated[
    str | None,
    typer.Option("--s3-secret-key-env", metavar="VAR", help="the variable holding the secret key"),
]
CredentialsFile = Annotated[
    Path | None,
    typer.Option(
        "--s3-credentials-file",
        help='instead: a JSON file {"access_key": ..., "secret_key": ...} only its owner '
        "can read (chmod 600)",
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
    raise typer.Exit(3 if isinstance(exc, IntegrityError) else 1)


@contextmanager
def connect(
    url: str,
    principal: str | None = None,
    key: Path | None = None,
    deployment: Path = Path(),
    *,
    transport_pins: TransportPins | None = None,
    log_key: Ed25519PublicKey | None = None,
) -> Iterator[Client]:
    """A client for *url*, signing as *principal* when given, with *transport_pins* and the
    log's *log_key* if any."""
    from sovra.client import Client
    from sovra.keys import load_ed25519
    from sovra.model import check_id

    signing_key = None
    if principal is not None:
        path = key or deployment / "principals" / f"{check_id(principal, 'principal')}.key"
        if key is None and not path.exists():
            raise ConfigError(
                f"no key for principal {principal}: {path} does not exist; give its private "
                "key with --key FILE, or --deployment DIR where `sovra init` wrote it"
            )
        signing_key = load_ed25519(path)
    with Client(
        url, principal, signing_key, transport_pins=transport_pins, log_key=log_key
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


def print_json(value: object) -> None:
    out.print_json(json.dumps(value, ensure_ascii=False))
