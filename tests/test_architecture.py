"""Arrows point down: pins DESIGN.md's layering by walking every import in src/sovra.

Below everything sits ``sovra_verify`` (src/sovra_verify), the auditor's verifier that
installs alone: it imports nothing of sovra and no third-party package but pyca
cryptography, and sovra imports its proofs, notes, tiles and error tree from it.

server/cli -> deployment -> gateway, governance -> {classify, policy, keys, ledger, store}
-> model. The gateway runs the two flows and governance the rest (grants, packs, erasure,
reports); governance never imports the gateway, so the two stay side by side.
No stage imports the gateway or an edge; model and policy do no I/O; every public module
declares ``__all__`` and every name in it exists.
"""

from __future__ import annotations

import ast
import importlib
import sys
import tomllib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "sovra"
VERIFIER = SRC.parent / "sovra_verify"
STAGES = ("classify", "policy", "keys", "ledger", "store")
ABOVE_STAGES = {
    "sovra.gateway",
    "sovra.governance",
    "sovra.check",
    "sovra.server",
    "sovra.cli",
    "sovra.client",
    "sovra.deployment",
    "sovra.custody",
    "sovra.demo",
    "sovra.auth",
    "sovra.oidc",
    "sovra.config",
}
IO_MODULES = {"sqlite3", "psycopg", "socket", "httpx", "urllib", "subprocess", "shutil", "tempfile"}


def _modules(package: Path = SRC) -> list[tuple[str, Path]]:
    out = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.append((".".join(parts), path))
    return out


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _under(name: str, prefixes: set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize(("module", "path"), _modules(), ids=str)
def test_stages_and_model_never_import_upwards(module, path):
    if module == "sovra.model" or _under(module, {f"sovra.{s}" for s in STAGES}):
        upward = {i for i in _imports(path) if _under(i, ABOVE_STAGES)}
        assert not upward, f"{module} imports {upward}: arrows must point down"


@pytest.mark.parametrize(("module", "path"), _modules(), ids=str)
def test_model_and_policy_do_no_io(module, path):
    if module == "sovra.model" or _under(module, {"sovra.policy"}):
        io = {i for i in _imports(path) if _under(i, IO_MODULES)}
        assert not io, f"{module} imports {io}: model and policy must stay pure"
        calls = [
            n
            for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "open"
        ]
        assert not calls, f"{module} calls open()"


def test_governance_sits_beside_the_gateway_not_above_it():
    """Governance never imports the gateway (the gateway may use its Authorizer)."""
    upward = {i for i in _imports(SRC / "governance.py") if _under(i, ABOVE_STAGES)}
    assert upward <= {"sovra.config"}, f"sovra.governance imports {upward}"


def test_model_imports_no_other_sovra_module_but_errors_and_the_merkle_hashing():
    inner = {i for i in _imports(SRC / "model.py") if i.startswith("sovra")}
    # ... and the receipts' signed statement, which the auditor's verifier checks too.
    assert inner <= {"sovra.errors", "sovra_verify._merkle", "sovra_verify.receipt"}
    promise = {i for i in _imports(VERIFIER / "receipt.py") if i.startswith("sovra")}
    assert promise <= {"sovra_verify.errors", "sovra_verify._merkle", "sovra_verify.note"}
    # The Merkle hashing below the model is the log's own, and leans on nothing above.
    hashing = {i for i in _imports(VERIFIER / "_merkle.py") if i.startswith("sovra")}
    assert hashing <= {"sovra_verify.errors"}


@pytest.mark.parametrize(("module", "path"), _modules(VERIFIER), ids=str)
def test_the_verifier_imports_only_itself_cryptography_and_the_standard_library(module, path):
    """What ``pip install ./verifier`` installs must be all that it imports."""
    for name in _imports(path):
        top = name.split(".")[0]
        assert top in {"sovra_verify", "cryptography"} or top in sys.stdlib_module_names, (
            f"{module} imports {name}: the verifier installs with cryptography alone"
        )
        assert not _under(name, IO_MODULES - {"urllib"}), f"{module} imports {name}"


def test_the_verifier_distribution_ships_the_verifier_package_alone():
    """verifier/pyproject.toml builds src/sovra_verify only and depends on cryptography only."""
    spec = tomllib.loads((SRC.parents[1] / "verifier" / "pyproject.toml").read_text())
    assert spec["project"]["dependencies"] == ["cryptography>=47"]
    assert spec["tool"]["setuptools"]["packages"] == ["sovra_verify"]
    assert spec["project"]["scripts"] == {"sovra-verify": "sovra_verify.cli:main"}


def test_the_error_tree_is_the_verifiers():
    """One tree: sovra.errors re-exports the classes sovra_verify raises."""
    import sovra.errors
    import sovra_verify.errors

    for name in sovra_verify.errors.__all__:
        assert getattr(sovra.errors, name) is getattr(sovra_verify.errors, name)
    assert sovra.errors.__all__ == sovra_verify.errors.__all__


@pytest.mark.parametrize(("module", "path"), _modules() + _modules(VERIFIER), ids=str)
def test_public_modules_declare_all(module, path):
    if any(
        part.startswith("_") and part not in {"__init__.py", "__main__.py"}
        for part in path.relative_to(path.parents[len(module.split(".")) - 1]).parts
    ):
        return  # primitives behind underscore modules are private by name
    if module.endswith("__main__"):
        return
    mod = importlib.import_module(module)
    exported = getattr(mod, "__all__", None)
    assert exported is not None, f"{module} has no __all__"
    missing = [n for n in exported if not hasattr(mod, n)]
    assert not missing, f"{module}.__all__ names missing members {missing}"


def test_public_api_of_the_top_level_packages():
    """The names auditors and integrators import are pinned (httpx-style)."""
    import sovra.ledger as ledger
    import sovra.policy as policy

    for name in (
        "TransparencyLog",
        "Checkpoint",
        "verify_checkpoint",
        "verify_consistency",
        "verify_entry_inclusion",
        "audit",
    ):
        assert name in ledger.__all__
    for name in ("DecisionPoint", "check_grant", "sign_grant", "default_pack"):
        assert name in policy.__all__
