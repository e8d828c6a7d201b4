"""Logging helpers shared by the CLI and the Singer tap (kept light: no dlt import)."""

from __future__ import annotations

import logging
import re
import sys
import threading
import traceback
from types import TracebackType

# Secrets shorter than this are masked only where they stand alone (see RedactingFilter.redact).
SHORT_SECRET = 4


class RedactingFilter(logging.Filter):
    """Replaces every known secret in a log record's text, traceback included, with ``********``.

    The message is formatted here, and so are the traceback (``exc_info``, with every chained
    exception) and ``stack_info``; the redacted traceback is kept as ``exc_text`` and
    ``exc_info`` is cleared, so no formatter downstream ever renders the raw exception. An
    exception that quotes a server which echoed the password (even inside an element name that
    a parser error repeats) is therefore redacted in ``--debug`` output too.
    """

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced (longest first, so no secret is left half-hidden).

        A secret shorter than :data:`SHORT_SECRET` characters is replaced where it stands alone
        (not inside a longer word or number): masked everywhere, a one-letter password would
        turn every word holding that letter into stars, and hide nothing a reader could not
        guess anyway.
        """
        for secret in sorted((s for s in self.secrets if s), key=len, reverse=True):
            if len(secret) < SHORT_SECRET:
                text = re.sub(rf"(?<!\w){re.escape(secret)}(?!\w)", "********", text)
            else:
                text = text.replace(secret, "********")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not any(self.secrets):
            return True
        record.msg, record.args = self.redact(record.getMessage()), None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        record.exc_info = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def log_to_stderr(level: int, redact: RedactingFilter, fmt: str, *, debug: bool) -> None:
    """Send every log record to stderr through ``redact``; below DEBUG, keep urllib3 and dlt quiet.

    Uncaught exceptions (in the main thread or any other) are logged through the same handler,
    so their tracebacks are redacted too.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(redact)
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if not debug:
        for noisy in ("urllib3", "dlt"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    # Only in place of Python's own hooks: a test runner's (or an embedding app's) stay.
    if sys.excepthook is sys.__excepthook__:
        sys.excepthook = _log_uncaught
    if threading.excepthook is threading.__excepthook__:
        threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, trace)
        return
    logging.getLogger("listrak_sync").critical("Uncaught %s", kind.__name__, exc_info=(kind, error, trace))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    name = args.thread.name if args.thread is not None else "a thread"
    logging.getLogger("listrak_sync").critical(
        "Uncaught %s in %s", args.exc_type.__name__, name, exc_info=(args.exc_type, args.exc_value, args.exc_traceback)
    )
