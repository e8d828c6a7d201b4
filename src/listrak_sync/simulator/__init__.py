"""A local Listrak: a SOAP v31 simulator on a real HTTP server, with a synthetic account.

The public surface::

    Simulator(account=None, *, seed=1, scale="tiny", host="127.0.0.1", port=0, page_size=2500,
              latency_ms=0.0, jitter_ms=0.0, fail_rate=0.0, fault_kinds=None, fault_seed=0,
              max_concurrency=None, users=None, ip_allowlist=None, lockout_after=5,
              slow_seconds=30.0, profile=None, client_id=None, client_secret=None)
    sim.rest_url, sim.token_url                      # REST (with client_id and client_secret)
    sim.account.rest_ground_truth(table, start)      # what a correct REST client stores
    Profile.friendly(), Profile.pessimistic()        # which variant of each uncertain fact
    User(username, password, list_ids=None)          # list_ids None = every list
    DEFAULT_USERNAME, DEFAULT_PASSWORD               # "demo", "demo-password"
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET               # the REST pair `listrak-sync demo` uses
    FAULT_KINDS                                      # server_fault, unavailable, drop, truncated, slow
    Account, SCALES, DEFAULT_NOW, EPOCH              # the synthetic data (see .data)

See :mod:`listrak_sync.simulator.core` for an example, :mod:`.server` for the HTTP routes,
:mod:`.service` for the SOAP behaviour, :mod:`.rest` for the REST Email API and :mod:`.faults`
for injected faults.
"""

from listrak_sync.simulator.access import DEFAULT_PASSWORD, DEFAULT_USERNAME, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, User
from listrak_sync.simulator.core import Simulator
from listrak_sync.simulator.data import DEFAULT_NOW, EPOCH, SCALES, Account
from listrak_sync.simulator.faults import FAULT_KINDS, FaultInjector
from listrak_sync.simulator.profile import PROFILE_NAMES, Profile
from listrak_sync.simulator.service import ACCESS_DENIED, DEFAULT_PAGE_SIZE

__all__ = [
    "ACCESS_DENIED",
    "DEFAULT_NOW",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_PASSWORD",
    "DEFAULT_USERNAME",
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "EPOCH",
    "FAULT_KINDS",
    "PROFILE_NAMES",
    "SCALES",
    "Account",
    "FaultInjector",
    "Profile",
    "Simulator",
    "User",
]
