"""Secret key files on disk: written atomically with mode 0600, refused when open to others.

Ed25519 private keys are stored as their raw 32-byte seed, nothing else: a fixed size lets
the reader check the file exactly, and no PEM/PKCS#8 parser runs on a secret. Public keys
travel as raw 32 bytes (:func:`public_bytes`), the form :class:`sovra.model.Principal`
and signed notes use.

Like OpenSSH with private keys, any group or other permission bit on a secret file is
refused rather than silently tolerated, so a mistake shows up at start, not after a leak.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from sovra.errors import ConfigError

__all__ = [
    "ED25519_SEED_SIZE",
    "MAX_SECRET_BYTES",
    "StrPath",
    "generate_ed25519",
    "load_ed25519",
    "no_duplicate_fields",
    "public_bytes",
    "read_secret",
    "write_secret",
]

StrPath = str | os.PathLike[str]
ED25519_SEED_SIZE = 32
MAX_SECRET_BYTES = 1024 * 1024
"""Upper bound on any secret file; a larger one is a wrong path, not a key."""
_OPEN_TO_OTHERS = stat.S_IRWXG | stat.S_IRWXO


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_secret(path: StrPath, data: bytes, *, overwrite: bool = False) -> None:
    """Write *data* to *path* atomically, readable by the owner only.

    The bytes go to a temporary file in the same directory created with mode 0600,
    are fsynced, and then take the final name, so a crash leaves either the old file or
    the complete new one, never a partial secret.

    Args:
        path: where the secret goes.
        data: the secret bytes, at most :data:`MAX_SECRET_BYTES`.
        overwrite: replace an existing file instead of refusing.

    Raises:
        ConfigError: *path* exists and *overwrite* is False, the directory is missing or
            not writable, or *data* is over the size limit.
    """
    target = Path(path)
    if len(data) > MAX_SECRET_BYTES:
        raise ConfigError(f"secret of {len(data)} bytes is over the {MAX_SECRET_BYTES} limit")
    if not overwrite and os.path.lexists(target):
        raise ConfigError(
            f"{target} already exists; refusing to overwrite a secret key file "
            "(move it away first if it is really meant to be replaced)"
        )
    directory = target.parent
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise ConfigError(f"cannot create a file in {directory}: {exc.strerror}") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            # mkstemp already uses 0600; set it again so the mode never rests on that detail.
            os.fchmod(fh.fileno(), 0o600)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, target)
        else:
            # A hard link fails if the name exists, closing the race a check-then-rename
            # would leave open between the lexists() above and here.
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise ConfigError(
                    f"{target} already exists; refusing to overwrite a secret key file"
                ) from None
            tmp.unlink()
        _fsync_dir(directory)
    except OSError as exc:
        raise ConfigError(f"cannot write secret file {target}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def read_secret(
    path: StrPath, *, expected_len: int | None = None, max_len: int = MAX_SECRET_BYTES
) -> bytes:
    """Read a secret file that only its owner may access.

    Args:
        path: the secret file.
        expected_len: if given, the exact size the file must have.
        max_len: refuse files larger than this.

    Returns:
        The file's bytes.

    Raises:
        ConfigError: the file is missing, not a regular file, has any group or other
            permission bit (the message says to run ``chmod 600 PATH``), is larger than
            *max_len*, or is not *expected_len* bytes long.
    """
    target = Path(path)
    try:
        fh = target.open("rb")
    except FileNotFoundError:
        raise ConfigError(f"secret file {target} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot open secret file {target}: {exc.strerror}") from None
    with fh:
        # fstat on the open descriptor, so the checked file is the one that is read.
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"secret file {target} is not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        if mode & _OPEN_TO_OTHERS:
            raise ConfigError(
                f"secret file {target} has mode {mode:04o} and is open to group or others; "
                f"restrict it to its owner with: chmod 600 {target}"
            )
        data = fh.read(max_len + 1)
    if len(data) > max_len:
        raise ConfigError(f"secret file {target} is over the {max_len}-byte limit")
    if expected_len is not None and len(data) != expected_len:
        raise ConfigError(
            f"secret file {target} holds {len(data)} bytes; expected exactly {expected_len}"
        )
    return data


def generate_ed25519(path: StrPath, *, overwrite: bool = False) -> Ed25519PrivateKey:
    """Generate an Ed25519 key and store its raw 32-byte seed at *path* (mode 0600).

    Raises:
        ConfigError: as :func:`write_secret`.
    """
    key = Ed25519PrivateKey.generate()
    write_secret(path, key.private_bytes_raw(), overwrite=overwrite)
    return key


def load_ed25519(path: StrPath) -> Ed25519PrivateKey:
    """Load an Ed25519 key stored by :func:`generate_ed25519`.

    Raises:
        ConfigError: as :func:`read_secret`, or the file is not exactly 32 bytes.
    """
    seed = read_secret(path, expected_len=ED25519_SEED_SIZE)
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The raw 32-byte public key of *key*."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes_raw()


def no_duplicate_fields(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A ``json.loads`` object hook for the key files: a field named twice is an error.

    Raises:
        ValueError: a duplicate field (``json.loads`` passes it on).
    """
    obj: dict[str, Any] = {}
    for name, value in pairs:
        if name in obj:
            raise ValueError(f"duplicate field {name!r}")
        obj[name] = value
    return obj
