"""``listrak-sync simulator``: serve a local Listrak until interrupted.

The main ``listrak-sync`` group mounts :data:`simulator_command`; it also runs on its own
(``python -m listrak_sync.simulator.cli``).
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import click

from listrak_sync.simulator.access import DEFAULT_PASSWORD, DEFAULT_USERNAME, User
from listrak_sync.simulator.core import Simulator
from listrak_sync.simulator.faults import FAULT_KINDS
from listrak_sync.simulator.service import DEFAULT_PAGE_SIZE

DEFAULT_PORT = 8765
SCALE_NAMES = ("tiny", "small", "medium", "large")


@click.command("simulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0 picks a free one).")
@click.option("--scale", default="small", show_default=True, type=click.Choice(SCALE_NAMES),
              help="Size of the synthetic account.")
@click.option("--seed", default=1, show_default=True, type=int, help="Seed of the synthetic account.")
@click.option("--page-size", default=DEFAULT_PAGE_SIZE, show_default=True, type=click.IntRange(min=1),
              help="Items per page of the paged reports.")
@click.option("--latency-ms", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="Delay added to every SOAP request.")
@click.option("--jitter-ms", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="Extra random delay, up to this much.")
@click.option("--fail-rate", default=0.0, show_default=True, type=click.FloatRange(0, 1),
              help="Share of SOAP requests that get an injected fault.")
@click.option("--fail-kinds", default=",".join(FAULT_KINDS), show_default=True,
              help="Comma-separated fault kinds to inject.")
@click.option("--fault-seed", default=0, show_default=True, type=int, help="Seed of the fault draws.")
@click.option("--max-concurrency", default=None, type=click.IntRange(min=1),
              help="In-flight SOAP requests beyond which the server answers 503.")
@click.option("--username", default=DEFAULT_USERNAME, show_default=True, help="API username to accept.")
@click.option("--password", default=DEFAULT_PASSWORD, show_default=True, help="API password to accept.")
def simulator_command(**options: Any) -> None:
    """Serve a local Listrak SOAP API (v31) with a synthetic account until Ctrl-C.

    It prints the endpoint, the WSDL URL and the credentials to use. Move its clock with
    POST /_simulator/clock {"advance_days": 7}; read counters at GET /_simulator/stats.

    \b
    Example:
      listrak-sync simulator --port 8765 --scale small --latency-ms 20 --fail-rate 0.05
    """
    try:
        sim = Simulator(
            seed=options["seed"],
            scale=options["scale"],
            host=options["host"],
            port=options["port"],
            page_size=options["page_size"],
            latency_ms=options["latency_ms"],
            jitter_ms=options["jitter_ms"],
            fail_rate=options["fail_rate"],
            fault_kinds=options["fail_kinds"],
            fault_seed=options["fault_seed"],
            max_concurrency=options["max_concurrency"],
            users=[User(options["username"], options["password"])],
        )
        sim.start()
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {options['host']}:{options['port']}: {exc.strerror}") from None
    stop = threading.Event()
    # Explicit handlers: a process started in the background inherits an ignored SIGINT.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        _print_banner(sim, options)
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
    click.echo("Simulator stopped.")


def _print_banner(sim: Simulator, options: dict[str, Any]) -> None:
    faults = sim.faults
    lines = [
        f"Listrak simulator: scale {options['scale']}, seed {options['seed']}, page size {sim.page_size}",
        f"  endpoint:  {sim.url}",
        f"  WSDL:      {sim.wsdl_url}",
        f"  username:  {options['username']}",
        f"  password:  {options['password']}",
        f"  clock:     {sim.now.isoformat()}",
        f"  stats:     {sim.base_url}/_simulator/stats",
        f"  faults:    latency {faults.latency_ms:g} ms (+{faults.jitter_ms:g}), fail rate {faults.fail_rate:g}"
        f" ({', '.join(faults.fault_kinds)}), max concurrency {faults.max_concurrency or 'none'}",
        "Press Ctrl-C to stop.",
    ]
    click.echo("\n".join(lines))
    sys.stdout.flush()


if __name__ == "__main__":
    simulator_command()
