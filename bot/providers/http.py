"""One place that turns transport failures into provider errors and logs calls safely."""

from __future__ import annotations

import logging
import time

import httpx

from bot.providers.base import ProviderConnectionLost, ProviderTimeout, ProviderUnreachable

logger = logging.getLogger("bot.providers")


async def send(
    client: httpx.AsyncClient,
    provider: str,
    path: str,
    *,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    """POST `content` as is. Logs provider, path, status and time; never headers or bodies."""
    started = time.monotonic()
    try:
        response = await client.post(path, content=content, headers=headers, params=params)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        logger.warning("%s %s unreachable: %s", provider, path, type(exc).__name__)
        raise ProviderUnreachable(f"{provider} is unreachable") from None
    except httpx.TimeoutException as exc:
        logger.warning("%s %s timed out: %s", provider, path, type(exc).__name__)
        raise ProviderTimeout(f"{provider} did not answer in time") from None
    except httpx.HTTPError as exc:  # the connection broke after the request left
        logger.warning("%s %s failed: %s", provider, path, type(exc).__name__)
        raise ProviderConnectionLost(f"{provider} answer could not be received") from None
    elapsed_ms = (time.monotonic() - started) * 1000
    logger.info("%s %s -> %s in %.0f ms", provider, path, response.status_code, elapsed_ms)
    return response
