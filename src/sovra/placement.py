"""Where a record's ciphertext may live: the subject's jurisdiction decides.

Each jurisdiction lists the storage regions its residents' data may live in (an order of
preference) and may exclude providers by their home jurisdiction
(``exclude_provider_homes``): a region whose provider is at home there is not allowed,
whatever the region's name says. With no exclusion every listed region is allowed, since
a provider only ever holds ciphertext whose keys stay with the jurisdiction's custodian.

:meth:`Placement.region_for` picks the region of a new record; :meth:`Placement.check`
refuses a write of a record to a region its jurisdiction does not allow, before any byte
is sent there. Pure: no I/O, decided from the configuration alone.
"""

from __future__ import annotations

from sovra.config import Config
from sovra.errors import BadRequest, ConfigError

__all__ = ["Placement"]


class Placement:
    """The deployment's placement rules, one list of allowed regions per jurisdiction."""

    def __init__(self, config: Config) -> None:
        """Work out every jurisdiction's allowed regions once.

        Raises:
            ConfigError: a jurisdiction has no allowed region left.
        """
        self._allowed: dict[str, tuple[str, ...]] = {}
        self._rules = config.jurisdictions
        for code, rules in config.jurisdictions.items():
            allowed = tuple(
                r
                for r in rules.regions
                if config.region(r).provider_home not in rules.exclude_provider_homes
            )
            if not allowed:
                raise ConfigError(f"jurisdiction {code} allows no storage region")
            self._allowed[code] = allowed

    def allowed(self, jurisdiction: str) -> tuple[str, ...]:
        """The regions *jurisdiction*'s data may live in, in its order of preference.

        Raises:
            BadRequest: the jurisdiction is not configured.
        """
        try:
            return self._allowed[jurisdiction]
        except KeyError:
            raise BadRequest(f"unknown jurisdiction {jurisdiction!r}") from None

    def region_for(self, jurisdiction: str, subject: str) -> str:
        """The region a new record of *subject* (its commitment) in *jurisdiction* goes to.

        ``placement = "first"``: the first allowed region. ``"by-subject"``: one of the
        allowed regions picked by the subject's commitment, so one subject's records stay
        in one region while the subjects spread over all of them.

        Raises:
            BadRequest: the jurisdiction is not configured.
        """
        allowed = self.allowed(jurisdiction)
        if len(allowed) == 1 or self._rules[jurisdiction].placement == "first":
            return allowed[0]
        # The commitment is a keyed hash already: its first bytes are evenly spread.
        return allowed[int(subject[:8], 16) % len(allowed)]

    def check(self, jurisdiction: str, region: str) -> None:
        """Refuse a record of *jurisdiction* in *region* unless the rules allow it there.

        Raises:
            BadRequest: the region is not one the jurisdiction allows now (its rules
                changed since the record was placed, or the header was not placed here).
        """
        if region not in self.allowed(jurisdiction):
            raise BadRequest(
                f"region {region} is not allowed for {jurisdiction} data (allowed: "
                f"{', '.join(self.allowed(jurisdiction))}); nothing was stored"
            )
