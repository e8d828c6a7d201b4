"""Who may call the simulator: users and their lists, the IP allowlist, and login lockout.

Fault texts carry Listrak's known tokens (docs/listrak-api.md §8.1) in brackets; the words around
them are ours, since the real service's wording is unknown:

- ``[ProhibitedIPAddress]``: the caller's address is outside the allowlist (checked first).
- ``[LoginAttemptsExceeded]``: the user failed ``lockout_after`` logins in a row and is locked
  until :meth:`AccessControl.reset_lockouts`, even with the right password.
- ``[InvalidLogonAttempt]``: unknown user, wrong password, or no ``WSUser`` header.

Fault messages never contain the password.
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from listrak_sync.simulator.envelope import SoapFault, SoapRequest

DEFAULT_USERNAME = "demo"
DEFAULT_PASSWORD = "demo-password"  # noqa: S105 - the simulator's documented demo credential
# The REST pair the demo serves and uses (the simulator serves REST only when given a pair).
DEMO_CLIENT_ID = "demo-client"
DEMO_CLIENT_SECRET = "demo-client-secret"  # noqa: S105 - documented demo credential

INVALID_LOGON = "InvalidLogonAttempt"
LOGIN_ATTEMPTS_EXCEEDED = "LoginAttemptsExceeded"
PROHIBITED_IP = "ProhibitedIPAddress"


@dataclass(frozen=True)
class User:
    """An API user: credentials and the lists it may see.

    ``list_ids`` are the lists assigned to the user (``None``: every list); only those appear
    in GetContactListCollection. ``refused_list_ids`` appear there too, but every call about
    them (their messages, contacts, or messages' activity) is refused with ``[AccessDenied]``:
    the case of a list a connector discovers and then may not read.
    """

    username: str
    password: str = field(repr=False)
    list_ids: frozenset[int] | None = None
    refused_list_ids: frozenset[int] = frozenset()

    def may_see(self, list_id: int) -> bool:
        """Whether list ``list_id`` is in the user's list collection."""
        return self.list_ids is None or list_id in self.list_ids or list_id in self.refused_list_ids

    def may_access(self, list_id: int) -> bool:
        """Whether the user may read list ``list_id``'s data."""
        return (self.list_ids is None or list_id in self.list_ids) and list_id not in self.refused_list_ids


DEFAULT_USER = User(DEFAULT_USERNAME, DEFAULT_PASSWORD)


class AuthFault(SoapFault):
    """A refused login; ``token`` is the bracketed Listrak token it carries."""

    def __init__(self, token: str, detail: str, request: SoapRequest) -> None:
        super().__init__(f"[{token}] {detail}", client=True, version=request.version)
        self.token = token


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_allowlist(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Parse addresses and CIDR blocks (``10.0.0.0/8``, ``127.0.0.1``, ``::1``).

    Raises:
        ValueError: an entry is neither an address nor a network.
    """
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


class AccessControl:
    """Checks every SOAP call's caller address and WSUser credentials; thread-safe."""

    def __init__(
        self,
        users: Iterable[User] | None = None,
        ip_allowlist: Iterable[str] | None = None,
        lockout_after: int | None = 5,
    ) -> None:
        """Set up access control.

        Args:
            users: the API users; ``None`` gives the single default user with every list.
            ip_allowlist: addresses/CIDRs allowed to call; ``None`` allows every address.
            lockout_after: failed logins in a row after which a user is locked; ``None``: never
                (0 locks every user from the start, to test the lockout path).

        Raises:
            ValueError: duplicate usernames or a bad allowlist entry.
        """
        user_list = list(users) if users is not None else [DEFAULT_USER]
        self.users = {user.username: user for user in user_list}
        if len(self.users) != len(user_list):
            raise ValueError("usernames must be unique")
        self.ip_allowlist = None if ip_allowlist is None else parse_allowlist(ip_allowlist)
        if lockout_after is not None and lockout_after < 0:
            raise ValueError(f"lockout_after must be >= 0 or None, got {lockout_after}")
        self.lockout_after = lockout_after
        self._failures: dict[str, int] = {}
        self._lock = threading.Lock()

    def authenticate(self, request: SoapRequest, client_ip: str) -> User:
        """Return the user a request logs in as.

        Args:
            request: the parsed request, with its WSUser credentials.
            client_ip: the caller's address.

        Raises:
            AuthFault: the address is not allowed, the user is locked, or the login is wrong.
        """
        if not self.ip_allowed(client_ip):
            detail = f"IP address {client_ip} is not authorized for SOAP API access."
            raise AuthFault(PROHIBITED_IP, detail, request)
        if not request.has_ws_user:
            raise AuthFault(INVALID_LOGON, "The WSUser SOAP header is missing.", request)
        username = request.username or ""
        user = self.users.get(username)
        with self._lock:
            if self.lockout_after is not None and self._failures.get(username, 0) >= self.lockout_after:
                detail = "Too many failed logon attempts; the user is locked."
                raise AuthFault(LOGIN_ATTEMPTS_EXCEEDED, detail, request)
            password = (request.password or "").encode()
            if user is None or not hmac.compare_digest(password, user.password.encode()):
                self._failures[username] = self._failures.get(username, 0) + 1
                raise AuthFault(INVALID_LOGON, "The username or password is not valid.", request)
            self._failures.pop(username, None)
        return user

    def ip_allowed(self, client_ip: str) -> bool:
        """Whether ``client_ip`` is inside the allowlist (always true without one)."""
        if self.ip_allowlist is None:
            return True
        try:
            address = ipaddress.ip_address(client_ip)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.ip_allowlist)

    def locked_users(self) -> list[str]:
        """Usernames currently locked out."""
        with self._lock:
            if self.lockout_after is None:
                return []
            if self.lockout_after == 0:
                return sorted(self.users)
            return sorted(name for name, count in self._failures.items() if count >= self.lockout_after)

    def reset_lockouts(self) -> None:
        """Forget every failed login, unlocking every user."""
        with self._lock:
            self._failures.clear()
