"""Exceptions, split by what the caller should do.

::

    ListrakSyncError
    ├── TerminalError               stop: retrying cannot help
    │   ├── ConfigError             bad settings or usage           (CLI exit 2)
    │   │   └── WrongEndpointError        the endpoint is not the Listrak SOAP service
    │   ├── AccessError             the service refuses the caller  (CLI exit 3)
    │   │   ├── InvalidLogonError         [InvalidLogonAttempt]
    │   │   ├── LoginAttemptsExceededError [LoginAttemptsExceeded]
    │   │   ├── ProhibitedIPError         [ProhibitedIPAddress]
    │   │   └── NoListsVisibleError       the user sees no list at all
    │   ├── ServiceFaultError       any other fault the service says is the caller's
    │   ├── UnreadableValueError    a well-formed answer holding a value we cannot read
    │   └── ResponseTooLargeError   a response outgrew max_response_bytes
    ├── DestinationBusyError        another program holds the destination (a DuckDB file): retry later
    ├── IncompleteRunError          the run loaded what it could, but objects were cut short (CLI exit 5)
    ├── ObjectSkippedError          one list or message skipped: warn, go on, ask it again next run
    │   ├── ObjectRefusedError            the service refused it
    │   ├── EndlessPagesError             its pages never end (a page repeats, or far past its counter):
    │                                     the run goes on, but is incomplete
    │   └── ShortOfCounterError           fewer rows than its counter, even when asked again
    └── TransientError              retry with backoff
        ├── TransportError          cannot connect, timeout, request_deadline, dropped connection
        ├── ServiceUnavailableError HTTP 503/429 or overload: back off as a whole
        ├── ServerFaultError        soap:Server fault without a known token, other 5xx
        └── MalformedResponseError  unparseable or truncated XML

Faults are classified once, by token, in :mod:`listrak_sync.soap.classify`; nothing else
inspects fault text. Messages say what happened and what to do next; none ever holds the
password (the client redacts server text before it becomes a message).
"""

from __future__ import annotations

from collections.abc import Iterator


class ListrakSyncError(Exception):
    """Base of every error this package raises on purpose."""


class TerminalError(ListrakSyncError):
    """An error that retrying cannot fix; the run stops."""


class ConfigError(TerminalError):
    """Bad settings or usage: fix the configuration and run again."""


class WrongEndpointError(ConfigError):
    """The endpoint answered, but not as the Listrak SOAP service (an HTML page, 404, a redirect)."""


class AccessError(TerminalError):
    """The service refused the caller (credentials, IP address, lockout, API access)."""


class InvalidLogonError(AccessError):
    """Listrak rejected the username or password ([InvalidLogonAttempt])."""


class LoginAttemptsExceededError(AccessError):
    """Listrak locked the user after repeated failed logins ([LoginAttemptsExceeded])."""


class ProhibitedIPError(AccessError):
    """The caller's IP address is not authorized for the SOAP API ([ProhibitedIPAddress])."""


class NoListsVisibleError(AccessError):
    """The API user sees no list: nothing can be replicated, almost always for want of permissions."""


def no_lists_visible(username: str) -> NoListsVisibleError:
    """The one error (and its one line) for a user whose list collection is empty."""
    return NoListsVisibleError(
        f"Listrak user {username!r} sees no lists, so there is nothing to replicate. That is almost always "
        "a permission or IP problem: in Listrak, select the user's lists under Manage > Accounts > User "
        "Manager (with API Access), and authorize this machine's IP under Manage > Accounts > SOAP API "
        "IP Authorization."
    )


class ServiceFaultError(TerminalError):
    """A SOAP fault the service blames on the request (soap:Client) with no known token."""


class UnreadableValueError(TerminalError):
    """A well-formed response holds a value that cannot be read (e.g. a date in an unknown format).

    Not retried: the same page would hold the same value again.
    """


class ResponseTooLargeError(TerminalError):
    """A response grew past ``max_response_bytes`` (counted decompressed); it was not read further.

    Not retried: the same request would download the same oversized answer again.
    """


class DestinationBusyError(ListrakSyncError):
    """Another program holds the destination (a DuckDB file open for writing) for longer than
    the run may wait: nothing is wrong with the settings, so a later run succeeds (CLI exit 1)."""


class IncompleteRunError(ListrakSyncError):
    """The run loaded what it could, but some objects' rows were cut short (their pages never
    ended); the CLI and the tap exit 5 once everything else is done."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message or (
            "The run is incomplete: the pages of some lists or messages never ended (named above). "
            "Everything else is loaded, and the next run asks them again; if it keeps happening, "
            "report it with those names."))


class ObjectSkippedError(ListrakSyncError):
    """One list or message is skipped: the run goes on with the rest and asks it again next run."""

    def __init__(self, message: str, *, kind: str = "", object_id: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.object_id = object_id


class ObjectRefusedError(ObjectSkippedError):
    """The service refused one list or message; the run skips it and goes on."""


class EndlessPagesError(ObjectSkippedError):
    """An object's pages would never end: a page repeated, or they ran far past its counter.

    The object's stream ends there (what came before is kept) and the run goes on, but it is
    incomplete (:class:`IncompleteRunError` at its end).
    """


class ShortOfCounterError(ObjectSkippedError):
    """A message's rows fell short of its counter, even after asking once more.

    Under either reading of the counters (events or unique contacts) a full read holds at
    least as many rows as the counter. What came is kept, the message is named in the summary,
    and the next run reads it again.
    """

    def __init__(self, message: str, *, kind: str = "", object_id: int | None = None, stream: str = "",
                 fetched: int = 0, counted: int = 0) -> None:
        super().__init__(message, kind=kind, object_id=object_id)
        self.stream, self.fetched, self.counted = stream, fetched, counted


class TransientError(ListrakSyncError):
    """A failure that may pass: the client retries it with backoff."""


class TransportError(TransientError):
    """Could not connect, the connection dropped, or a timeout passed."""


class ServiceUnavailableError(TransientError):
    """The service signalled overload (HTTP 503 or 429)."""


class ServerFaultError(TransientError):
    """A soap:Server fault without a known token, or another HTTP 5xx."""


class MalformedResponseError(TransientError):
    """The response was not well-formed SOAP (truncated, not XML, unexpected shape)."""


EXIT_OK, EXIT_ERROR, EXIT_CONFIG, EXIT_ACCESS = 0, 1, 2, 3
EXIT_INCOMPLETE = 5
"""A run that loaded what it could, but some object's pages never ended (:class:`EndlessPagesError`)."""
# `listrak-sync verify` found messages off beyond what the incremental contract allows.
EXIT_VERIFY_FAILED = 4


def causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and every exception it wraps, each once.

    Besides ``__cause__`` and ``__context__``: what libraries keep elsewhere (urllib3 in
    ``reason`` and ``args``, dlt's failed steps in ``exception``).
    """
    seen: set[int] = set()
    pending = [error]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [getattr(current, "exception", None), getattr(current, "reason", None), current.__cause__,
                  current.__context__, *current.args]
        pending.extend(item for item in linked if isinstance(item, BaseException))


def exit_code(error: BaseException) -> int:
    """The process exit code for ``error``, the same for the CLI and the Singer tap.

    2 for bad configuration, 3 when the service refuses access, 5 for a run that loaded what it
    could but is incomplete, 1 for anything else.
    """
    if isinstance(error, IncompleteRunError):
        return EXIT_INCOMPLETE
    if isinstance(error, ConfigError):
        return EXIT_CONFIG
    if isinstance(error, AccessError):
        return EXIT_ACCESS
    return EXIT_ERROR


__all__ = [
    "EXIT_ACCESS",
    "EXIT_CONFIG",
    "EXIT_ERROR",
    "EXIT_INCOMPLETE",
    "EXIT_OK",
    "EXIT_VERIFY_FAILED",
    "AccessError",
    "ConfigError",
    "DestinationBusyError",
    "EndlessPagesError",
    "IncompleteRunError",
    "InvalidLogonError",
    "ListrakSyncError",
    "LoginAttemptsExceededError",
    "MalformedResponseError",
    "NoListsVisibleError",
    "ObjectRefusedError",
    "ObjectSkippedError",
    "ProhibitedIPError",
    "ResponseTooLargeError",
    "ServerFaultError",
    "ServiceFaultError",
    "ServiceUnavailableError",
    "ShortOfCounterError",
    "TerminalError",
    "TransientError",
    "TransportError",
    "UnreadableValueError",
    "WrongEndpointError",
    "causes",
    "exit_code",
    "no_lists_visible",
]
