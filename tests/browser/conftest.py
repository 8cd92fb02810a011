"""A real ``sovra serve`` with the demo scenario loaded, and a real headless Chromium.

Chromium is Debian's ``chromium`` package and Playwright drives it from PyPI (its own
browser download is not reachable from every machine); ``scripts/bootstrap`` installs
both. Where either is missing the tests skip and say why, except under CI, where they
fail: a browser test that quietly skips in CI proves nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
from tests.serving import SOVRA, free_port, serve, stop, wait_for

CHROMIUM = Path(os.environ.get("SOVRA_CHROMIUM", "/usr/bin/chromium"))


def _absent(what: str) -> NoReturn:
    reason = f"{what}: run scripts/bootstrap as root (it installs Debian's chromium and playwright)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the browser tests")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium, launched once per run."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _absent("the playwright package is not installed")
    if not CHROMIUM.exists():
        _absent(f"no Chromium at {CHROMIUM}")
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            yield launched
        finally:
            launched.close()


@dataclass(frozen=True)
class Served:
    """The gateway under test: its URL and deployment folder."""

    url: str
    root: Path

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=60) as r:
            return bytes(r.read())

    def json(self, path: str) -> Any:
        return json.loads(self.get(path))

    def entries(self) -> list[dict[str, Any]]:
        """Every log entry, parsed, in order."""
        size = self.json("/v1/info")["log_size"]
        out: list[dict[str, Any]] = []
        for start in range(0, size, 1000):
            got = self.json(f"/v1/log/entries?start={start}&end={min(size, start + 1000)}")
            out += [json.loads(e) for e in got["entries"]]
        return out


@contextmanager
def serving(root: Path) -> Iterator[Served]:
    """``sovra serve`` over *root* until the block ends (its output to a file beside the
    deployment: a pipe nobody reads fills up with the access log and blocks the server)."""
    port = free_port()
    output = root.parent / "serve.log"
    proc = serve(root, port, workers=None, output=output)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(url, proc)
        yield Served(url, root)
    finally:
        stop(proc, output)


@pytest.fixture(scope="session")
def served(browser: Any) -> Iterator[Served]:
    """``sovra serve`` over a deployment the demo scenario ran on (once per run)."""
    del browser  # no deployment is made where the browser is missing
    base = Path(tempfile.mkdtemp(prefix="sovra-page-"))
    base.chmod(0o711)  # the custodians' and gateway's users walk down to their parts
    root = base / "deployment"
    try:
        for args in (["init", root], ["demo", "--deployment", root]):
            ran = subprocess.run(
                [SOVRA, *args], capture_output=True, text=True, timeout=600, check=False
            )
            assert ran.returncode == 0, ran.stdout + ran.stderr
            if args[0] == "init":  # a checkpoint per batch: the demo leaves a history
                toml = root / "sovra.toml"
                text = toml.read_text(encoding="utf-8")
                after = text.replace("publish_after_batch = false", "publish_after_batch = true")
                assert after != text
                toml.write_text(after, encoding="utf-8")
        with serving(root) as gateway:
            yield gateway
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def fresh_page(browser: Any, url: str) -> Iterator[Any]:
    """A fresh browser context (nothing remembered) and page on the gateway at *url*; no
    script error may happen on it."""
    context = browser.new_context(
        viewport={"width": 1100, "height": 900}, base_url=url, accept_downloads=True
    )
    context.set_default_timeout(60_000)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield opened
    finally:
        context.close()
    assert errors == [], errors


@pytest.fixture
def page(browser: Any, served: Served) -> Iterator[Any]:
    """A fresh page on the served gateway."""
    with fresh_page(browser, served.url) as opened:
        yield opened


@pytest.fixture
def shoot() -> Any:
    """``shoot(page, name)`` saves the page as ``<SOVRA_SCREENSHOTS>/<name>.png`` when that
    is set (``scripts/screenshots`` sets it to docs/screenshots), and does nothing otherwise."""
    where = os.environ.get("SOVRA_SCREENSHOTS")

    def save(page: Any, name: str) -> None:
        if where:
            Path(where).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(where) / f"{name}.png"), full_page=True)

    return save
