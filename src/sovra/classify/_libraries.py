"""The versions of phonenumbers and python-stdnum whose steps the scanner restates.

``_plans`` takes phonenumbers' parsing and validation steps from its metadata, and
``ids`` and ``finance`` take python-stdnum's validation steps on compact numbers
(ADR 0014); tests hold each restated step to the library's own answer, on the versions
recorded in :data:`TESTED`. Another installed version may have changed a step those
tests never saw, so a module that restates a library asks here, when it is imported,
whether the installed version is the tested one (:func:`follow`); if not, it calls the
library itself for every answer, slower and right, and one warning is logged. Moving
to a new version is: run the classify tests against it, then record it here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import metadata

__all__ = ["TESTED", "check", "follow", "installed"]

TESTED: dict[str, str] = {
    "phonenumbers": "9.0.43",
    "python-stdnum": "2.2",
}

_logger = logging.getLogger("sovra.classify")
_followers: dict[str, list[Callable[[bool], None]]] = {}
_warned: set[tuple[str, str | None]] = set()


def installed(distribution: str) -> str | None:
    """The installed version of *distribution*, None when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _restated(distribution: str) -> bool:
    """Whether the installed *distribution* is the tested one; warns once per version."""
    version = installed(distribution)
    tested = TESTED[distribution]
    if version == tested:
        return True
    if (distribution, version) not in _warned:
        _warned.add((distribution, version))
        _logger.warning(
            "%s %s is installed, but the scanner's restated steps were tested against %s: "
            "asking %s itself for every answer (slower, same findings) until the classify "
            "tests pass on %s and sovra.classify._libraries.TESTED records it",
            distribution,
            version or "(none)",
            tested,
            distribution,
            version or "it",
        )
    return False


def follow(distribution: str, switch: Callable[[bool], None]) -> None:
    """Call *switch* now and after every :func:`check`: True to use the restated steps,
    False to ask the library itself.

    Raises:
        KeyError: *distribution* has no tested version recorded.
    """
    if distribution not in TESTED:
        raise KeyError(f"no tested version of {distribution} is recorded")
    _followers.setdefault(distribution, []).append(switch)
    switch(_restated(distribution))


def check() -> None:
    """Compare the installed versions with :data:`TESTED` again and switch every follower."""
    for distribution, switches in _followers.items():
        restated = _restated(distribution)
        for switch in switches:
            switch(restated)
