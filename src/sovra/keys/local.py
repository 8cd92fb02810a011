"""The in-process custodian: KEKs in one 0600 key file (:mod:`sovra.keys.keyfile`),
subject keys in the deployment's subject-key store, every check in
:class:`~sovra.keys.custodian.BaseCustodian`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sovra.errors import (
    BadRequest,
    ConfigError,
    IntegrityError,
    NotFound,
)
from sovra.keys import _aead, transport, values
from sovra.keys.custodian import (
    DEFAULT_JOURNAL_SIZE,
    DEFAULT_MAX_AUTHORIZATION_AGE_MS,
    BaseCustodian,
    Clock,
    system_clock_ms,
)
from sovra.keys.files import StrPath, write_secret
from sovra.keys.keyfile import load_keks, serialize_key_file
from sovra.keys.protocol import CustodianStatus
from sovra.keys.sealing import Sealer, Unlock, new_sealer, seal_key_file
from sovra.keys.subjects import (
    SubjectKeyRow,
    SubjectKeys,
    SubjectKeyStore,
    SubjectShredded,
    open_subject_keys,
    require_subject_store,
    subjects_database_path,
    subjects_path,
)
from sovra.keys.witnessed import ReleasePolicy
from sovra.model import (
    check_jurisdiction,
)
from sovra.store.pg_timeouts import PgTimeouts

__all__ = ["LocalCustodian"]

_SUBJECT_TAG = b"sovra-subject-key/v1\n"
_SUBJECT_CACHE_SIZE = 4096


class LocalCustodian(BaseCustodian):
    """An in-process custodian whose KEKs live in one 0600 key file.

    Build one with :meth:`create` (new key file) or :meth:`open` (existing file).
    """

    def __init__(
        self,
        path: StrPath,
        jurisdiction: str,
        log_key: Ed25519PublicKey,
        keks: Mapping[int, bytes],
        *,
        clock: Clock = system_clock_ms,
        max_authorization_age_ms: int = DEFAULT_MAX_AUTHORIZATION_AGE_MS,
        journal_size: int = DEFAULT_JOURNAL_SIZE,
        unlock: Unlock | None = None,
        sealer: Sealer | None = None,
        subjects: SubjectKeys | None = None,
        witnesses: ReleasePolicy | None = None,
        transport_suite: str = transport.DEFAULT_SUITE,
    ) -> None:
        """Wrap already-loaded KEKs; prefer :meth:`create` and :meth:`open`. The subject
        keys are in *subjects*, by default the SQLite store beside the key file.

        Raises:
            BadRequest: *jurisdiction* is not a two-letter code.
            ConfigError: no KEKs, a KEK that is not 32 bytes, a version below 1, or a
                non-positive age limit or journal size.
        """
        super().__init__(
            jurisdiction,
            log_key,
            clock=clock,
            max_authorization_age_ms=max_authorization_age_ms,
            journal_size=journal_size,
            witnesses=witnesses,
        )
        if not keks:
            raise ConfigError(f"custodian {jurisdiction} has no KEK")
        for version, key in keks.items():
            if version < 1 or len(key) != _aead.KEY_SIZE:
                raise ConfigError(f"custodian {jurisdiction} KEK version {version} is invalid")
        self._path = Path(path)
        self._keks = dict(keks)
        self._kek_ciphers: tuple[dict[int, bytes], dict[int, AESGCM]] = (self._keks, {})
        # One lock orders subject-key creation, rewraps, shreds and KEK changes, so a
        # KEK version is never destroyed while a subject key sealed under it is in use.
        self._lock = threading.RLock()
        self._subjects = subjects or SubjectKeyStore(subjects_path(self._path))
        self._unlock = unlock
        self._sealer = sealer
        self.transport_suite = transport.check_suite(transport_suite)
        # The transport key of each KEK version in use, beside the very KEK object it was
        # derived from (a hybrid key takes an ML-KEM key generation to derive).
        self._transport_keys: dict[int, tuple[bytes, transport.PrivateKey]] = {}
        self._file_stamp = self._stamp()
        # Recently used subject keys, unsealed. The cache is dropped whenever another
        # process commits to the store (a shred by ``sovra keys shred``), and a shred here
        # evicts its entry, so a shredded key is never served from memory.
        # Each entry keeps the key and its AES-GCM object, made once per cached subject.
        self._cache: OrderedDict[str, tuple[bytes, AESGCM]] = OrderedDict()
        self._cache_version = self._subjects.data_version()
        # Set by each request's start: the next look at the store reads its version too
        # (in the transaction that reads or makes keys, or on its own if the cache holds
        # them all). A look after a request started covers that request.
        self._version_due = False

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self._path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _refresh(self) -> None:
        """Reload the KEK file if another process (``sovra keys rotate``) changed it.

        A stat per call: cheap, and it keeps a running gateway from sealing new subject
        keys under a version the operator has just rotated away from.
        """
        stamp = self._stamp()
        if stamp is None or stamp == self._file_stamp:
            return
        with self._lock:
            keks, sealer = load_keks(self._path, self._jurisdiction, self._unlock)
            self._keks, self._sealer = keks, sealer
            self._file_stamp = stamp

    def _write_keks(self, keks: dict[int, bytes]) -> None:
        data = serialize_key_file(self._jurisdiction, keks)
        if self._sealer is not None:
            data = seal_key_file(data, self._jurisdiction, self._sealer)
        write_secret(self._path, data, overwrite=True)
        self._keks = keks
        self._file_stamp = self._stamp()

    @property
    def sealed_at_rest(self) -> bool:
        """Whether the KEK file is sealed under a passphrase or key file."""
        return self._sealer is not None

    def seal_at_rest(self, unlock: Unlock) -> None:
        """Rewrite the KEK file sealed under *unlock* (a passphrase or a key file).

        From then on the file opens only with :meth:`open` given the same unlock.

        Raises:
            ConfigError: the file cannot be rewritten; it stays as it was.
        """
        with self._lock:
            previous = (self._sealer, self._unlock)
            self._sealer, self._unlock = new_sealer(unlock), unlock
            try:
                self._write_keks(dict(self._keks))
            except ConfigError:
                self._sealer, self._unlock = previous
                raise

    @classmethod
    def create(
        cls,
        path: StrPath,
        jurisdiction: str,
        log_key: Ed25519PublicKey,
        *,
        clock: Clock = system_clock_ms,
        max_authorization_age_ms: int = DEFAULT_MAX_AUTHORIZATION_AGE_MS,
        journal_size: int = DEFAULT_JOURNAL_SIZE,
        unlock: Unlock | None = None,
        transport_suite: str = transport.DEFAULT_SUITE,
    ) -> LocalCustodian:
        """Generate KEK version 1 and write a new key file (mode 0600) at *path*.

        With *unlock*, the file is sealed at rest under that passphrase or key file.

        Raises:
            BadRequest: *jurisdiction* is not a two-letter code.
            ConfigError: *path* already exists or cannot be written.
        """
        check_jurisdiction(jurisdiction)
        stale = subjects_path(path)
        if stale.exists():
            raise ConfigError(
                f"{stale} already exists; a new custodian starts with no subject keys "
                "(move the old store away first)"
            )
        keks = {1: _aead.new_key()}
        sealer = None if unlock is None else new_sealer(unlock)
        data = serialize_key_file(jurisdiction, keks)
        if sealer is not None:
            data = seal_key_file(data, jurisdiction, sealer)
        write_secret(path, data)
        return cls(
            path,
            jurisdiction,
            log_key,
            keks,
            clock=clock,
            max_authorization_age_ms=max_authorization_age_ms,
            journal_size=journal_size,
            unlock=unlock,
            sealer=sealer,
            transport_suite=transport_suite,
        )

    @classmethod
    def open(
        cls,
        path: StrPath,
        jurisdiction: str,
        log_key: Ed25519PublicKey,
        *,
        clock: Clock = system_clock_ms,
        max_authorization_age_ms: int = DEFAULT_MAX_AUTHORIZATION_AGE_MS,
        journal_size: int = DEFAULT_JOURNAL_SIZE,
        unlock: Unlock | None = None,
        database: str | None = None,
        witnesses: ReleasePolicy | None = None,
        transport_suite: str = transport.DEFAULT_SUITE,
        pg_timeouts: PgTimeouts | None = None,
    ) -> LocalCustodian:
        """Load the custodian of *jurisdiction* from its key file.

        Its subject keys are in the PostgreSQL *database* when given, else in the one
        ``<J>.database`` beside the key file names, else in the SQLite store beside it
        (:func:`~sovra.keys.subjects.open_subject_keys`). It releases keys only against
        witnessed checkpoints when *witnesses* is given or a ``<J>.witnesses`` policy is
        beside the key file (:mod:`sovra.keys.witnessed`): its own configuration, never
        the caller's.

        Args:
            path: the KEK file; its subject-key store is beside it.
            jurisdiction: the jurisdiction served.
            log_key: the log's public key.
            clock: UNIX ms.
            max_authorization_age_ms: freshness limit of a logged allow.
            journal_size: requests remembered.
            unlock: the passphrase or key file of a file sealed at rest.
            transport_suite: the HPKE suite of the transport key (the jurisdiction's
                ``key_transport``).
            pg_timeouts: how long a session of a PostgreSQL subject-key store may wait
                (``[postgres]`` of ``sovra.toml``; the defaults without).

        Raises:
            BadRequest: *jurisdiction* is not a two-letter code, or no such suite.
            ConfigError: the file is missing, open to group or others, oversized,
                malformed, of another jurisdiction, a KEK fails its check value, or it is
                sealed and *unlock* is missing or wrong; or the subject-key store beside
                it is missing (an existing custodian never starts from an empty one);
                or its witness policy is unreadable or invalid.
        """
        check_jurisdiction(jurisdiction)
        keks, sealer = load_keks(path, jurisdiction, unlock)
        witnesses = witnesses or ReleasePolicy.load(path)
        if database is None and not subjects_database_path(path).exists():
            require_subject_store(subjects_path(path))
        subjects = open_subject_keys(path, jurisdiction, database, timeouts=pg_timeouts)
        try:
            return cls(
                path,
                jurisdiction,
                log_key,
                keks,
                clock=clock,
                max_authorization_age_ms=max_authorization_age_ms,
                journal_size=journal_size,
                unlock=unlock,
                sealer=sealer,
                subjects=subjects,
                witnesses=witnesses,
                transport_suite=transport_suite,
            )
        except BaseException:
            subjects.close()
            raise

    @property
    def current_kek_version(self) -> int:
        """The highest KEK version; new subject keys are sealed under it."""
        self._refresh()
        return max(self._keks)

    def close(self) -> None:
        """Close the subject-key store."""
        self._subjects.close()

    def rotate(self) -> int:
        """Add a new KEK version, make it current, and rewrite the key file atomically.

        Subject keys stay sealed under their versions until :meth:`rewrap` moves them;
        every record keeps opening throughout.

        Returns:
            The new current KEK version.

        Raises:
            ConfigError: the key file cannot be rewritten; nothing changes in memory.
        """
        with self._lock:
            keks = {**self._keks, self.current_kek_version + 1: _aead.new_key()}
            self._write_keks(keks)
            return max(keks)

    def rewrap(
        self, *, batch: int = 256, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Reseal every subject key held under an older KEK version under the current one.

        Runs in short batches, each its own transaction, so wraps, unwraps and shreds go
        on meanwhile; no record and no wrapped data key is touched.

        Args:
            batch: subject keys per transaction.
            progress: called with ``(done, total)`` after each batch.

        Returns:
            How many subject keys were resealed.

        Raises:
            IntegrityError: a stored subject key does not open under its KEK version.
            ConfigError: the store could not be written; rerun to continue.
        """
        if batch <= 0:
            raise BadRequest("batch must be positive")
        target = self.current_kek_version
        total = sum(n for v, n in self._subjects.counts().items() if v < target)
        done = 0
        while True:
            with self._lock:
                rows = self._subjects.sealed_below(target, batch)
                if not rows:
                    break
                changes = []
                for subject, version, sealed in rows:
                    key = self._open_subject_key(subject, version, sealed)
                    changes.append(
                        (subject, version, target, self._seal_subject_key(subject, target, key))
                    )
                done += self._subjects.replace(changes)
            if progress is not None:
                progress(done, max(total, done))
        return done

    def destroy_unused(self) -> list[int]:
        """Destroy every KEK version older than the current one that seals no subject key.

        Returns:
            The versions destroyed (removed from the key file for good).

        Raises:
            ConfigError: the key file cannot be rewritten; nothing is destroyed.
        """
        with self._lock:
            counts = self._subjects.counts()
            current = self.current_kek_version
            unused = [v for v in self._keks if v != current and counts.get(v, 0) == 0]
            if not unused:
                return []
            self._write_keks({v: k for v, k in self._keks.items() if v not in unused})
            return sorted(unused)

    def status(self) -> CustodianStatus:
        """KEK versions held, how many subject keys each seals, and shredded subjects."""
        with self._lock:
            counts = self._subjects.counts()
            versions = {v: counts.get(v, 0) for v in sorted(self._keks)}
            orphaned = {v: n for v, n in counts.items() if v not in self._keks}
            return CustodianStatus(
                jurisdiction=self._jurisdiction,
                current_kek_version=self.current_kek_version,
                versions=versions,
                subjects=sum(counts.values()),
                shredded=self._subjects.shredded_count(),
                orphaned=orphaned,
            )

    # -- the hierarchy ------------------------------------------------------------------

    def _subject_aad(self, subject: str, version: int) -> bytes:
        return _SUBJECT_TAG + f"{self._jurisdiction}\n{version}\n{subject}".encode()

    def _kek_cipher(self, version: int) -> AESGCM | None:
        """The AES-GCM object of KEK *version* (made once per version and key file), or
        None when the version is not held."""
        keks, ciphers = self._keks, self._kek_ciphers
        if ciphers[0] is not keks:  # the key file was reloaded or rewritten
            ciphers = self._kek_ciphers = (keks, {})
        cipher = ciphers[1].get(version)
        if cipher is None and version in keks:
            cipher = ciphers[1][version] = AESGCM(keks[version])
        return cipher

    def _seal_subject_key(self, subject: str, version: int, key: bytes) -> bytes:
        cipher = self._kek_cipher(version)
        if cipher is None:
            raise ConfigError(f"custodian {self._jurisdiction} holds no KEK version {version}")
        return _aead.seal_with(cipher, key, self._subject_aad(subject, version))

    def _open_subject_key(self, subject: str, version: int, sealed: bytes) -> bytes:
        cipher = self._kek_cipher(version)
        if cipher is None:
            self._refresh()
            cipher = self._kek_cipher(version)
        if cipher is None:
            raise IntegrityError(f"subject key is sealed under KEK version {version}, not held")
        key = _aead.open_with(cipher, sealed, self._subject_aad(subject, version))
        if len(key) != _aead.KEY_SIZE:
            raise IntegrityError(f"subject key is {len(key)} bytes")
        return key

    def _begin(self) -> None:
        # Once per request: the cache is dropped if another process committed to the
        # store (a shred by ``sovra keys shred``), found at the request's first look at
        # the store, which is then still one transaction.
        with self._lock:
            self._version_due = True

    def _note_version(self, version: int) -> None:
        """Drop the cache if the store's *version* changed; the caller holds the lock."""
        self._version_due = False
        if version != self._cache_version:
            self._cache.clear()
            self._cache_version = version

    def _subject_key(self, subject: str, *, create: bool) -> bytes:
        return self._subject_entry(subject, create=create)[0]

    def _subject_entry(self, subject: str, *, create: bool) -> tuple[bytes, AESGCM]:
        with self._lock:
            cached = None if self._version_due else self._cache.get(subject)
            if cached is not None:
                self._cache.move_to_end(subject)
                return cached
            return self._subject_entries([subject], create=create)[subject]

    def _subject_entries(
        self, subjects: Sequence[str], *, create: bool
    ) -> dict[str, tuple[bytes, AESGCM]]:
        """The keys of *subjects* (distinct), from the cache or the store; with *create*,
        the missing ones are made and stored, all or none. At most one store transaction
        (:meth:`SubjectKeys.fetch <sovra.keys.subjects.SubjectKeys.fetch>`).

        Raises:
            SubjectShredded: with *create*, a subject's key was destroyed; nothing stored.
            NotFound: without *create*, a subject's key was destroyed.
            IntegrityError: without *create*, a subject has no key, or a stored key does
                not open.
            ConfigError: the store could not be written; nothing stored.
        """
        with self._lock:
            due = self._version_due
            missing = [s for s in subjects if s not in self._cache]
            if due and not missing:
                self._note_version(self._subjects.data_version())
                due, missing = False, [s for s in subjects if s not in self._cache]
            if missing:
                # A due version check reads every subject of the call: if the version
                # changed, the cached keys are dropped and the rows read serve instead.
                self._load_subject_keys(list(subjects) if due else missing, create=create)
            found: dict[str, tuple[bytes, AESGCM]] = {}
            for subject in subjects:
                found[subject] = self._cache[subject]
                self._cache.move_to_end(subject)
            while len(self._cache) > _SUBJECT_CACHE_SIZE:
                self._cache.popitem(last=False)
            return found

    def _load_subject_keys(self, subjects: list[str], *, create: bool) -> None:
        """Put the keys of *subjects* in the cache: one store transaction reads them and
        the store's version, and with *create* makes the missing ones; the caller holds
        the lock."""
        made: dict[str, tuple[bytes, bytes]] = {}

        def make(new: list[str]) -> list[SubjectKeyRow]:
            version = self.current_kek_version
            rows = []
            for subject in new:
                key = _aead.new_key()
                sealed = self._seal_subject_key(subject, version, key)
                made[subject] = (key, sealed)
                rows.append((subject, version, sealed))
            return rows

        fetched = self._subjects.fetch(subjects, make if create else None, self._clock())
        self._note_version(fetched.version)
        if create:
            for subject in subjects:
                if subject in fetched.shredded:
                    raise SubjectShredded(subject, fetched.shredded[subject])
        for subject in subjects:
            if subject in self._cache:
                continue  # still valid: the version did not change
            row = fetched.keys.get(subject)
            if row is not None:
                mine = made.get(subject)
                if mine is not None and mine[1] == row[2]:
                    key = mine[0]
                else:
                    # Stored before (or by another process in between): its key, not one
                    # made here.
                    key = self._open_subject_key(subject, row[1], row[2])
                self._cache[subject] = (key, AESGCM(key))
            elif subject in fetched.shredded:
                when = fetched.shredded[subject]
                raise NotFound(f"the subject's key was destroyed (crypto-shredded) at {when} ms")
            else:
                raise IntegrityError("the subject has no key")

    def _warm(self, subjects: Sequence[str]) -> None:
        with self._lock:
            due = self._version_due
            missing = [s for s in subjects if s not in self._cache]
            if not missing:
                return  # the first key used checks a due version
            fetched = self._subjects.fetch(list(subjects) if due else missing, None, self._clock())
            self._note_version(fetched.version)
            for subject, version, sealed in fetched.keys.values():
                if subject in self._cache:
                    continue
                try:
                    key = self._open_subject_key(subject, version, sealed)
                except IntegrityError:
                    continue  # the request that needs it reports it, on its own
                self._cache[subject] = (key, AESGCM(key))
            while len(self._cache) > _SUBJECT_CACHE_SIZE:
                self._cache.popitem(last=False)

    def _transport_private(self, version: int) -> transport.PrivateKey:
        kek = self._keks.get(version)
        if kek is None:
            self._refresh()
            kek = self._keks.get(version)
        if kek is None:
            raise BadRequest(f"custodian {self._jurisdiction} holds no KEK version {version}")
        cached = self._transport_keys.get(version)
        if cached is not None and cached[0] is kek:
            return cached[1]
        private = transport.derive_transport_key(
            kek, self._jurisdiction, version, self.transport_suite
        )
        # Keys of versions rotated away or reloaded are dropped with this change.
        kept = {v: e for v, e in self._transport_keys.items() if self._keks.get(v) is e[0]}
        self._transport_keys = {**kept, version: (kek, private)}
        return private

    def _value_keys(self, subjects: Sequence[str], *, create: bool) -> dict[str, bytes]:
        entries = self._subject_entries(subjects, create=create)
        return {
            subject: values.value_key(key, self._jurisdiction, subject)
            for subject, (key, _) in entries.items()
        }

    def _wrap_with(self, subject: str, data_key: bytes, aad: bytes) -> bytes:
        return self._wrap_many_with([(subject, data_key, aad)])[0]

    def _wrap_many_with(self, items: Sequence[tuple[str, bytes, bytes]]) -> list[bytes]:
        entries = self._subject_entries(list(dict.fromkeys(s for s, _, _ in items)), create=True)
        return [_aead.seal_with(entries[subject][1], key, aad) for subject, key, aad in items]

    def _unwrap_with(self, subject: str, blob: bytes, aad: bytes) -> bytes:
        return _aead.open_with(self._subject_entry(subject, create=False)[1], blob, aad)

    def _shred(self, subject: str) -> bool:
        with self._lock:
            self._cache.pop(subject, None)
            return self._subjects.shred(subject, self._clock())
