"""`python -m bot`: validate settings, check Telegram and the provider, then run until stopped.

Whatever stops the start-up is printed as one line per problem (never a traceback, never a
secret) and the process exits with code 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from typing import TYPE_CHECKING, NoReturn

from bot.config import ConfigError, Settings, load_settings
from bot.logging_setup import SecretRedactor, configure_logging

if TYPE_CHECKING:
    from bot.app import BotRuntime

logger = logging.getLogger("bot")

EXIT_STARTUP_FAILED = 2
_STOP_TIMEOUT = 15.0


def _fail(headline: str, problems: list[str], code: int = EXIT_STARTUP_FAILED) -> NoReturn:
    sys.stderr.write(headline + "\n" + "".join(f"  - {problem}\n" for problem in problems))
    sys.stderr.flush()
    raise SystemExit(code)


async def _first(task: asyncio.Task[None], stop: asyncio.Event) -> bool:
    """Wait for `task` unless a stop signal comes first (then cancel it); True if it finished."""
    waiter = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task.done():
        task.result()
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False


async def _run(settings: Settings) -> None:
    from bot.preflight import StartupError, describe_failure, run_checks

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)

    runtime: BotRuntime | None = None
    try:
        if not await _first(asyncio.create_task(run_checks(settings)), stop):
            logger.info("stopped before the start-up checks finished")
            return
        from bot.app import build_runtime

        if settings.sqlite_path is not None:
            settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        runtime = build_runtime(settings)
        started = await _first(asyncio.create_task(runtime.start()), stop)
    except StartupError:
        raise
    except Exception as exc:
        # The traceback goes through the log's redaction, and only at DEBUG.
        logger.debug("start-up failure", exc_info=True)
        if runtime is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(runtime.stop(), _STOP_TIMEOUT)
        raise StartupError([describe_failure(exc, settings)]) from None
    try:
        if started:
            await stop.wait()
    finally:
        await runtime.stop()


def main() -> None:
    try:
        settings = load_settings()
    except ConfigError as exc:
        _fail("The bot cannot start; fix these settings (see .env.example):", exc.problems)
    # Imported only now: a settings problem is reported without loading Telegram and the rest.
    from bot.preflight import StartupError, describe_failure

    secrets = settings.secret_values()
    redactor = SecretRedactor(secrets)
    configure_logging(settings.log_level, secrets)
    try:
        asyncio.run(_run(settings))
    except StartupError as exc:
        _fail("The bot cannot start:", [redactor.mask(problem) for problem in exc.problems])
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as exc:  # a failure while stopping: one line, not a traceback
        logger.debug("failure while stopping", exc_info=True)
        _fail("The bot stopped with an error:", [redactor.mask(describe_failure(exc, settings))], 1)


if __name__ == "__main__":
    main()
