"""The :class:`Simulator`: a synthetic account, the SOAP service and its HTTP server in one object.

Example::

    from listrak_sync.simulator import Simulator, DEFAULT_USERNAME, DEFAULT_PASSWORD

    with Simulator(scale="tiny", page_size=100) as sim:
        print(sim.url)              # http://127.0.0.1:PORT/v31/IntegrationService.asmx
        ...                         # point any SOAP client at sim.url / sim.wsdl_url
        sim.advance(7)              # a week passes: new messages, late events
        sim.configure_faults(fail_rate=0.2, fault_kinds=["unavailable"])
        print(sim.stats()["requests"])

    with Simulator(scale="tiny", profile=Profile.pessimistic()) as sim:
        ...                         # the worst plausible Listrak (see .profile)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from listrak_sync.simulator.access import AccessControl, User
from listrak_sync.simulator.faults import FaultInjector
from listrak_sync.simulator.profile import Profile
from listrak_sync.simulator.rest.service import RestService
from listrak_sync.simulator.server import PRODUCTION_URL, SOAP_PATH, SimulatorHTTPServer, bundled_wsdl
from listrak_sync.simulator.service import DEFAULT_PAGE_SIZE, IntegrationService
from listrak_sync.simulator.stats import Stats

log = logging.getLogger(__name__)


class Simulator:
    """A local Listrak v31 SOAP service on a real HTTP server.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. Everything can be
    changed while it runs: the clock (:meth:`advance`, :meth:`set_now`), the fault settings
    (:attr:`faults`, :meth:`configure_faults`), the page size (:attr:`page_size`).
    """

    def __init__(
        self,
        account: Any | None = None,
        *,
        seed: int = 1,
        scale: Any = "tiny",
        host: str = "127.0.0.1",
        port: int = 0,
        page_size: int = DEFAULT_PAGE_SIZE,
        latency_ms: float = 0.0,
        jitter_ms: float = 0.0,
        fail_rate: float = 0.0,
        fault_kinds: Iterable[str] | str | None = None,
        fault_seed: int = 0,
        max_concurrency: int | None = None,
        users: Iterable[User] | None = None,
        ip_allowlist: Iterable[str] | None = None,
        lockout_after: int | None = 5,
        slow_seconds: float = 30.0,
        profile: Profile | str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
    ) -> None:
        """Build the simulator (the server starts with :meth:`start`).

        Args:
            account: the data to serve; by default ``Account(seed=seed, scale=scale)``.
            seed: seed of the default account.
            scale: scale of the default account (``tiny``, ``small``, ``medium``, ``large``).
            host: address to listen on.
            port: port to listen on; 0 picks a free one.
            page_size: items per page of the paged operations (docs/listrak-api.md §7).
            latency_ms: fixed delay added to every SOAP request.
            jitter_ms: extra random delay, uniform in ``[0, jitter_ms]``.
            fail_rate: probability that a SOAP request gets an injected fault.
            fault_kinds: which faults to inject (default: all of ``FAULT_KINDS``).
            fault_seed: seed of the fault and jitter draws.
            max_concurrency: in-flight SOAP requests beyond which the server answers 503.
            users: API users; default one user ``demo``/``demo-password`` with every list.
            ip_allowlist: addresses/CIDRs allowed to call; ``None`` allows all.
            lockout_after: failed logins in a row that lock a user (``None``: never; 0: locked
                from the start).
            slow_seconds: how long a ``slow`` fault waits before answering.
            profile: which variant of each uncertain Listrak fact to play: a :class:`Profile`
                or a preset name (``friendly``, the default, or ``pessimistic``). With an
                explicit ``account``, the account's own profile is used and this must be
                omitted or equal to it.
            client_id: with ``client_secret``, serve the REST Email API too (same port):
                ``POST /OAuth2/Token`` and ``GET /email/v1/...`` (see :mod:`.rest`).
            client_secret: the REST client secret (never shown in reprs or logs).

        Raises:
            ValueError: an invalid setting.
        """
        if isinstance(profile, str):
            profile = Profile.named(profile)
        if account is None:
            from listrak_sync.simulator.data import Account

            account = Account(seed=seed, scale=scale, profile=profile)
        elif profile is not None and profile != getattr(account, "profile", Profile.friendly()):
            raise ValueError("the account was built with another profile; pass the profile to the Account")
        self.account = account
        self.host, self._requested_port = host, port
        self.faults = FaultInjector(
            latency_ms=latency_ms,
            jitter_ms=jitter_ms,
            fail_rate=fail_rate,
            fault_kinds=fault_kinds,
            fault_seed=fault_seed,
            max_concurrency=max_concurrency,
            slow_seconds=slow_seconds,
        )
        self.access = AccessControl(users, ip_allowlist, lockout_after)
        self.stats_counter = Stats()
        self.service = IntegrationService(account, self.access, page_size=page_size, stats=self.stats_counter)
        self.rest: RestService | None = None
        if (client_id is None) != (client_secret is None):
            raise ValueError("pass both client_id and client_secret to serve REST, or neither")
        if client_id is not None and client_secret is not None:
            self.rest = RestService(account, client_id, client_secret, self.service.account_lock,
                                    outage=lambda: self.faults.outage_seconds)
        self.served_wsdl = b""
        self._server: SimulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Simulator:
        """Bind the port and serve in a background thread; returns ``self``.

        Raises:
            RuntimeError: already started.
            OSError: the address cannot be bound.
        """
        if self._server is not None:
            raise RuntimeError("the simulator is already running")
        server = SimulatorHTTPServer((self.host, self._requested_port), self)
        self._server = server
        self.served_wsdl = bundled_wsdl().replace(PRODUCTION_URL.encode(), self.url.encode())
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="listrak-simulator", daemon=True
        )
        self._thread.start()
        log.info("Listrak simulator serving %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and close every connection (pending slow responses are dropped)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._server is not None

    @property
    def port(self) -> int:
        """The bound port.

        Raises:
            RuntimeError: not started.
        """
        if self._server is None:
            raise RuntimeError("the simulator is not running; call start() first")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` of the running server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The SOAP endpoint, ``http://127.0.0.1:PORT/v31/IntegrationService.asmx``."""
        return self.base_url + SOAP_PATH

    @property
    def wsdl_url(self) -> str:
        """The served WSDL's URL (its address points at :attr:`url`)."""
        return self.url + "?WSDL"

    @property
    def rest_url(self) -> str:
        """The REST API base, ``http://127.0.0.1:PORT/email/v1``.

        Raises:
            RuntimeError: not started, or started without REST credentials.
        """
        self._need_rest()
        return self.base_url + "/email/v1"

    @property
    def token_url(self) -> str:
        """The OAuth2 token endpoint, ``http://127.0.0.1:PORT/OAuth2/Token``."""
        self._need_rest()
        return self.base_url + "/OAuth2/Token"

    def _need_rest(self) -> None:
        if self.rest is None:
            raise RuntimeError("this simulator serves no REST; pass client_id and client_secret")

    def __repr__(self) -> str:
        where = self.url if self.running else "not running"
        return f"<Simulator {where} page_size={self.page_size} profile={self.profile.name}>"

    # -- settings -----------------------------------------------------------------------------

    @property
    def profile(self) -> Profile:
        """The variants of the uncertain facts this simulator plays (fixed for its lifetime)."""
        return self.service.profile

    @property
    def page_size(self) -> int:
        """Items per page of the paged operations (settable while running)."""
        return self.service.page_size

    @page_size.setter
    def page_size(self, value: int) -> None:
        if int(value) < 1:
            raise ValueError(f"page_size must be >= 1, got {value}")
        self.service.page_size = int(value)

    def configure_faults(self, **settings: Any) -> None:
        """Change fault settings (any of ``FaultInjector``'s) and restart the fault sequence.

        The REST knobs ``token_lifetime`` (seconds), ``rest_rate_limit`` (requests per second of
        a leaky bucket; None: off), ``rest_429_rate`` (share of API calls answered 429) and
        ``rest_latency_ms`` (delay before each API answer), ``rest_refused`` (route ids the API
        refuses, e.g. ``[{"listId": 12}]``) and ``rest_refusal_status`` (404 or 403) need a
        simulator serving REST (see :class:`~listrak_sync.simulator.rest.service.RestFaults`);
        ``outage_seconds`` answers REST calls 503 too.

        Raises:
            ValueError: an invalid value. TypeError: an unknown setting.
        """
        from listrak_sync.simulator.rest.service import RestFaults

        rest = {name: settings.pop(name) for name in RestFaults.SETTINGS if name in settings}
        if rest and self.rest is None:
            raise TypeError(f"{', '.join(rest)}: this simulator serves no REST (pass client_id and client_secret)")
        if rest and self.rest is not None:
            self.rest.faults.configure(**rest)
        if settings or not rest:
            self.faults.configure(**settings)

    def fault_settings(self) -> dict[str, Any]:
        """The SOAP fault settings, and the REST ones when REST is served."""
        values = self.faults.settings()
        if self.rest is not None:
            values.update(self.rest.faults.settings())
        return values

    # -- clock --------------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        """The account's virtual clock."""
        with self.service.account_lock:
            return self.account.now  # type: ignore[no-any-return]

    def set_now(self, now: datetime) -> None:
        """Move the virtual clock to ``now`` (naive)."""
        with self.service.account_lock:
            self.account.set_now(now)

    def advance(self, days: float) -> None:
        """Move the virtual clock forward by ``days``."""
        with self.service.account_lock:
            self.account.advance(days)

    # -- counters -----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters since the last reset: requests and rows per operation, faults injected,
        503s from the concurrency ceiling, refused logins, access denials, malformed requests;
        also the profile's knobs and the clock as the service shows it (``service_now``)."""
        snapshot = self.stats_counter.snapshot()
        snapshot["in_flight"] = self.faults.in_flight
        snapshot["locked_users"] = self.access.locked_users()
        snapshot["profile"] = self.profile.settings()
        with self.service.account_lock:
            service_now = getattr(self.account, "service_now", None) or self.account.now
        snapshot["service_now"] = service_now.isoformat()
        if self.rest is not None:
            snapshot.update(self.rest.stats())
        return snapshot

    def reset_stats(self) -> None:
        """Zero the counters."""
        self.stats_counter.reset()
        if self.rest is not None:
            self.rest.reset_stats()

    def reset_lockouts(self) -> None:
        """Unlock every user locked out by failed logins."""
        self.access.reset_lockouts()
