"""Profiles: which variant of each uncertain Listrak fact (docs/listrak-api.md §12) the simulator plays.

``Profile.friendly()`` (the default) is the simulator as it always was: the variants our client
was first written against. ``Profile.pessimistic()`` plays the worst plausible variant of every
uncertain fact, so that a client exact against both is exact against the real service. Every
knob can also be set on its own (``Profile.friendly().replace(range_bounds="exclusive")``, or a
``listrak-sync simulator`` flag).

=============================  ==================  ===================  =======================
knob                           friendly            pessimistic          docs/listrak-api.md
=============================  ==================  ===================  =======================
unique_open_count              False               True                 §12.17
unique_read_count              False               True                 §12.17
unique_click_count             False               False                §12.17
late_reopen_rate               0.0                 0.15                 §12.17, §12.18
range_bounds                   inclusive           exclusive            §12.7
service_timezone               UTC                 America/New_York     §12.7, §6
event_date_format              iso                 us                   §12.7, §6
event_delay_hours              0.0                 6.0                  §12.18
fault_style                    client              asmx                 §12.10, §8.1
in_band_refusals               False               True                 §12.10, §8.2
strict_http                    False               True                 §2, §11
page_size_factors              {}                  see PESSIMISTIC_...  §12.5
empty_result                   element             omitted              §12.6
message_deletion_rate          0.0                 0.05                 §12.18
resubscribe_rate               0.0                 0.3                  §4.6, §12.18
resubscribe_addition_date      original            original             §4.6
list_withdrawal_days           None                2.0                  §4.1, §8.4
=============================  ==================  ===================  =======================

What each knob does is in :data:`KNOBS` (the ``--help`` text of the matching CLI flag).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from listrak_sync.streams import STREAMS

PROFILE_NAMES = ("friendly", "pessimistic")
RANGE_BOUNDS = ("inclusive", "exclusive", "start-inclusive")
EVENT_DATE_FORMATS = ("iso", "us")
FAULT_STYLES = ("client", "asmx")
EMPTY_RESULTS = ("element", "omitted")
ADDITION_DATES = ("original", "new")
PAGED_OPERATIONS = tuple(s.operation for s in STREAMS if s.paged)
# Columns typed s:string in the WSDL although they hold dates (docs/listrak-api.md §5.6-§5.10).
STRING_DATE_COLUMNS = frozenset({"OpenDate", "ClickDate", "ReadDate", "BounceDate"})
# Unhandled exceptions in an ASMX method reach the client as soap:Server faults with this prefix.
ASMX_PREFIX = "Server was unable to process request. ---> "
# Different page sizes per operation, none equal to the base size (a multiple of it).
PESSIMISTIC_PAGE_SIZE_FACTORS = (
    ("ReportMessageContactSent", 2.0),
    ("ReportRangeMessageContactClick", 0.5),
    ("ReportRangeSubscribedContacts", 0.4),
)


@dataclass(frozen=True)
class Knob:
    """One profile setting as the CLI offers it."""

    name: str
    help: str
    choices: tuple[str, ...] = ()
    off_flag: str = ""  # the negative flag of a boolean knob
    own_flag: str = ""  # a flag other than the knob's name

    @property
    def flag(self) -> str:
        return self.own_flag or "--" + self.name.replace("_", "-")


KNOBS: tuple[Knob, ...] = (
    Knob("unique_open_count", "OpenCount counts contacts who opened, so a repeat open moves no counter.",
         off_flag="--every-open-count"),
    Knob("unique_read_count", "ReadCount counts contacts who read, so a repeat read moves no counter.",
         off_flag="--every-read-count"),
    Knob("unique_click_count", "ClickCount counts contacts who clicked instead of every click.",
         off_flag="--every-click-count"),
    Knob("late_reopen_rate", "Share of openers who open the message again 0.5-20 days after their last open."),
    Knob("range_bounds", "Which ends of StartDate/EndDate the Range reports and ReportListMessageActivity "
         "include.", RANGE_BOUNDS),
    Knob("service_timezone", "Time zone of the service's wall clock: every dateTime it writes, and every "
         "dateTime without a zone it reads (IANA name)."),
    Knob("event_date_format", "Format of the string-typed dates OpenDate, ClickDate, ReadDate, BounceDate: "
         "iso 2024-01-31T20:05:00 or us 1/31/2024 8:05:00 PM (whole seconds).", EVENT_DATE_FORMATS),
    Knob("event_delay_hours", "Hours after its timestamp at which an open, read, click, bounce or "
         "unsubscribe appears in the reports (counters move at once)."),
    Knob("fault_style", "client: login and access refusals are soap:Client faults; asmx: soap:Server faults "
         "starting 'Server was unable to process request. ---> '.", FAULT_STYLES),
    Knob("in_band_refusals", "Refuse lists and messages in-band, in WSException with HTTP 200, for the "
         "operations that have one.", off_flag="--refusals-as-faults"),
    Knob("strict_http", "Require SOAPAction (or the SOAP 1.2 action) and a SOAP Content-Type, as ASMX does.",
         off_flag="--lenient-http"),
    Knob("page_size_factors", "OPERATION=FACTOR: that operation's page size is the page size times FACTOR "
         "(repeatable).", own_flag="--page-size-factor"),
    Knob("empty_result", "How a page past the end looks: an empty <OpResult /> element or no element.",
         EMPTY_RESULTS),
    Knob("message_deletion_rate", "Share of messages deleted some days after their send: they and their "
         "events vanish from the reports."),
    Knob("resubscribe_rate", "Share of unsubscribed contacts who subscribe again 1-60 days later."),
    Knob("resubscribe_addition_date", "AdditionDate of a resubscribed contact: its original one or the "
         "resubscription's.", ADDITION_DATES),
    Knob("list_withdrawal_days", "Days after 2026-06-01 at which the API user loses one list ('never' to "
         "keep every list)."),
)


@dataclass(frozen=True)
class Profile:
    """The knobs of one simulator profile; see the module docstring and :data:`KNOBS`.

    Raises:
        ValueError: a knob has an invalid value.
    """

    name: str = "friendly"
    unique_open_count: bool = False
    unique_read_count: bool = False
    unique_click_count: bool = False
    late_reopen_rate: float = 0.0
    range_bounds: str = "inclusive"
    service_timezone: str = "UTC"
    event_date_format: str = "iso"
    event_delay_hours: float = 0.0
    fault_style: str = "client"
    in_band_refusals: bool = False
    strict_http: bool = False
    page_size_factors: tuple[tuple[str, float], ...] = field(default=())
    empty_result: str = "element"
    message_deletion_rate: float = 0.0
    resubscribe_rate: float = 0.0
    resubscribe_addition_date: str = "original"
    list_withdrawal_days: float | None = None

    def __post_init__(self) -> None:
        for knob, allowed in (("range_bounds", RANGE_BOUNDS), ("event_date_format", EVENT_DATE_FORMATS),
                              ("fault_style", FAULT_STYLES), ("empty_result", EMPTY_RESULTS),
                              ("resubscribe_addition_date", ADDITION_DATES)):
            if getattr(self, knob) not in allowed:
                raise ValueError(f"{knob} must be one of {', '.join(allowed)}; got {getattr(self, knob)!r}")
        for knob in ("late_reopen_rate", "message_deletion_rate", "resubscribe_rate"):
            if not 0.0 <= float(getattr(self, knob)) <= 1.0:
                raise ValueError(f"{knob} must be between 0 and 1; got {getattr(self, knob)!r}")
        if not 0.0 <= float(self.event_delay_hours) < math.inf:
            raise ValueError(f"event_delay_hours must be >= 0; got {self.event_delay_hours!r}")
        if self.list_withdrawal_days is not None and not math.isfinite(float(self.list_withdrawal_days)):
            raise ValueError(f"list_withdrawal_days must be a number or None; got {self.list_withdrawal_days!r}")
        try:
            ZoneInfo(self.service_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"service_timezone {self.service_timezone!r} is not a known time zone") from None
        object.__setattr__(self, "page_size_factors", _factors(self.page_size_factors))

    @classmethod
    def friendly(cls) -> Profile:
        """The variants the client was first written against (the simulator's default)."""
        return cls()

    @classmethod
    def pessimistic(cls) -> Profile:
        """The worst plausible variant of every uncertain fact."""
        return cls(
            name="pessimistic",
            unique_open_count=True,
            unique_read_count=True,
            late_reopen_rate=0.15,
            range_bounds="exclusive",
            service_timezone="America/New_York",
            event_date_format="us",
            event_delay_hours=6.0,
            fault_style="asmx",
            in_band_refusals=True,
            strict_http=True,
            page_size_factors=PESSIMISTIC_PAGE_SIZE_FACTORS,
            empty_result="omitted",
            message_deletion_rate=0.05,
            resubscribe_rate=0.3,
            list_withdrawal_days=2.0,
        )

    @classmethod
    def named(cls, name: str) -> Profile:
        """The preset called ``name`` (one of :data:`PROFILE_NAMES`).

        Raises:
            ValueError: no such preset.
        """
        if name not in PROFILE_NAMES:
            raise ValueError(f"unknown simulator profile {name!r}; choose one of {', '.join(PROFILE_NAMES)}")
        return cls.friendly() if name == "friendly" else cls.pessimistic()

    def replace(self, **changes: Any) -> Profile:
        """A copy with some knobs changed (its name gains ``+custom`` unless ``name`` is given).

        Raises:
            ValueError: a changed knob is invalid. TypeError: an unknown knob.
        """
        if changes and "name" not in changes and not self.name.endswith("+custom"):
            changes["name"] = self.name + "+custom"
        return dataclasses.replace(self, **changes)

    def page_size(self, operation: str, base: int) -> int:
        """Items per page of ``operation`` when the simulator's page size is ``base``."""
        for name, factor in self.page_size_factors:
            if name == operation:
                return max(1, round(base * factor))
        return base

    def settings(self) -> dict[str, Any]:
        """The knobs as a JSON-ready dict."""
        values = dataclasses.asdict(self)
        values["page_size_factors"] = dict(self.page_size_factors)
        return values


def _factors(value: Mapping[str, float] | tuple[tuple[str, float], ...] | Any) -> tuple[tuple[str, float], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    factors: dict[str, float] = {}
    for operation, factor in items:
        if operation not in PAGED_OPERATIONS:
            raise ValueError(f"page_size_factors: {operation!r} is not a paged operation "
                             f"({', '.join(PAGED_OPERATIONS)})")
        number = float(factor)
        if not 0 < number < math.inf:
            raise ValueError(f"page_size_factors: the factor of {operation} must be > 0; got {factor!r}")
        factors[operation] = number
    return tuple(sorted(factors.items()))


def parse_factor(text: str) -> tuple[str, float]:
    """Read ``OPERATION=FACTOR`` as a CLI gives it.

    Raises:
        ValueError: not in that form.
    """
    operation, sep, factor = text.partition("=")
    if not sep:
        raise ValueError(f"expected OPERATION=FACTOR, got {text!r}")
    try:
        return operation.strip(), float(factor)
    except ValueError:
        raise ValueError(f"expected OPERATION=FACTOR with a number, got {text!r}") from None
