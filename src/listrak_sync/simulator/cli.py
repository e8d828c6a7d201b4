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
from listrak_sync.simulator.profile import KNOBS, PROFILE_NAMES, Knob, Profile, parse_factor
from listrak_sync.simulator.service import DEFAULT_PAGE_SIZE

DEFAULT_PORT = 8765
SCALE_NAMES = ("tiny", "small", "medium", "large")


def _knob_option(knob: Knob) -> Any:
    friendly, pessimistic = (getattr(p, knob.name) for p in (Profile.friendly(), Profile.pessimistic()))
    if knob.name == "page_size_factors":
        friendly, pessimistic = (",".join(f"{op}={f:g}" for op, f in value) or "none"
                                 for value in (friendly, pessimistic))
    metavar = "DAYS|never" if friendly is None else "TEXT"
    friendly, pessimistic = ("never" if value is None else value for value in (friendly, pessimistic))
    text = f"{knob.help} [friendly: {friendly}; pessimistic: {pessimistic}]"
    if knob.off_flag:
        return click.option(f"{knob.flag}/{knob.off_flag}", knob.name, default=None, help=text)
    if knob.choices:
        return click.option(knob.flag, knob.name, type=click.Choice(knob.choices), help=text)
    if knob.name == "page_size_factors":
        return click.option(knob.flag, knob.name, multiple=True, metavar="OPERATION=FACTOR", help=text)
    if isinstance(friendly, float):
        return click.option(knob.flag, knob.name, type=click.FloatRange(min=0), help=text)
    return click.option(knob.flag, knob.name, metavar=metavar, help=text)


def _with_knob_options(command: Any) -> Any:
    for knob in reversed(KNOBS):
        command = _knob_option(knob)(command)
    return command


def _profile(options: dict[str, Any]) -> Profile:
    """The preset named by ``--profile`` with every knob flag given on top of it."""
    profile = Profile.named(options.pop("profile"))
    changes: dict[str, Any] = {}
    for knob in KNOBS:
        value = options.pop(knob.name)
        if value is None or value == ():
            continue
        if knob.name == "page_size_factors":
            value = {**dict(profile.page_size_factors), **dict(parse_factor(text) for text in value)}
        elif knob.name == "list_withdrawal_days":
            value = _days_or_never(value)
        changes[knob.name] = value
    return profile.replace(**changes)


def _days_or_never(text: str) -> float | None:
    if text.strip().lower() == "never":
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--list-withdrawal-days takes a number of days or 'never', not {text!r}") from None


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
@click.option("--client-id", default=None, help="REST client id to accept; with --client-secret the simulator also "
              "serves the REST Email API (POST /OAuth2/Token, GET /email/v1/...) on the same port.")
@click.option("--client-secret", default=None, help="REST client secret to accept (with --client-id).")
@click.option("--token-lifetime", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Seconds a REST token lives [friendly: 3599; pessimistic: 900].")
@click.option("--rest-rate-limit", default=None, type=click.FloatRange(min=0, min_open=True),
              help="REST requests per second a leaky bucket lets through; beyond, HTTP 429 [default: no limit].")
@click.option("--rest-429-rate", default=0.0, show_default=True, type=click.FloatRange(0, 1),
              help="Share of REST API calls answered HTTP 429.")
@click.option("--profile", default="friendly", show_default=True, type=click.Choice(PROFILE_NAMES),
              help="Which variant of each uncertain Listrak fact to play: friendly, or pessimistic (the worst "
                   "plausible one). The flags below change single knobs on top of it.")
@_with_knob_options
def simulator_command(**options: Any) -> None:
    """Serve a local Listrak SOAP API (v31), and with --client-id/--client-secret the REST Email API (v1)
    on the same port, with one synthetic account until Ctrl-C.

    It prints the endpoint, the WSDL URL and the credentials to use. Move its clock with
    POST /_simulator/clock {"advance_days": 7}; read counters and the profile at
    GET /_simulator/stats.

    \b
    Examples:
      listrak-sync simulator --port 8765 --scale small --latency-ms 20 --fail-rate 0.05
      listrak-sync simulator --profile pessimistic --range-bounds inclusive
      listrak-sync simulator --client-id demo-client --client-secret demo-secret --token-lifetime 60
    """
    try:
        profile = _profile(options)
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
            profile=profile,
            client_id=options["client_id"],
            client_secret=options["client_secret"],
        )
        if sim.rest is not None:
            rest: dict[str, Any] = {"rest_429_rate": options["rest_429_rate"]}
            if options["token_lifetime"] is not None:
                rest["token_lifetime"] = options["token_lifetime"]
            if options["rest_rate_limit"] is not None:
                rest["rest_rate_limit"] = options["rest_rate_limit"]
            sim.configure_faults(**rest)
        elif options["token_lifetime"] or options["rest_rate_limit"] or options["rest_429_rate"]:
            raise ValueError("--token-lifetime, --rest-rate-limit and --rest-429-rate need --client-id and "
                             "--client-secret")
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
    ]
    if sim.rest is not None:
        rest = sim.rest.faults
        lines += [
            f"  REST:      {sim.rest_url}",
            f"  token URL: {sim.token_url}",
            f"  client id: {sim.rest.client_id}",
            "  secret:    the --client-secret given",
            f"  tokens:    {rest.token_lifetime:g} s, rate limit {rest.rest_rate_limit or 'none'}, "
            f"429 rate {rest.rest_429_rate:g}",
        ]
    lines += [
        f"  profile:   {sim.profile.name}",
        f"  stats:     {sim.base_url}/_simulator/stats",
        f"  faults:    latency {faults.latency_ms:g} ms (+{faults.jitter_ms:g}), fail rate {faults.fail_rate:g}"
        f" ({', '.join(faults.fault_kinds)}), max concurrency {faults.max_concurrency or 'none'}",
        "Press Ctrl-C to stop.",
    ]
    click.echo("\n".join(lines))
    sys.stdout.flush()


if __name__ == "__main__":
    simulator_command()
