"""Secret key files: 0600 on creation, refused when open to others, atomic and bounded."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sovra.errors import ConfigError
from sovra.keys import files
from sovra.keys.files import (
    generate_ed25519,
    load_ed25519,
    public_bytes,
    read_secret,
    write_secret,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    # The most permissive umask: a 0600 result then comes from the code, not the umask.
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("open_umask")
def test_write_creates_0600_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "secret.key"
    write_secret(target, b"s3cret")
    assert _mode(target) == 0o600
    assert target.read_bytes() == b"s3cret"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret.key"]
    assert read_secret(target) == b"s3cret"


def test_write_refuses_to_overwrite_and_keeps_the_old_secret(tmp_path: Path) -> None:
    target = tmp_path / "secret.key"
    write_secret(target, b"first")
    with pytest.raises(ConfigError, match="already exists; refusing to overwrite"):
        write_secret(target, b"second")
    assert target.read_bytes() == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret.key"]


def test_write_refuses_a_dangling_symlink_too(tmp_path: Path) -> None:
    target = tmp_path / "secret.key"
    target.symlink_to(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="already exists"):
        write_secret(target, b"x")
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.usefixtures("open_umask")
def test_overwrite_replaces_atomically_with_0600(tmp_path: Path) -> None:
    target = tmp_path / "secret.key"
    target.write_bytes(b"old")
    target.chmod(0o644)
    write_secret(target, b"new", overwrite=True)
    assert target.read_bytes() == b"new"
    assert _mode(target) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret.key"]


def test_write_into_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot create a file in"):
        write_secret(tmp_path / "missing" / "secret.key", b"x")


def test_write_refuses_oversized_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "MAX_SECRET_BYTES", 4)
    with pytest.raises(ConfigError, match="over the 4 limit"):
        write_secret(tmp_path / "big", b"12345")
    assert not (tmp_path / "big").exists()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o620, 0o602, 0o700 | 0o001])
def test_read_refuses_files_open_to_group_or_others(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "secret.key"
    write_secret(target, b"s3cret")
    target.chmod(mode)
    with pytest.raises(ConfigError) as info:
        read_secret(target)
    message = str(info.value)
    assert f"chmod 600 {target}" in message
    assert f"{mode:04o}" in message
    # Refusing does not touch the file: fixing the mode makes it readable again.
    target.chmod(0o600)
    assert read_secret(target) == b"s3cret"


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_read_accepts_owner_only_modes(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "secret.key"
    write_secret(target, b"ok")
    target.chmod(mode)
    assert read_secret(target) == b"ok"


def test_read_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_secret(tmp_path / "absent")


def test_read_refuses_a_directory(tmp_path: Path) -> None:
    directory = tmp_path / "dir"
    directory.mkdir(mode=0o700)
    with pytest.raises(ConfigError, match=r"Is a directory|not a regular file"):
        read_secret(directory)


def test_read_checks_exact_length(tmp_path: Path) -> None:
    target = tmp_path / "secret.key"
    write_secret(target, bytes(31))
    with pytest.raises(ConfigError, match="holds 31 bytes; expected exactly 32"):
        read_secret(target, expected_len=32)
    assert read_secret(target, expected_len=31) == bytes(31)


def test_read_is_bounded(tmp_path: Path) -> None:
    target = tmp_path / "secret.key"
    write_secret(target, bytes(11))
    with pytest.raises(ConfigError, match="over the 10-byte limit"):
        read_secret(target, max_len=10)
    assert read_secret(target, max_len=11) == bytes(11)


@pytest.mark.usefixtures("open_umask")
def test_ed25519_round_trip(tmp_path: Path) -> None:
    target = tmp_path / "log.key"
    key = generate_ed25519(target)
    assert _mode(target) == 0o600
    assert target.read_bytes() == key.private_bytes_raw()
    loaded = load_ed25519(target)
    assert public_bytes(loaded) == public_bytes(key)
    signature = loaded.sign(b"message")
    Ed25519PublicKey.from_public_bytes(public_bytes(key)).verify(signature, b"message")


def test_generate_refuses_to_replace_a_key(tmp_path: Path) -> None:
    target = tmp_path / "log.key"
    key = generate_ed25519(target)
    with pytest.raises(ConfigError, match="already exists"):
        generate_ed25519(target)
    assert public_bytes(load_ed25519(target)) == public_bytes(key)
    replaced = generate_ed25519(target, overwrite=True)
    assert public_bytes(load_ed25519(target)) == public_bytes(replaced) != public_bytes(key)


def test_public_bytes_of_private_and_public_key_agree(tmp_path: Path) -> None:
    key = generate_ed25519(tmp_path / "k")
    raw = public_bytes(key)
    assert len(raw) == 32
    assert public_bytes(key.public_key()) == raw


def test_load_ed25519_refuses_0644(tmp_path: Path) -> None:
    target = tmp_path / "log.key"
    generate_ed25519(target)
    target.chmod(0o644)
    with pytest.raises(ConfigError, match=r"chmod 600"):
        load_ed25519(target)


@pytest.mark.parametrize("content", [b"", bytes(31), bytes(33), b"-----BEGIN PRIVATE KEY-----\n"])
def test_load_ed25519_refuses_wrong_size(tmp_path: Path, content: bytes) -> None:
    target = tmp_path / "log.key"
    write_secret(target, content)
    with pytest.raises(ConfigError, match="expected exactly 32"):
        load_ed25519(target)
