"""The bot's HTTP port: health check, the callback URL for operators, and Telegram webhooks."""

from __future__ import annotations

import httpx

from tests.conftest import ADMIN_ID, MERCHANT_ID, BotStarter
from tests.e2e.payments import bot_url
from tests.fakes.cryptocloud_api import FakeCryptoCloud
from tests.fakes.telegram_api import FakeTelegram

SECRET = "webhook-secret-0123456789"


async def test_health_check_reports_database_and_bot(
    telegram: FakeTelegram, cryptocloud: FakeCryptoCloud, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptocloud)
    async with httpx.AsyncClient() as client:
        healthy = await client.get(f"{bot_url(bot)}/healthz")
    assert healthy.status_code == 200
    assert healthy.json() == {"database": True, "bot": True, "role": "poller"}


async def test_admins_get_the_callback_url_to_paste_into_the_dashboard(
    telegram: FakeTelegram, cryptocloud: FakeCryptoCloud, start_bot: BotStarter
) -> None:
    await start_bot(cryptocloud)
    shown = await telegram.user(ADMIN_ID).reply("/callbacks")
    assert "https://bot.example.com/callbacks/cryptocloud" in shown.text
    refused = await telegram.user(MERCHANT_ID).reply("/callbacks")
    assert "bot.example.com" not in refused.text


async def test_webhook_mode_registers_and_accepts_only_the_secret_token(
    telegram: FakeTelegram, cryptocloud: FakeCryptoCloud, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptocloud, telegram_mode="webhook", telegram_webhook_secret=SECRET)
    [registered] = telegram.calls_to("setWebhook")
    assert registered.params["url"] == "https://bot.example.com/telegram"
    assert registered.params["secret_token"] == SECRET
    assert not telegram.calls_to("getUpdates")

    merchant = telegram.user(MERCHANT_ID)
    update = telegram.update(await merchant.send("/new"))
    url = f"{bot_url(bot)}/telegram"
    async with httpx.AsyncClient() as client:
        missing = await client.post(url, json=update)
        wrong = await client.post(
            url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET + "x"}
        )
        assert (missing.status_code, wrong.status_code) == (403, 403)
        assert not telegram.chat_messages(merchant.chat_id)  # refused updates did nothing

        right = await client.post(
            url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}
        )
    assert right.status_code == 200
    asked = await telegram.wait_for(
        lambda: [m for m in telegram.chat_messages(merchant.chat_id) if "amount" in m.text] or None
    )
    assert asked
