"""`python -m bot`: validate settings, then run until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from bot.config import ConfigError, Settings, load_settings
from bot.logging_setup import configure_logging

logger = logging.getLogger("bot")


def _secrets(settings: Settings) -> list[str]:
    values = [
        settings.telegram_bot_token,
        settings.cryptoprocessing_api_key,
        settings.cryptoprocessing_secret_key,
        settings.cryptocloud_api_key,
        settings.cryptocloud_secret_key,
    ]
    return [value.get_secret_value() for value in values if value is not None]


async def _run(settings: Settings) -> None:
    from bot.app import build_runtime

    if settings.sqlite_path is not None:
        settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    runtime = build_runtime(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await runtime.start()
    try:
        await stop.wait()
    finally:
        await runtime.stop()


def main() -> None:
    try:
        settings = load_settings()
    except ConfigError as exc:
        lines = [f"  - {problem}" for problem in exc.problems]
        sys.stderr.write(
            "The bot cannot start; fix these settings (see .env.example):\n"
            + "\n".join(lines)
            + "\n"
        )
        raise SystemExit(2) from None
    configure_logging(settings.log_level, _secrets(settings))
    asyncio.run(_run(settings))


if __name__ == "__main__":
    main()
