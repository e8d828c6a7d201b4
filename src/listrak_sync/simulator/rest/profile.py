"""Which variant of each uncertain REST fact (REST.md §10) the simulator plays.

The SOAP :class:`~listrak_sync.simulator.profile.Profile` already fixes the service's clock
(``service_timezone``: UTC friendly, US Eastern pessimistic), event delays, deletions,
resubscriptions and the withdrawn list; REST reads the same account, so those apply to it too.
:class:`RestProfile` holds the REST-only knobs; :meth:`RestProfile.for_profile` picks the
friendly or pessimistic set by the SOAP profile's name.

==========================  ==============  ================  ==========
knob                        friendly        pessimistic       REST.md
==========================  ==============  ================  ==========
token_lifetime              3599            900               §10.1
token_early_fraction        0.0             0.03              §10.1
token_type                  bearer          Bearer            §10.1
credentials_error           listrak         oauth             §10.2
empty_last_page             False           True              §10.3
over_count                  reject          clamp             §10.3
shuffled                    False           True              §10.8
empty_strings               False           True              §10.7
null_arrays                 False           True              §10.7
extra_fields                False           True              §10.15
end_exclusive               False           True              §10.6
draft_conversation_message  False           True              §4.4.3
==========================  ==============  ================  ==========

Both profiles give one clicker row per click (§10.4 (a), the tap's key), and 404s, 401s and
date forms as REST.md's defaults.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RestProfile:
    """REST-only knobs; see the module docstring."""

    name: str = "friendly"
    token_lifetime: float = 3599.0
    token_early_fraction: float = 0.0  # share of the lifetime at whose end a token is already refused
    token_type: str = "bearer"  # noqa: S105 - an OAuth token type, no secret
    credentials_error: str = "listrak"  # listrak: 401 ERROR_INVALID_CREDENTIALS; oauth: 400 invalid_client
    empty_last_page: bool = False  # a full last page still carries a cursor; the next page is empty
    over_count: str = "reject"  # count > 5000: reject (400) or clamp (to 5000)
    shuffled: bool = False  # collections in a stable but arbitrary order
    empty_strings: bool = False  # "" instead of null for unset strings
    null_arrays: bool = False  # null instead of [] for unset arrays
    extra_fields: bool = False  # unknown fields in every item
    end_exclusive: bool = False  # endDate excludes its bound everywhere
    draft_conversation_message: bool = False  # a conversation message with a null sendDate

    @classmethod
    def friendly(cls) -> RestProfile:
        """REST.md's default variant of every uncertain fact."""
        return cls()

    @classmethod
    def pessimistic(cls) -> RestProfile:
        """The worst plausible variant of every uncertain fact that matters to a reader."""
        return cls(name="pessimistic", token_lifetime=900.0, token_early_fraction=0.03, token_type="Bearer",  # noqa: S106
                   credentials_error="oauth", empty_last_page=True, over_count="clamp", shuffled=True,
                   empty_strings=True, null_arrays=True, extra_fields=True, end_exclusive=True,
                   draft_conversation_message=True)

    @classmethod
    def for_profile(cls, profile: Any) -> RestProfile:
        """The REST knobs matching a SOAP profile (pessimistic ones for ``pessimistic*`` names)."""
        name = str(getattr(profile, "name", "friendly"))
        return cls.pessimistic() if name.startswith("pessimistic") else cls.friendly()

    def settings(self) -> dict[str, Any]:
        """The knobs as a JSON-ready dict."""
        return dataclasses.asdict(self)
