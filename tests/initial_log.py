"""What a deployment's log holds straight after ``sovra init``: one ``principal`` entry for
each principal init registers (``sovra.deployment.default_principals``). A test that checks
"nothing was logged" checks that the log still has this size."""

from __future__ import annotations

from pathlib import Path

from sovra.config import Config
from sovra.deployment import Deployment, default_principals


def logged_by_init(deployment: Deployment | Config | Path) -> int:
    """How many entries ``sovra init`` logged for the deployment (opened, its configuration
    or its folder)."""
    if isinstance(deployment, Path):
        config = Config.load(deployment / "sovra.toml")
    elif isinstance(deployment, Config):
        config = deployment
    else:
        config = deployment.config
    return len(default_principals(list(config.jurisdictions)))
