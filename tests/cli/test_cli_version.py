"""``sovra --version`` and the licence the package declares."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

from sovra import __version__

ROOT = Path(__file__).resolve().parents[2]


def test_version_prints_the_package_version_and_exits_zero(sovra_script):
    ran = sovra_script("--version")
    assert ran.code == 0, ran.err
    assert ran.out == f"sovra {__version__}\n"
    assert ran.err == ""


def test_the_module_version_is_the_distribution_version():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert __version__ == pyproject["project"]["version"]
    assert importlib.metadata.version("sovra") == __version__


def test_license_file_is_the_apache_license_the_package_declares():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    head = [line.strip() for line in text.splitlines()[:3]]
    assert head == [
        "Apache License",
        "Version 2.0, January 2004",
        "http://www.apache.org/licenses/",
    ]
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert "Copyright 2026 The sovra authors" in text
    assert "[name of copyright owner]" not in text
