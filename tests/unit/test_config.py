"""Bad configuration stops the bot at start with one readable line per problem and no secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, ProviderName, Settings, load_settings
from bot.logging_setup import SecretRedactor

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
    assert "INVOICE_URL_SUCCESS: must be an https URL with a domain name" in str(caught.value)


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
    assert "PROVIDER: must be 'cryptoprocessing' or 'cryptocloud'" in result.stderr
    assert "Traceback" not in result.stderr
    assert TOKEN not in result.stderr + result.stdout


# --------------------------------------------------------------------------- the first run

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / ".env.example"
CLOUD = {"provider": "cryptocloud", "cryptocloud_api_key": "k", "cryptocloud_shop_id": "s"}


def _problems(**values: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        _load(**values)
    return caught.value.problems


def _example_with(values: dict[str, str]) -> str:
    """`.env.example` with the given lines filled in, as an operator would edit it."""
    lines, filled = [], set()
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        name = line.partition("=")[0]
        if not line.startswith("#") and "=" in line and name in values:
            line = f"{name}={values[name]}"
            filled.add(name)
        lines.append(line)
    assert filled == set(values), f"no line in .env.example for {set(values) - filled}"
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "required",
    [
        {"TELEGRAM_BOT_TOKEN": TOKEN, "PROVIDER": "cryptocloud", "CRYPTOCLOUD_API_KEY": "k",
         "CRYPTOCLOUD_SHOP_ID": "s"},
        {"TELEGRAM_BOT_TOKEN": TOKEN, "PROVIDER": "cryptoprocessing",
         "CRYPTOPROCESSING_API_KEY": "k", "CRYPTOPROCESSING_SECRET_KEY": "s",
         "INVOICE_URL_SUCCESS": "https://shop.example.com/paid",
         "INVOICE_URL_FAILED": "https://shop.example.com/failed"},
    ],
    ids=["cryptocloud", "cryptoprocessing"],
)  # fmt: skip
def test_the_example_file_with_only_the_required_values_loads(
    tmp_path: Path, required: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in os.environ:
        if name.lower() in Settings.model_fields:  # the developer's own settings stay out
            monkeypatch.delenv(name)
    env_file = tmp_path / ".env"
    env_file.write_text(_example_with(required), encoding="utf-8")
    settings = load_settings(_env_file=env_file)
    assert settings.provider.value == required["PROVIDER"]
    assert settings.telegram_webhook_secret is None and settings.notify_chat_id is None
    assert settings.public_base_url is None and settings.admin_ids == []
    assert settings.allow_test_payments is False


def test_the_example_file_without_values_names_what_is_required(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=env_file)
    assert [problem.partition(":")[0] for problem in caught.value.problems] == [
        "TELEGRAM_BOT_TOKEN",
        "PROVIDER",
    ]


def test_every_setting_is_documented_in_the_example_and_the_readme() -> None:
    example = EXAMPLE.read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        assert f"\n{name.upper()}=" in example, f"{name.upper()} is missing from .env.example"
        assert f"`{name.upper()}" in readme, f"{name.upper()} is missing from README.md"


def test_empty_values_mean_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "TELEGRAM_WEBHOOK_SECRET",
        "NOTIFY_CHAT_ID",
        "PUBLIC_BASE_URL",
        "ADMIN_IDS",
        "CRYPTOCLOUD_SECRET_KEY",
        "HTTP_PORT",
        "LOG_LEVEL",
        "ALLOW_TEST_PAYMENTS",
    ):
        monkeypatch.setenv(name, "")  # fmt: skip
    settings = _load(telegram_bot_token=TOKEN, **CLOUD)
    assert settings.telegram_webhook_secret is None and settings.notify_chat_id is None
    assert settings.public_base_url is None and settings.cryptocloud_secret_key is None
    assert settings.http_port == 8080 and settings.log_level == "INFO"
    blank = _load(telegram_bot_token=f"  {TOKEN} ", cryptocloud_secret_key="   ", **CLOUD)
    assert blank.cryptocloud_secret_key is None
    assert blank.telegram_bot_token.get_secret_value() == TOKEN


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("   ", "TELEGRAM_BOT_TOKEN: is blank"),
        ("not a token", "TELEGRAM_BOT_TOKEN: is not a bot token"),
        ("123456:with spaces-abcdefghijklmnopqrstuvwxyz", "TELEGRAM_BOT_TOKEN: is not a bot token"),
        ("bot" + TOKEN, "TELEGRAM_BOT_TOKEN: starts with 'bot'"),
    ],
)
def test_a_malformed_token_is_named_without_being_shown(token: str, expected: str) -> None:
    problems = _problems(telegram_bot_token=token, **CLOUD)
    assert len(problems) == 1 and problems[0].startswith(expected)
    if token.strip():
        assert token.strip() not in problems[0] and TOKEN not in problems[0]


def test_a_blank_key_of_the_active_provider_is_a_missing_key() -> None:
    problems = _problems(
        telegram_bot_token=TOKEN, provider="cryptoprocessing",
        cryptoprocessing_api_key="", cryptoprocessing_secret_key="  ",
        invoice_url_success="https://shop.example.com/ok", invoice_url_failed="https://shop.example.com/no",
    )  # fmt: skip
    assert problems == [
        "CRYPTOPROCESSING_API_KEY: is required with PROVIDER=cryptoprocessing but not set",
        "CRYPTOPROCESSING_SECRET_KEY: is required with PROVIDER=cryptoprocessing but not set",
    ]


def test_the_other_provider_s_settings_stay_optional() -> None:
    only_cloud = _load(
        telegram_bot_token=TOKEN, cryptoprocessing_api_key="", invoice_url_success="", **CLOUD
    )
    assert only_cloud.cryptoprocessing_api_key is None and only_cloud.invoice_url_success is None
    both = _load(
        telegram_bot_token=TOKEN, cryptoprocessing_api_key="cp", cryptoprocessing_secret_key="cs",
        invoice_url_success="http://10.0.0.1/not-checked-while-inactive", **CLOUD,
    )  # fmt: skip
    assert both.cryptoprocessing_api_key is not None and both.cryptocloud_api_key is not None


def test_ids_must_be_numbers_and_the_message_says_how_to_find_yours() -> None:
    problems = _problems(
        telegram_bot_token=TOKEN, admin_ids="@ada", merchant_ids="12, bob;34",
        notify_chat_id="@shop", **CLOUD,
    )  # fmt: skip
    assert len(problems) == 3
    admin, merchant, notify = problems
    assert admin.startswith("ADMIN_IDS: '@ada' is not a numeric Telegram user id")
    assert "/start" in admin and "Input should be" not in admin
    assert merchant.startswith("MERCHANT_IDS: 'bob' is not a numeric Telegram user id")
    assert notify.startswith("NOTIFY_CHAT_ID: must be a numeric Telegram chat id")
    ok = _load(telegram_bot_token=TOKEN, admin_ids="1 2,3;", notify_chat_id="-100123", **CLOUD)
    assert ok.admin_ids == [1, 2, 3] and ok.notify_chat_id == -100123


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("1", True), ("yes", True), ("false", False), ("0", False), ("", False)],
)
def test_allow_test_payments_is_a_boolean_that_defaults_to_false(
    value: str, expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOW_TEST_PAYMENTS", value)
    assert _load(telegram_bot_token=TOKEN, **CLOUD).allow_test_payments is expected


def test_allow_test_payments_refuses_anything_but_a_boolean(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALLOW_TEST_PAYMENTS", "maybe")
    problems = _problems(telegram_bot_token=TOKEN, **CLOUD)
    assert problems == ["ALLOW_TEST_PAYMENTS: must be true or false"]


def test_public_base_url_must_be_public_https_only_with_telegram_s_own_bot_api() -> None:
    problems = _problems(telegram_bot_token=TOKEN, public_base_url="http://localhost:8080", **CLOUD)
    assert len(problems) == 1 and problems[0].startswith(
        "PUBLIC_BASE_URL: must be an https URL with a domain name"
    )
    self_hosted = _load(
        telegram_bot_token=TOKEN, telegram_api_base_url="http://bot-api:8081/bot",
        public_base_url="http://192.168.1.20:8080/", **CLOUD,
    )  # fmt: skip
    assert self_hosted.public_base_url == "http://192.168.1.20:8080"
    assert not self_hosted.telegram_api_is_official and not self_hosted.public_base_url_is_public
    webhook = {"telegram_mode": "webhook", "telegram_webhook_secret": "s" * 20}
    problems = _problems(
        telegram_bot_token=TOKEN, public_base_url="https://bot.example.com:8080", **webhook, **CLOUD
    )
    assert problems[0].startswith("PUBLIC_BASE_URL: must use port 443, 80, 88 or 8443")
    assert _load(
        telegram_bot_token=TOKEN, telegram_api_base_url="http://bot-api:8081/bot",
        public_base_url="http://bot:8080", **webhook, **CLOUD,
    ).public_base_url == "http://bot:8080"  # fmt: skip


def test_webhook_mode_names_each_missing_setting() -> None:
    problems = _problems(telegram_bot_token=TOKEN, telegram_mode="webhook", **CLOUD)
    assert problems == [
        "TELEGRAM_WEBHOOK_SECRET: is required with TELEGRAM_MODE=webhook but not set",
        "PUBLIC_BASE_URL: is required with TELEGRAM_MODE=webhook but not set",
    ]


def test_database_url_needs_an_async_driver() -> None:
    problems = _problems(telegram_bot_token=TOKEN, database_url="sqlite:///bot.db", **CLOUD)
    assert problems[0].startswith("DATABASE_URL: needs an async driver")
    assert _problems(telegram_bot_token=TOKEN, database_url="nonsense", **CLOUD)[0].startswith(
        "DATABASE_URL: is not a database URL"
    )


def test_secrets_are_masked_in_every_form_they_could_take() -> None:
    settings = _load(
        telegram_bot_token=TOKEN, cryptocloud_secret_key="cc-secret-value",
        database_url="postgresql+asyncpg://bot:db-password-1@db/bot",
        data_key="a-data-key-of-32-characters-or-more", **CLOUD,
    )  # fmt: skip
    redactor = SecretRedactor(settings.secret_values())
    head, _, tail = TOKEN.partition(":")
    text = redactor.mask(
        f"url=/bot{TOKEN}/getMe encoded=/bot{head}%3A{tail}/getMe tail={tail} "
        "other=/bot987654321:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawq/getMe "
        "key=cc-secret-value password=db-password-1 data=a-data-key-of-32-characters-or-more"
    )
    for secret in (
        TOKEN,
        tail,
        "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawq",
        "cc-secret-value",
        "db-password-1",
        "a-data-key-of-32-characters-or-more",
    ):
        assert secret not in text  # fmt: skip


def test_an_env_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_bytes(b"TELEGRAM_BOT_TOKEN=\xff\xfe\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=env_file)
    assert caught.value.problems == [".env: is not UTF-8 text; save it as UTF-8"]


def test_a_data_key_is_required_with_postgresql_and_must_be_long() -> None:
    postgres = "postgresql+asyncpg://bot@db/bot"
    with pytest.raises(ConfigError) as caught:
        _load(telegram_bot_token=TOKEN, database_url=postgres, **CLOUD)
    assert caught.value.problems[0].startswith("DATA_KEY: is required with a PostgreSQL")
    with pytest.raises(ConfigError) as caught:
        _load(telegram_bot_token=TOKEN, data_key="short", **CLOUD)
    assert caught.value.problems == [
        "DATA_KEY: must be at least 32 characters of random text (make one with: "
        'python -c "import secrets; print(secrets.token_urlsafe(32))")'
    ]
    key = "k" * 32
    assert _load(telegram_bot_token=TOKEN, database_url=postgres, data_key=key, **CLOUD).data_key
    assert _load(telegram_bot_token=TOKEN, **CLOUD).data_key is None  # SQLite: generated


def test_retention_is_off_unless_set() -> None:
    assert _load(telegram_bot_token=TOKEN, **CLOUD).personal_data_retention_days is None
    assert _load(telegram_bot_token=TOKEN, personal_data_retention_days="", **CLOUD)
    assert (
        _load(telegram_bot_token=TOKEN, personal_data_retention_days="90", **CLOUD)
    ).personal_data_retention_days == 90
