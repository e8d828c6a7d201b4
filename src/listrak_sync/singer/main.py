"""``tap-listrak``: a Singer tap over the same extraction core, a drop-in for singer-io/tap-listrak.

::

    tap-listrak --version                            the listrak-sync version
    tap-listrak --about [--format json|markdown]     settings and capabilities
    tap-listrak [--config config.json] --discover    the catalog (no network, no config needed)
    tap-listrak --config config.json --test          the connection check
    tap-listrak --config config.json [--catalog catalog.json | --properties properties.json]
                [--state state.json]                 sync: Singer messages on stdout

Config: tap-listrak's keys ``username``, ``password``, ``start_date`` (``2010-01-01``, a full ISO
timestamp or ``MM/DD/YYYY``) and ``interval_days``, plus any optional tuning key of
:mod:`listrak_sync.singer.about` (``endpoint``, ``concurrency``, timeouts, ...) and
``typed_event_dates``. Other keys are ignored with a warning that names them (never their values).
A config with ``client_id`` and ``client_secret`` and no ``username``/``password`` is PyPI
tap-listrak 2.x's: the tap then offers 2.x's REST streams (:mod:`listrak_sync.singer.rest_mode`).

Records are shaped as tap-listrak's (see :mod:`listrak_sync.singer.catalog`). ``ClickDate``,
``OpenDate``, ``ReadDate`` and ``BounceDate``, strings in the WSDL, go out as the text the
service sent (tap-listrak emitted zeep's string unchanged): the client reads them through
:class:`EventDatesAsSentClient`, so they are never parsed. ``"typed_event_dates": true`` parses
them like every other date and emits RFC 3339 UTC (``2024-01-31T08:00:00.000000Z``).

Output follows the Singer spec: one JSON message per line on stdout, logs on stderr, STATE as
the run progresses (see :mod:`listrak_sync.engine.state` for what it holds). On failure the
tap logs ``CRITICAL <what happened and what to do>`` and exits 2 (configuration), 3 (access
refused: credentials, IP address, lockout), 5 (done, but some object's pages never ended) or 1
(anything else), like ``listrak-sync``: an
endpoint that never answered is configuration; ``--debug`` adds tracebacks. The password is
redacted from every log line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa

from listrak_sync import __version__
from listrak_sync.engine.state import SingerState
from listrak_sync.errors import EXIT_ERROR, EXIT_OK, ConfigError, IncompleteRunError, ListrakSyncError, exit_code
from listrak_sync.extract import Extractor
from listrak_sync.logs import RedactingFilter, log_to_stderr
from listrak_sync.process import tune_for_bulk_work
from listrak_sync.settings import Settings
from listrak_sync.singer import rest_mode
from listrak_sync.singer.about import NAME, REQUIRED, TAP_OPTIONS, about, about_markdown, tap_settings
from listrak_sync.singer.catalog import Selection, discover, read_selection, stream_as_sent
from listrak_sync.singer.output import SingerWriter
from listrak_sync.singer.rest_mode import both_pairs, is_rest_config
from listrak_sync.singer.sync import TapSync
from listrak_sync.soap.client import ListrakClient, Scope, unreachable_is_config
from listrak_sync.streams import Stream
from listrak_sync.time import utc

log = logging.getLogger(__name__)
DISTRIBUTION = "listrak-sync"


def version() -> str:
    """The installed ``listrak-sync`` distribution's version (the package's own when not installed)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return __version__


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the Singer command line.

    Raises:
        SystemExit: ``--help``, or bad usage (exit 2, argparse's message on stderr).
    """
    parser = argparse.ArgumentParser(
        prog=NAME,
        description="Singer tap for Listrak (SOAP API v31). Writes Singer messages to stdout.",
        epilog="Example: tap-listrak --config config.json --catalog catalog.json --state state.json | target-jsonl",
    )
    parser.add_argument("--version", action="version", version=f"{NAME} {version()} ({DISTRIBUTION})")
    parser.add_argument("-c", "--config", help="Config JSON file: username, password, start_date, ...")
    parser.add_argument("-d", "--discover", action="store_true", help="Print the catalog and exit.")
    parser.add_argument("--catalog", help="Catalog JSON file with the streams and fields to sync.")
    parser.add_argument("-p", "--properties", help="Legacy catalog (properties) JSON file.")
    parser.add_argument("-s", "--state", help="State JSON file to continue from.")
    parser.add_argument("--about", action="store_true", help="Print settings and capabilities and exit.")
    parser.add_argument("--format", choices=("json", "markdown"), help="Format of --about (default: text JSON).")
    parser.add_argument("--test", action="store_true", help="Check the connection and credentials, then exit.")
    parser.add_argument("--debug", action="store_true", help="Log at DEBUG level, with tracebacks on failure.")
    return parser.parse_args(argv)


def _setup_logging(debug: bool, redact: RedactingFilter) -> None:
    log_to_stderr(logging.DEBUG if debug else logging.INFO, redact, "%(levelname)s %(message)s", debug=debug)


def load_json(path: str, what: str) -> Any:
    """Read one JSON document (an empty file reads as ``{}``).

    Raises:
        ConfigError: the file cannot be read or is not JSON.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read the {what} file {path!r}: {exc.strerror or exc}.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"The {what} file {path!r} is not UTF-8 text: pass a JSON file.") from None
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # The position only: the message must not quote the file, which may hold the password.
        raise ConfigError(
            f"The {what} file {path!r} is not valid JSON (line {exc.lineno}, column {exc.colno})."
        ) from None


def settings_from_config(config: Any) -> Settings:
    """Build settings from a tap-listrak config document.

    Args:
        config: the parsed ``--config`` JSON.

    Returns:
        Validated settings.

    Raises:
        ConfigError: not an object, a required key missing, or a bad value.
    """
    if not isinstance(config, Mapping):
        raise ConfigError("The config file must hold a JSON object with username, password and start_date.")
    for key in REQUIRED:
        if config.get(key) in (None, ""):
            raise ConfigError(f'The config has no {key!r}. Add "{key}": ... to the --config JSON file.')
    known = {f.name for f in tap_settings()}
    ignored = sorted(set(config) - known - set(TAP_OPTIONS))
    if ignored:
        log.warning("Ignoring config keys this tap does not use: %s.", ", ".join(ignored))
    return Settings.from_mapping({k: v for k, v in config.items() if k in known})


def typed_event_dates(config: Any) -> bool:
    """The ``typed_event_dates`` key of a config document (default false).

    Raises:
        ConfigError: a value other than true/false (JSON booleans, or the strings).
    """
    value = config.get("typed_event_dates") if isinstance(config, Mapping) else None
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ConfigError(f"typed_event_dates must be true or false, got {value!r}.")


class EventDatesAsSentClient(ListrakClient):
    """A client that reads the dates Listrak sends as strings as text, never parsing them.

    Every table it returns has ``ClickDate``, ``OpenDate``, ``ReadDate`` and ``BounceDate`` (the
    ``catalog.text_dates``) as the element text the service sent; all else is as
    :class:`ListrakClient` reads it.
    """

    def fetch(self, stream: Stream, *, scope: Scope | None = None, **params: Any) -> pa.Table:
        """:meth:`ListrakClient.fetch`, with the event dates of ``stream`` read as text."""
        return super().fetch(stream_as_sent(stream), scope=scope, **params)


def _client(settings: Settings, typed_dates: bool) -> ListrakClient:
    return ListrakClient(settings) if typed_dates else EventDatesAsSentClient(settings)


def _selection(args: argparse.Namespace) -> Selection:
    if args.catalog:
        return read_selection(load_json(args.catalog, "catalog"))
    if args.properties:
        return read_selection(load_json(args.properties, "properties"))
    return Selection.everything()


def check_connection(settings: Settings) -> int:
    """The ``--test`` check: one cheap call that proves credentials, IP and API access.

    Returns:
        How many lists the user can see.

    Raises:
        AccessError: credentials, IP address or lockout.
        ConfigError: the endpoint never answered.
        ListrakSyncError: anything else that stops the call.
    """
    with ListrakClient(settings) as client, unreachable_is_config(client):
        lists = Extractor(client, settings).lists()
    return int(lists.num_rows)


def sync(
    settings: Settings,
    selection: Selection,
    state: Any,
    out: Any = None,
    *,
    typed_dates: bool = False,
    clock: Callable[[], datetime] | None = None,
) -> dict[str, Any]:
    """Run one sync and write its Singer messages.

    Args:
        settings: validated settings.
        selection: streams and fields to emit.
        state: the state document to continue from (``None`` for a first run).
        out: a text stream for the messages (default: stdout).
        typed_dates: the ``typed_event_dates`` setting.
        clock: the current time, aware, read once: the run's ``now``, where requests end and
            bookmarks move to. Default: the service's clock (:meth:`ListrakClient.service_now`),
            read once the lists call has answered, so that bookmarks follow the service's
            clock and not this machine's.

    Returns:
        The final state.

    Raises:
        ConfigError: the endpoint never answered, or the state is not one this tap wrote.
        IncompleteRunError: the sync is done, but some objects' pages never ended (logged); their
            bookmarks did not move, so the next sync asks them again.
        ListrakSyncError: the sync failed (the STATE already written is valid to continue from).
    """
    bookmarks = SingerState(state)  # a bad state is refused before anything goes on the wire
    writer = SingerWriter(out or sys.stdout)
    with _client(settings, typed_dates) as client, unreachable_is_config(client):
        extractor = Extractor(client, settings, now=_read_once((lambda: utc(clock())) if clock else client.service_now))
        tap = TapSync(extractor, selection, bookmarks, writer, start=settings.start_date,
                      typed_event_dates=typed_dates)
        tap.run()
        stats = client.stats.as_dict()
    counts = ", ".join(f"{name} {n}" for name, n in writer.records_written.items()) or "none"
    log.info("Sync done: records %s; %d requests, %d retried.",
             counts, sum(stats.get("requests", {}).values()), stats.get("retries", 0))
    if stats.get("repeated_rows"):
        log.info("Dropped rows the service sent twice (repeated across pages or lists): %s.",
                 ", ".join(f"{name} {n}" for name, n in stats["repeated_rows"].items()))
    if extractor.incomplete:
        raise IncompleteRunError()
    return writer.last_state or {}


def _read_once(clock: Callable[[], datetime]) -> Callable[[], datetime]:
    """``clock``, read at its first use and then fixed: the run's one ``now``. The tap's first
    use comes after the lists call, so the service's clock is known from its answer."""
    read: list[datetime] = []

    def now() -> datetime:
        if not read:
            read.append(clock())
        return read[0]

    return now


def run(argv: Sequence[str] | None = None, *, clock: Callable[[], datetime] | None = None) -> int:
    """The tap's command line, returning the exit code (see the module docstring).

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).
        clock: the current time for a sync (see :func:`sync`; default: the service's clock).
    """
    args = parse_args(argv)
    redact = RedactingFilter()
    _setup_logging(args.debug, redact)
    try:
        if args.about:
            text = about_markdown() if args.format == "markdown" else json.dumps(about(), indent=2)
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
            return EXIT_OK
        config = load_json(args.config, "config") if args.config else None
        for secret in ("password", "client_secret"):
            if isinstance(config, Mapping) and isinstance(config.get(secret), str) and config[secret]:
                redact.secrets.add(config[secret])
        if isinstance(config, Mapping) and is_rest_config(config):
            return _run_rest(args, config)
        if args.discover:
            catalog = discover(typed_event_dates=typed_event_dates(config))
            sys.stdout.write(json.dumps(catalog, indent=2) + "\n")
            return EXIT_OK
        if config is None:
            raise ConfigError("No config. Pass --config config.json with username, password and start_date.")
        if both_pairs(config):
            log.warning("The config holds both username/password and client_id/client_secret: the tap runs its "
                        "SOAP streams. For tap-listrak 2.x's streams, give client_id and client_secret alone.")
        settings = settings_from_config(config)
        if args.test:
            count = check_connection(settings)
            log.info(
                "Connection OK: connected to %s as %r; %d lists visible.", settings.endpoint, settings.username, count
            )
            return EXIT_OK
        selection = _selection(args)
        state = load_json(args.state, "state") if args.state else None
        sync(settings, selection, state, typed_dates=typed_event_dates(config), clock=clock)
        return EXIT_OK
    except ListrakSyncError as exc:
        return _critical(exc, exit_code(exc), args.debug)
    except BrokenPipeError:
        # The target went away; its own error says why. Nothing more can be written to stdout.
        log.critical("The output pipe closed (the target stopped reading).")
        return EXIT_ERROR
    except KeyboardInterrupt:
        log.critical("Interrupted. The last STATE written is where the next run continues.")
        return 130
    except Exception as exc:
        return _critical(exc, EXIT_ERROR, args.debug, unexpected=True)


def _run_rest(args: argparse.Namespace, config: Mapping[str, Any]) -> int:
    """The 2.x mode's discover, ``--test`` and sync (:mod:`listrak_sync.singer.rest_mode`)."""
    if args.discover:
        sys.stdout.write(json.dumps(rest_mode.discover(), indent=2) + "\n")
        return EXIT_OK
    settings = settings_from_config(rest_mode.rest_config(config))
    from listrak_sync.rest.client import RestClient

    with RestClient(settings) as client:
        if args.test:
            count = len(client.check())
            log.info("Connection OK: connected to %s with client ID %r; %d lists visible.",
                     settings.rest_endpoint, settings.client_id, count)
            return EXIT_OK
        if args.catalog or args.properties:
            document = load_json(args.catalog or args.properties, "catalog" if args.catalog else "properties")
            selection = read_selection(document, rest_mode.OFFERED)
        else:
            selection = rest_mode.everything()
        state = (load_json(args.state, "state") if args.state else None) or {}
        if not isinstance(state, Mapping):
            raise ConfigError("The state file must hold a JSON object: pass a state this tap wrote, or none.")
        writer = SingerWriter(sys.stdout)
        rest_mode.RestTapSync(client, settings, selection, state, writer).run()
        requests = client.requests
    counts = ", ".join(f"{name} {n}" for name, n in writer.records_written.items()) or "none"
    log.info("Sync done: records %s; %d REST requests.", counts, requests)
    return EXIT_OK


def _critical(exc: BaseException, code: int, debug: bool, *, unexpected: bool = False) -> int:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if unexpected:
        text = f"Unexpected {type(exc).__name__}: {text}. Run again with --debug for details."
    log.critical(text, exc_info=exc if debug else None)
    return code


def main() -> None:
    """Console-script entry point (``tap-listrak``)."""
    tune_for_bulk_work()
    code = run()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        code = code or EXIT_ERROR
    if code == EXIT_ERROR:
        # After a broken pipe, keep Python's exit-time flush from printing a second traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(code)


__all__ = [
    "DISTRIBUTION",
    "EventDatesAsSentClient",
    "check_connection",
    "load_json",
    "main",
    "parse_args",
    "run",
    "settings_from_config",
    "sync",
    "typed_event_dates",
    "version",
]


if __name__ == "__main__":
    main()
