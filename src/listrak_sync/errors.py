"""Exceptions, split by what the caller should do.

::

    ListrakSyncError
    ├── TerminalError               stop: retrying cannot help
    │   ├── ConfigError             bad settings or usage           (CLI exit 2)
    │   │   └── WrongEndpointError        the endpoint is not the Listrak SOAP service
    │   ├── AccessError             the service refuses the caller  (CLI exit 3)
    │   │   ├── InvalidLogonError         [InvalidLogonAttempt]
    │   │   ├── LoginAttemptsExceededError [LoginAttemptsExceeded]
    │   │   └── ProhibitedIPError         [ProhibitedIPAddress]
    │   ├── ServiceFaultError       any other fault the service says is the caller's
    │   ├── UnreadableValueError    a well-formed answer holding a value we cannot read
    │   └── ResponseTooLargeError   a response outgrew max_response_bytes
    ├── ObjectRefusedError          one list or message refused: warn, skip it, go on
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


class ObjectRefusedError(ListrakSyncError):
    """The service refused one list or message; the run skips it and goes on."""

    def __init__(self, message: str, *, kind: str = "", object_id: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.object_id = object_id


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


def exit_code(error: BaseException) -> int:
    """The process exit code for ``error``, the same for the CLI and the Singer tap.

    2 for bad configuration, 3 when the service refuses access, 1 for anything else.
    """
    if isinstance(error, ConfigError):
        return EXIT_CONFIG
    if isinstance(error, AccessError):
        return EXIT_ACCESS
    return EXIT_ERROR


__all__ = [
    "EXIT_ACCESS",
    "EXIT_CONFIG",
    "EXIT_ERROR",
    "EXIT_OK",
    "AccessError",
    "ConfigError",
    "InvalidLogonError",
    "ListrakSyncError",
    "LoginAttemptsExceededError",
    "MalformedResponseError",
    "ObjectRefusedError",
    "ProhibitedIPError",
    "ResponseTooLargeError",
    "ServerFaultError",
    "ServiceFaultError",
    "ServiceUnavailableError",
    "TerminalError",
    "TransientError",
    "TransportError",
    "UnreadableValueError",
    "WrongEndpointError",
    "exit_code",
]
