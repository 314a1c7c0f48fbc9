"""Logging that cannot leak the bot token, provider keys or customers' personal data."""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

# Bot API URLs carry the token: bot123456:AA... (the colon may arrive URL-encoded as %3A);
# mask any that slip through, even when the token itself is not known to the redactor.
_TOKEN_PATTERN = re.compile(r"\d{5,}(?::|%3[Aa])[A-Za-z0-9_-]{30,}")
_MIN_SECRET_LENGTH = 6


def _variants(secret: str) -> set[str]:
    """A secret as it may appear in text: as is, URL-encoded, and a token's part after `:`."""
    found = {secret, quote(secret, safe="")}
    head, colon, tail = secret.partition(":")
    if colon and head.isdigit():
        found.add(tail)
    return {value for value in found if len(value) >= _MIN_SECRET_LENGTH}


class SecretRedactor(logging.Filter):
    """Masks known secrets and token-shaped strings in a record's message, traceback and stack."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        variants = {variant for secret in secrets if secret for variant in _variants(secret)}
        self._secrets = sorted(variants, key=len, reverse=True)

    def mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _TOKEN_PATTERN.sub("***", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self.mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self.mask(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        return True


def quiet_noisy_loggers() -> None:
    """Only the bot's own lines at INFO: libraries speak up for warnings and errors.

    httpx logs every URL at INFO (with the token); PTB logs whole updates at DEBUG and its
    own start/stop at INFO; Alembic announces its plugins and every migration step.
    """
    for name in (
        "httpx", "httpcore", "apscheduler", "aiosqlite", "sqlalchemy", "alembic", "telegram",
        "telegram.ext", "uvicorn", "uvicorn.error", "uvicorn.access",
    ):  # fmt: skip
        logging.getLogger(name).setLevel(logging.WARNING)


_BASE_RECORD_FACTORY = logging.getLogRecordFactory()


def _redacting_factory(redactor: SecretRedactor) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = _BASE_RECORD_FACTORY(*args, **kwargs)
        redactor.filter(record)
        return record

    return factory


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    name = args.thread.name if args.thread is not None else "?"
    exc_info = (args.exc_type, args.exc_value, args.exc_traceback)
    logging.getLogger("bot").error("unhandled exception in thread %s", name, exc_info=exc_info)


def _log_unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    message = unraisable.err_msg or "Exception ignored in"
    logging.getLogger("bot").warning(
        "%s: %r", message, unraisable.object, exc_info=unraisable.exc_value
    )


def configure_logging(level: str, secrets: Iterable[str] = ()) -> logging.Handler:
    """One stderr handler for everything; every record is masked as it is created.

    Masking at creation covers libraries that log through their own handlers (uvicorn
    installs some) as well as ours; the handler's filter is a second line of defence.
    Python warnings, and exceptions Python would print itself (in threads, in `__del__`),
    are routed through logging so they are masked too.
    """
    redactor = SecretRedactor(secrets)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(redactor)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.setLogRecordFactory(_redacting_factory(redactor))
    logging.captureWarnings(True)
    threading.excepthook = _log_thread_exception
    sys.unraisablehook = _log_unraisable
    quiet_noisy_loggers()
    return handler
