"""Bad configuration stops the bot at start with one readable line per problem and no secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, ProviderName, Settings, load_settings

TOKEN = "123456:SECRET-TOKEN-VALUE-abcdefghijklmnop"


def _load(**values: object) -> Settings:
    return load_settings(_env_file=None, **values)


def test_a_complete_cryptoprocessing_setup_loads() -> None:
    settings = _load(
        telegram_bot_token=TOKEN, provider="cryptoprocessing",
        cryptoprocessing_api_key="k", cryptoprocessing_secret_key="s",
        invoice_url_success="https://shop.example.com/ok", invoice_url_failed="https://shop.example.com/no",
        admin_ids="1, 2", merchant_ids="3",
    )  # fmt: skip
    assert settings.provider is ProviderName.CRYPTOPROCESSING
    assert settings.admin_ids == [1, 2] and settings.merchant_ids == [3]
    assert settings.telegram_api_base_url == "https://api.telegram.org/bot"
    assert TOKEN not in repr(settings)


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        _load(
            provider="cryptoprocessing",
            merchant_ids="not-a-number",
            telegram_api_base_url="ftp://x",
        )
    text = str(caught.value)
    assert "TELEGRAM_BOT_TOKEN: is required but not set" in text
    assert "MERCHANT_IDS" in text and "TELEGRAM_API_BASE_URL" in text


def test_provider_specific_settings_are_required() -> None:
    with pytest.raises(ConfigError) as caught:
        _load(telegram_bot_token=TOKEN, provider="cryptocloud", merchant_ids="1")
    assert "CRYPTOCLOUD_API_KEY" in str(caught.value) and "CRYPTOCLOUD_SHOP_ID" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        _load(
            telegram_bot_token=TOKEN, provider="cryptoprocessing", merchant_ids="1",
            cryptoprocessing_api_key="k", cryptoprocessing_secret_key="s",
            invoice_url_success="http://10.0.0.1/ok", invoice_url_failed="https://shop.example.com/no",
        )  # fmt: skip
    assert "INVOICE_URL_SUCCESS must be an https URL with a domain name" in str(caught.value)


def test_empty_allow_lists_are_accepted_so_a_new_operator_can_learn_their_id() -> None:
    settings = _load(
        telegram_bot_token=TOKEN,
        provider="cryptocloud",
        cryptocloud_api_key="k",
        cryptocloud_shop_id="s",
    )
    assert settings.admin_ids == [] and settings.merchant_ids == []


def test_the_bot_refuses_to_start_without_a_traceback_or_a_secret(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "TELEGRAM_BOT_TOKEN": TOKEN, "PROVIDER": "paypal"}
    result = subprocess.run(
        [sys.executable, "-m", "bot"], cwd=tmp_path, env=env | {"PYTHONPATH": str(Path.cwd())},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "PROVIDER: Input should be 'cryptoprocessing' or 'cryptocloud'" in result.stderr
    assert "Traceback" not in result.stderr
    assert TOKEN not in result.stderr + result.stdout
