"""Who holds which key on one machine, and the custodian processes that hold them.

A deployment made by ``sovra init`` keeps each jurisdiction's custodian out of the
gateway's process: the gateway holds ciphertext, wrapped keys and the log key, and asks
each custodian, a process of its own, to wrap and release data keys
(:class:`~sovra.keys.remote.RemoteCustodian` over a Unix-domain socket only the gateway's
user can reach, with a secret made afresh at each start; docs/custodian-protocol.md). The
key material sits in a folder per holder::

    custodians/<J>/<J>.key           custodian J's key-encryption keys (0600)
    custodians/<J>/<J>.subjects.db   its subject keys, sealed under those
    authorities/<J>/<J>.key          authority J's signing key (0600)
    authorities/<J>.pub              its public key, which the gateway reads

Where sovra runs as root, ``sovra init`` gives each holder a system user of its own
(``sovra-custodian-pl``, ``sovra-authority-pl``, …) that owns its folder (0700), the gateway
a user of its own (``sovra-gateway``) that owns the deployment's data (the database, the
blobs, the log key), and leaves ``principals/`` to root, the command line's user. A
custodian process starts as root, drops to its folder's owner before it opens a key, and
the gateway drops to the deployment folder's owner before it opens anything: the
gateway's user can open no KEK, no subject key, no authority or principal key.
Run by another user, the same layout runs as separate processes of that one user:
docs/threat-model.md says what that does and does not protect against.

``sovra init --custodians in-process`` keeps the older layout (``custodians/<J>.key``
beside the gateway, opened in its process), for tests and for embedding.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, TypeVar, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sovra.errors import ConfigError, SovraError
from sovra.model import check_jurisdiction

__all__ = [
    "GATEWAY_USER",
    "CustodianProcesses",
    "Endpoint",
    "Handover",
    "Transport",
    "authority_key_path",
    "authority_user",
    "check_custody_owners",
    "custodian_key_path",
    "custodian_user",
    "drop_privileges",
    "ensure_user",
    "in_child",
    "owner_of",
    "reachable_by_others",
    "receive_handover",
    "report_ready",
    "report_refusal",
    "require_custodian_key",
    "separate",
]

GATEWAY_USER = "sovra-gateway"
_T = TypeVar("_T")
_READY = "ready"
_REFUSED = "error "
_USERADD_TRIES = 20


def custodian_user(jurisdiction: str) -> str:
    """The system user that owns custodian *jurisdiction*'s folder where sovra runs as root."""
    return f"sovra-custodian-{check_jurisdiction(jurisdiction).lower()}"


def authority_user(jurisdiction: str) -> str:
    """The system user that owns authority *jurisdiction*'s key where sovra runs as root."""
    return f"sovra-authority-{check_jurisdiction(jurisdiction).lower()}"


def separate(root: Path, jurisdiction: str) -> bool:
    """Whether custodian *jurisdiction* of the deployment in *root* runs as its own process."""
    return _is_folder(root / "custodians" / jurisdiction)


def _is_folder(path: Path) -> bool:
    # Not following a link: a holder's folder is a folder, never a pointer elsewhere.
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def custodian_key_path(root: Path, jurisdiction: str) -> Path:
    """Custodian *jurisdiction*'s KEK file, in its own folder or (in-process) beside the gateway."""
    code = check_jurisdiction(jurisdiction)
    if separate(root, code):
        return root / "custodians" / code / f"{code}.key"
    return root / "custodians" / f"{code}.key"


def authority_key_path(root: Path, jurisdiction: str) -> Path:
    """Authority *jurisdiction*'s private key file, in its own folder when it has one."""
    code = check_jurisdiction(jurisdiction)
    own = root / "authorities" / code
    if _is_folder(own):
        return own / f"{code}.key"
    return root / "authorities" / f"{code}.key"


def require_custodian_key(path: Path, jurisdiction: str) -> None:
    """Refuse to start custodian *jurisdiction* without its KEK file, saying what that means.

    Raises:
        ConfigError: *path* is missing, with the fix.
    """
    if not os.path.lexists(path):
        raise ConfigError(
            f"custodian {jurisdiction}'s key file {path} is missing: without it no record of "
            f"{jurisdiction} opens again. Restore it from a backup (with {path.stem}.subjects.db "
            f"beside it), or point custodians/{jurisdiction}.url at the custodian's service"
        )


# -- users ------------------------------------------------------------------------------


def ensure_user(name: str) -> tuple[int, int]:
    """The uid and gid of system user *name*, created (``useradd --system``) if missing.

    Raises:
        ConfigError: the user does not exist and cannot be created.
    """
    for _ in range(_USERADD_TRIES):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
        try:
            done = subprocess.run(  # noqa: S603 - fixed arguments, a name made above
                [  # noqa: S607 - useradd is found on the administrator's PATH
                    "useradd",
                    "--system",
                    "--user-group",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    name,
                ],
                capture_output=True,
                text=True,
                check=False,
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot create system user {name}: {exc.strerror}; create it with "
                f"`useradd --system --user-group {name}`, or run sovra as another user"
            ) from None
        if done.returncode == 0:
            continue
        # Another process may be adding a user at the same moment (/etc/passwd is locked,
        # or it made this very user): look again, then retry.
        time.sleep(0.05)
    with contextlib.suppress(KeyError):
        entry = pwd.getpwnam(name)
        return entry.pw_uid, entry.pw_gid
    raise ConfigError(
        f"cannot create system user {name} ({done.stderr.strip()}); create it with "
        f"`useradd --system --user-group {name}`"
    )


_ANYONE_ELSE = -1
"""A uid and gid no file has: permission bits are then read as they apply to "other"."""


def reachable_by_others(path: Path) -> bool:
    """Whether a user other than the owner can walk down to *path* (o+x on every folder above)."""
    return _folders_above_allow(path, _ANYONE_ELSE, _ANYONE_ELSE)


def _can_enter(path: str, uid: int, gid: int) -> bool:
    """Whether *uid* may list and enter *path* and walk down to it, by permission bits."""
    try:
        target = os.stat(path)
    except OSError:
        return True  # nothing to keep reachable
    return _allows(target, uid, gid, read=True) and _folders_above_allow(path, uid, gid)


def _folders_above_allow(path: str | Path, uid: int, gid: int) -> bool:
    """Whether *uid* may walk (x) through every folder above *path*, by permission bits."""
    current = Path(path).resolve().parent
    while True:
        if not _allows(os.stat(current), uid, gid, read=False):
            return False
        if current.parent == current:
            return True
        current = current.parent


def _allows(st: os.stat_result, uid: int, gid: int, *, read: bool) -> bool:
    want = 0o5 if read else 0o1
    if st.st_uid == uid:
        return (st.st_mode >> 6) & want == want
    if st.st_gid == gid:
        return (st.st_mode >> 3) & want == want
    return st.st_mode & want == want


def _keep_imports_reachable(uid: int, gid: int) -> None:
    """Keep the interpreter's own modules importable after dropping to *uid*.

    Python may live where only root can walk (``/root/.pyenv``), and a module imported after
    the drop (a codec, a lazily loaded part of a library) would then fail. Each such folder
    on ``sys.path``, and each loaded package's folder under it, is reached instead through a
    descriptor opened now, as ``/proc/self/fd/N``: the kernel checks the folder itself there,
    not the folders above it, so nothing beyond the library becomes readable.
    """
    mapped: dict[str, str] = {}
    for entry in sys.path:
        if entry and os.path.isdir(entry) and not _can_enter(entry, uid, gid):
            fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY)
            mapped[entry] = f"/proc/self/fd/{fd}"

    def remap(path: str) -> str:
        for old, new in mapped.items():
            if path == old or path.startswith(old + os.sep):
                return new + path[len(old) :]
        return path

    if not mapped:
        return
    sys.path[:] = [remap(p) for p in sys.path]
    for module in list(sys.modules.values()):
        folders = getattr(module, "__path__", None)
        if isinstance(folders, list):
            folders[:] = [remap(p) for p in folders]
    sys.path_importer_cache.clear()


def drop_privileges(uid: int, gid: int) -> None:
    """Become *uid* (and group *gid*, no other group) for the rest of this process.

    Raises:
        ConfigError: the process cannot change user (it is not root).
    """
    _keep_imports_reachable(uid, gid)
    try:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    except OSError as exc:
        raise ConfigError(f"cannot run as uid {uid}: {exc.strerror}") from None
    os.umask(0o077)


def in_child(work: Callable[[], _T]) -> _T:
    """Run *work* in a forked child and return its result here (both pickled through a pipe).

    For work that changes user (:func:`drop_privileges`) while this process keeps its own:
    the change cannot be undone, so it happens in a child. An exception *work* raises is
    raised here (a :class:`~sovra.errors.SovraError` or an ``OSError`` as it was, anything
    else as a :class:`~sovra.errors.ConfigError` that names it).

    Raises:
        ConfigError: the child ended without an answer, or failed unexpectedly.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        outcome: tuple[bool, object]
        try:
            outcome = (True, work())
        except (SovraError, OSError) as exc:
            outcome = (False, exc)
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
            outcome = (False, ConfigError(f"{type(exc).__name__}: {exc}"))
        try:
            with os.fdopen(write_end, "wb") as pipe:
                pickle.dump(outcome, pipe)
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    if not data:
        raise ConfigError("the child process ended without an answer (see its messages above)")
    ok, value = pickle.loads(data)  # noqa: S301 - from our own child, through a pipe
    if ok:
        return cast("_T", value)
    if isinstance(value, BaseException):
        raise value
    raise ConfigError(f"the child process failed: {value}")


# -- ownership, as sovra init leaves it --------------------------------------------------


def check_custody_owners(root: Path, jurisdictions: Iterable[str]) -> None:
    """Refuse custody folders that are not as ``sovra init`` left them (like ssh's StrictModes).

    The gateway's user owns the deployment folder and could rename what is in it; if it
    could put a folder of its own where a custodian's is, the custodian would start on keys
    the gateway made. So ``custodians/`` and ``authorities/`` MUST belong to root and be
    writable by nobody else, and each custodian's folder MUST be writable by its owner only
    and MUST NOT belong to the gateway's user.

    Raises:
        ConfigError: the first folder that is not so, and the command that fixes it.
    """
    for shared in ("custodians", "authorities"):
        _strict(root / shared, owner=0)
    gateway = os.lstat(root).st_uid
    for code in jurisdictions:
        if separate(root, code):
            folder = root / "custodians" / code
            _strict(folder, owner=None)
            if gateway != 0 and os.lstat(folder).st_uid == gateway:
                raise ConfigError(
                    f"{folder} belongs to the gateway's user, which could then read custodian "
                    f"{code}'s keys: chown -R {custodian_user(code)} {folder}"
                )


def _strict(folder: Path, *, owner: int | None) -> None:
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        raise ConfigError(f"{folder} is missing; restore it from a backup") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{folder} is not a folder (a link?); restore it from a backup")
    if owner is not None and st.st_uid != owner:
        raise ConfigError(
            f"{folder} belongs to uid {st.st_uid}, not root: another user could have put "
            f"it there. Check its contents, then: chown root {folder}"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            f"{folder} is writable by group or others; restrict it: chmod go-w {folder}"
        )


# -- custodian processes -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a custodian process listens, and the secret its callers present.

    ``url`` is ``unix:<path>`` for a local socket (frames, :mod:`sovra.keys._frames`) or
    ``http://127.0.0.1:<port>`` for the HTTP service.
    """

    url: str
    token: bytes


Transport = Literal["unix", "http"]


class CustodianProcesses:
    """One ``sovra custodian serve`` process per jurisdiction, for as long as this object lives.

    Each listens on a socket this process binds and hands over, so the address is known
    before the child starts and no port or path is raced for; the secret and the log's
    public key travel on the child's standard input, never on disk or in ``ps``. The child
    keeps reading that input: when this process ends, however it ends, the child sees end
    of file and stops.

    By default (``transport="unix"``) each custodian listens on a Unix-domain socket in a
    folder made for them (0700) that only the gateway's user may enter; the custodian
    never needs the path, only the socket handed over, and it serves no connection from a
    process of another user (``SO_PEERCRED``). ``transport="http"`` keeps the loopback
    HTTP service (the same calls, slower; the benchmarks compare the two).
    """

    def __init__(
        self,
        root: Path,
        jurisdictions: Sequence[str],
        log_key: Ed25519PublicKey,
        *,
        transport: Transport = "unix",
    ) -> None:
        """Start the custodians of *jurisdictions* for the deployment in *root*.

        Raises:
            ConfigError: a custodian refused to start (its message, with the path and the
                fix). The caller checks the folders first (:func:`check_custody_owners`).
        """
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self._folder: Path | None = None
        self._owner = os.getpid()
        log_hex = log_key.public_bytes_raw().hex()
        pending: list[tuple[str, subprocess.Popen[bytes], socket.socket, bytes, str]] = []
        gateway = _gateway_uid(root)
        try:
            for code in jurisdictions:
                listener, url = self._listen(code, transport, gateway)
                child = subprocess.Popen(  # noqa: S603 - our own interpreter and command
                    [
                        sys.executable,
                        "-m",
                        "sovra.cli",
                        "custodian",
                        "serve",
                        "--jurisdiction",
                        code,
                        "--deployment",
                        str(root),
                        "--listen-fd",
                        str(listener.fileno()),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    pass_fds=(listener.fileno(),),
                )
                self._children[code] = child
                token = secrets.token_bytes(32)
                pending.append((code, child, listener, token, url))
            for code, child, _, token, url in pending:
                self.endpoints[code] = Endpoint(
                    url, _handshake(code, child, token, f"{log_hex} {gateway}")
                )
        except BaseException:
            self.close()
            raise
        finally:
            for _, _, listener, _, _ in pending:
                listener.close()

    def _listen(self, code: str, transport: Transport, gateway: int) -> tuple[socket.socket, str]:
        """A listening socket for custodian *code*, and the URL the gateway reaches it at."""
        if transport == "http":
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind(("127.0.0.1", 0))
            listener.listen(128)
            return listener, f"http://127.0.0.1:{listener.getsockname()[1]}"
        if self._folder is None:
            # Short (a socket path has at most 107 bytes) and private: made 0700 by
            # mkdtemp, then given to the gateway's user, the only one that connects.
            self._folder = Path(tempfile.mkdtemp(prefix="sovra-custodians-"))
            if os.geteuid() == 0:
                os.chown(self._folder, gateway, -1)
        path = self._folder / f"{code}.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(path))
            os.chmod(path, 0o600)
            if os.geteuid() == 0:
                os.chown(path, gateway, -1)
            listener.listen(128)
        except BaseException:
            listener.close()
            raise
        return listener, f"unix:{path}"

    def close(self) -> None:
        """Stop every custodian process (closing its input tells it to)."""
        for child in self._children.values():
            for pipe in (child.stdin, child.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
        for child in self._children.values():
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                # As another user (after dropping privileges) the kill is not allowed;
                # the child still stops, at the end of its input.
                with contextlib.suppress(OSError):
                    child.kill()
                    child.wait(timeout=30)
        self._children.clear()
        if self._folder is not None and os.getpid() == self._owner:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def forget(self) -> None:
        """In a forked child: drop this process's copies of the custodians' pipes, so that
        the custodians still stop when their starter ends (their input's last writer),
        and never stop or wait for them here (they are not this process's children)."""
        for child in self._children.values():
            for pipe in (child.stdin, child.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
            child.returncode = 0  # not ours to reap: Popen's finaliser leaves it alone
        self._children.clear()
        self._folder = None  # the starter's to remove


def _gateway_uid(root: Path) -> int:
    """The user the gateway of *root* runs as: as root, the deployment folder's owner
    (:func:`sovra.deployment.become_gateway` drops to it), else this process's user."""
    if os.geteuid() == 0:
        return owner_of(root)[0]
    return os.geteuid()


def _handshake(code: str, child: subprocess.Popen[bytes], token: bytes, rest: str) -> bytes:
    stdin, stdout = child.stdin, child.stdout
    if stdin is None or stdout is None:  # both are pipes, as Popen was told
        raise ConfigError(f"custodian {code} was started without its pipes")
    try:
        stdin.write(f"{token.hex()} {rest}\n".encode())
        stdin.flush()
    except OSError:
        pass  # the child is gone already: its exit status says why, below
    answer = stdout.readline().decode("utf-8", "replace").rstrip("\n")
    if answer == _READY:
        return token
    child.wait()
    reason = (
        answer[len(_REFUSED) :]
        if answer.startswith(_REFUSED)
        else (f"it exited with status {child.returncode} (its own messages are above)")
    )
    raise ConfigError(f"custodian {code} did not start: {reason}")


@dataclass(frozen=True, slots=True)
class Handover:
    """What a custodian process started by :class:`CustodianProcesses` receives."""

    token: bytes
    log_key: Ed25519PublicKey
    listener: socket.socket
    gateway_uid: int
    """The only user whose processes may connect to a Unix-domain listener."""


def receive_handover(listen_fd: int, stdin: IO[bytes]) -> Handover:
    """Read the secret, the log key and the gateway's user id from the parent, and take
    the listening socket.

    Raises:
        ConfigError: the parent sent something else.
    """
    line = stdin.readline().decode("ascii", "replace").split()
    try:
        token_hex, log_hex, uid = line
        token, log_raw = bytes.fromhex(token_hex), bytes.fromhex(log_hex)
        log_key = Ed25519PublicKey.from_public_bytes(log_raw)
        gateway_uid = int(uid)
    except ValueError:
        raise ConfigError("the parent process sent no secret, log key and user id") from None
    return Handover(token, log_key, socket.socket(fileno=listen_fd), gateway_uid)


def report_ready(out: IO[str]) -> None:
    """Tell the parent that the custodian is open and about to serve."""
    out.write(_READY + "\n")
    out.flush()


def report_refusal(out: IO[str], message: str) -> None:
    """Tell the parent why the custodian does not start (one line)."""
    out.write(_REFUSED + " ".join(message.split()) + "\n")
    out.flush()


def owner_of(path: Path) -> tuple[int, int]:
    """The uid and gid of *path*'s owner (its own group, not the file's, as a login has).

    Raises:
        ConfigError: *path* is missing.
    """
    try:
        uid = os.lstat(path).st_uid
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing; restore it from a backup") from None
    try:
        return uid, pwd.getpwuid(uid).pw_gid
    except KeyError:
        return uid, os.lstat(path).st_gid
