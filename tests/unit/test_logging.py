"""Tokens and keys stay out of logs even when a library would print them."""

from __future__ import annotations

import logging

from bot.logging_setup import SecretRedactor, quiet_noisy_loggers


def _format(record: logging.LogRecord, redactor: SecretRedactor) -> str:
    redactor.filter(record)
    return record.getMessage()


def test_known_secrets_and_token_shaped_strings_are_masked() -> None:
    redactor = SecretRedactor(["cp-secret-key-value"])
    record = logging.LogRecord(
        "httpx", logging.INFO, __file__, 1,
        "POST https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage"
        " key=%s",
        ("cp-secret-key-value",), None,
    )  # fmt: skip
    text = _format(record, redactor)
    assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" not in text and "cp-secret-key-value" not in text
    assert "/sendMessage" in text


def test_http_client_request_lines_are_not_logged_at_info() -> None:
    quiet_noisy_loggers()
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert not logging.getLogger("telegram.ext.Application").isEnabledFor(logging.DEBUG)


def test_the_suite_wide_log_capture_sees_the_bot_s_own_lines(log_capture: object) -> None:
    logging.getLogger("bot.services.invoices").warning("probe line")
    assert any("probe line" in line for line in log_capture.lines)  # type: ignore[attr-defined]
