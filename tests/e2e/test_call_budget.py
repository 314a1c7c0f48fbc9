"""Bot API calls and merchant inputs per invoice stay within their budgets.

The flows and the targets are those of `bench/bot_api_calls.py` (`make bench` prints the
same figures, and the bot under load): each input waits for the bot to go quiet, and calls
are counted from the first command up to the message to forward, start-up calls excluded.
"""

from __future__ import annotations

from bench.bot_api_calls import (
    CRYPTOCLOUD,
    CRYPTOPROCESSING_FLOWS,
    GUIDED,
    ONELINE_NEW,
    ONELINE_REPEAT,
    FlowResult,
    measure,
)
from tests.conftest import MERCHANT_ID, BotStarter
from tests.fakes.cryptocloud_api import FakeCryptoCloud
from tests.fakes.cryptoprocessing_api import FakeCryptoProcessing
from tests.fakes.telegram_api import FakeTelegram

# Every press is answered exactly once; a message or an edit shows the next question, and
# Confirm costs its answer, the card (an edit of the preview) and the message to forward.
CONVERSATION_METHODS = {"sendMessage", "editMessageText", "answerCallbackQuery"}


def _check(result: FlowResult) -> None:
    where = f"{result.flow.key} ({result.flow.name}): calls {dict(result.calls)}"
    assert not result.missed(), f"{where}: {result.missed()}"
    assert result.calls["answerCallbackQuery"] == result.presses, where
    assert set(result.calls) <= CONVERSATION_METHODS, where


async def test_cryptoprocessing_flows_stay_within_their_budgets(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID, "Mira")
    guided, oneline_new, repeat = [
        await measure(telegram, merchant, flow) for flow in CRYPTOPROCESSING_FLOWS
    ]
    for result in (guided, oneline_new, repeat):
        _check(result)

    # The targets, spelled out (the bench exits non-zero on the same).
    assert guided.flow is GUIDED and guided.total <= 14
    assert guided.inputs == 10  # /new, amount, currency, title, kind, 4 details, Confirm
    assert oneline_new.flow is ONELINE_NEW and oneline_new.inputs <= 7
    assert repeat.flow is ONELINE_REPEAT and repeat.total <= 6 and repeat.inputs == 3
    assert repeat.presses == 2  # the customer's button and Confirm
    assert cryptoprocessing.create_calls == 3


async def test_cryptocloud_one_line_invoice_is_one_message_and_confirm(
    telegram: FakeTelegram, cryptocloud: FakeCryptoCloud, start_bot: BotStarter
) -> None:
    await start_bot(cryptocloud)
    result = await measure(telegram, telegram.user(MERCHANT_ID, "Mira"), CRYPTOCLOUD)
    _check(result)
    assert result.inputs == 2 and result.total <= 4
    assert dict(result.calls) == {"sendMessage": 2, "editMessageText": 1, "answerCallbackQuery": 1}
