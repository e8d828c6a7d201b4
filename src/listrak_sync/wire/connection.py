"""What both APIs' clients share about a failed exchange: which failures no retry mends, and
which declared error class an error is."""

from __future__ import annotations

import http.client
import ssl

from listrak_sync.errors import ConfigError, ListrakSyncError, WrongEndpointError, causes

# OpenSSL's reasons for a TLS handshake that got plain HTTP back (3.0: the first; 3.2+: the last).
_PLAIN_HTTP_TLS = frozenset({"WRONG_VERSION_NUMBER", "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE"})
_UNVERIFIED_TLS = "CERTIFICATE_VERIFY_FAILED"


def public_type(error: ListrakSyncError) -> type[ListrakSyncError]:
    """The error's class as the errors module declares it (not a private helper subclass)."""
    for kind in type(error).__mro__:
        if kind.__module__ == ListrakSyncError.__module__ and issubclass(kind, ListrakSyncError):
            return kind
    return type(error)


def unusable_connection(error: BaseException, url: str, right_endpoint: str = "") -> ConfigError | None:
    """The configuration error for an exchange that failed in a way no retry can mend, else ``None``.

    Decided by the TLS library's reason token and the HTTP parser's exception type, never by
    message text: a TLS handshake that got plain HTTP back, a certificate that cannot be
    verified, or a server whose first line is not HTTP at all. A connection that was refused,
    timed out or broke off is the transport's to report (``None`` here).

    Args:
        error: what ``requests`` raised (its causes are searched).
        url: the endpoint.
        right_endpoint: what to set the endpoint to, for the message.
    """
    origin = "/".join(url.split("/", 3)[:3])  # scheme://host:port
    for cause in causes(error):
        if isinstance(cause, ssl.SSLError) and cause.reason in _PLAIN_HTTP_TLS:
            plain = "http://" + url.removeprefix("https://")
            return WrongEndpointError(
                f"{origin} speaks plain HTTP, not HTTPS (the TLS handshake got an HTTP answer): "
                f"use {plain}, or the service's https:// address."
            )
        if isinstance(cause, ssl.SSLError) and cause.reason == _UNVERIFIED_TLS:
            why = getattr(cause, "verify_message", "") or "unverified"
            return ConfigError(
                f"The TLS certificate of {origin} cannot be verified ({why}). If this is the "
                "right endpoint, set REQUESTS_CA_BUNDLE to a CA bundle that trusts it (a proxy that "
                "inspects TLS has its own); otherwise fix the endpoint URL."
            )
        if isinstance(cause, http.client.BadStatusLine) and not isinstance(cause, http.client.RemoteDisconnected):
            line = str(cause.args[0] if cause.args else "").strip()
            # A status line cut short by a dropped connection still starts like one: transient.
            if line and not line.startswith("HTTP/"):
                return WrongEndpointError(
                    f"The endpoint {url} does not speak HTTP: it answered {line[:60]!r}. {right_endpoint}"
                )
    return None


__all__ = ["public_type", "unusable_connection"]
