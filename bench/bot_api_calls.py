"""Benchmark: Telegram Bot API calls per invoice, and the bot under 50 merchants at once.

Run with `make bench` or `.venv/bin/python -m bench.bot_api_calls`. Starts the real bot
against the fake Telegram and provider servers on loopback and

1. walks four invoice flows, one input at a time (each input waits until the bot has gone
   quiet), counting the Bot API calls by method from the first command up to and including
   the message to forward, and the merchant's inputs (messages plus button presses);
2. has 50 merchants create invoices for a known customer at once (`/new 150 EUR Consulting`
   → the customer's button → Confirm) against one bot on SQLite: invoices/s, input → reply
   latency and calls per invoice.

Prints a table and exits non-zero when a target is missed, so it doubles as a check.
`tests/e2e/test_call_budget.py` runs the same flows (imported from here) under pytest.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bot.app import BotRuntime, build_runtime
from bot.domain import NaturalPerson
from bot.services.conversation import customer_label
from tests.conftest import MERCHANT_ID, settings_for
from tests.fakes.cryptocloud_api import FakeCryptoCloud
from tests.fakes.cryptoprocessing_api import FakeCryptoProcessing
from tests.fakes.telegram_api import QUIET_PERIOD_SECONDS, BotMessage, Call, FakeTelegram, FakeUser

# Calls a bot makes for itself (start-up, polling, menus), never because a merchant typed.
NOT_CAUSED_BY_INPUT = frozenset(
    {
        "getUpdates", "getMe", "deleteWebhook", "setWebhook", "getWebhookInfo",
        "setMyCommands", "deleteMyCommands", "getMyCommands", "close", "logOut",
    }
)  # fmt: skip

MERCHANTS = 50
INVOICES_PER_MERCHANT = 2
STEP_TIMEOUT = 30.0

# ---------------------------------------------------------------------------- call log


Key = int | str  # a chat id, or a callback query id


class CallLog(list[Call]):
    """Stands in for `FakeTelegram.calls`: the same list, plus when the last call for each
    chat (and for each pressed button) arrived, and a wake-up for whoever waits on that
    chat. The fake serves in this event loop, so a woken waiter sees the call's effect."""

    def __init__(self) -> None:
        super().__init__()
        self.last: dict[Key, float] = {}
        self._waiting: dict[Key, list[asyncio.Event]] = {}

    def append(self, call: Call, /) -> None:
        super().append(call)
        now = time.perf_counter()
        for key in (call.as_int("chat_id"), call.as_str("callback_query_id")):
            if key is not None:
                self.last[key] = now
                for event in self._waiting.pop(key, []):
                    event.set()

    async def until(
        self,
        keys: tuple[Key, ...],
        predicate: Callable[[], Any],
        timeout: float = STEP_TIMEOUT,  # noqa: ASYNC109
    ) -> Any:
        """Wait until `predicate()` is truthy, re-checked after each call for one of `keys`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (result := predicate()):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"the bot did not answer within {timeout}s")
            event = asyncio.Event()
            for key in keys:
                self._waiting.setdefault(key, []).append(event)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)
        return result


def by_method(calls: list[Call]) -> Counter[str]:
    """Calls caused by the merchant's inputs, counted by Bot API method."""
    return Counter(call.method for call in calls if call.method not in NOT_CAUSED_BY_INPUT)


async def quiet(telegram: FakeTelegram, period: float = QUIET_PERIOD_SECONDS) -> None:
    """Wait until the bot has made no call (other than polling) for `period` seconds."""
    loop = asyncio.get_running_loop()

    def made() -> int:
        return sum(call.method != "getUpdates" for call in telegram.calls)

    seen, since = made(), loop.time()
    while loop.time() - since < period:
        await asyncio.sleep(0.01)
        if (now := made()) != seen:
            seen, since = now, loop.time()


# ---------------------------------------------------------------------------- the flows


@dataclass(frozen=True)
class Flow:
    key: str
    name: str
    walk: Callable[[Merchant], Awaitable[BotMessage]]  # the first command → the preview
    max_calls: int | None = None
    max_inputs: int | None = None  # counted as the issue does: the first command included


@dataclass
class FlowResult:
    flow: Flow
    calls: Counter[str]
    inputs: int  # messages + button presses, the first command included
    presses: int
    forward: BotMessage

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def missed(self) -> list[str]:
        flow, misses = self.flow, []
        if flow.max_calls is not None and self.total > flow.max_calls:
            misses.append(f"{flow.key}: {self.total} Bot API calls > {flow.max_calls}")
        if flow.max_inputs is not None and self.inputs > flow.max_inputs:
            misses.append(f"{flow.key}: {self.inputs} inputs > {flow.max_inputs}")
        return misses


class Merchant:
    """A merchant that counts their own inputs; each waits for the bot to go quiet."""

    def __init__(self, user: FakeUser) -> None:
        self.user = user
        self.inputs = 0
        self.presses = 0

    async def reply(self, text: str) -> BotMessage:
        self.inputs += 1
        return await self.user.reply(text)

    async def click(self, message: BotMessage, label: str) -> BotMessage:
        self.inputs += 1
        self.presses += 1
        return await self.user.click(message, label)


FRIEDRICH = ("Friedrich", "Müller", "17.08.1995", "friedrich@example.com")
ADA = ("Ada", "Lovelace", "1990-12-10", "payer@example.org")


async def _new_natural_person(
    m: Merchant, question: BotMessage, person: tuple[str, ...]
) -> BotMessage:
    await m.click(question, "Natural person")
    reply = question
    for answer in person:
        reply = await m.reply(answer)
    return reply


async def guided_new_person(m: Merchant) -> BotMessage:
    await m.reply("/new")
    question = await m.reply("150")
    question = await m.click(question, "EUR")
    question = await m.reply("Consulting")
    return await _new_natural_person(m, question, FRIEDRICH)


async def oneline_new_person(m: Merchant) -> BotMessage:
    question = await m.reply("/new 150 EUR Consulting")
    return await _new_natural_person(m, question, ADA)


async def oneline_repeat_customer(m: Merchant) -> BotMessage:
    question = await m.reply("/new 150 EUR Consulting")
    return await m.click(question, FRIEDRICH[0])  # made by the guided flow


async def cryptocloud_oneline(m: Merchant) -> BotMessage:
    return await m.reply("/new 150 USD Lamp")


GUIDED = Flow("a", "guided, new natural person", guided_new_person, max_calls=14)
ONELINE_NEW = Flow("b", "one-line, new natural person", oneline_new_person, max_inputs=7)
ONELINE_REPEAT = Flow(
    "c", "one-line, repeat customer", oneline_repeat_customer, max_calls=6, max_inputs=3
)
# No target was set for CryptoCloud: its bounds are the floor (one line, then Confirm).
CRYPTOCLOUD = Flow("d", "CryptoCloud one-line", cryptocloud_oneline, max_calls=4, max_inputs=2)
# In this order, on one bot: c picks the customer a made.
CRYPTOPROCESSING_FLOWS = (GUIDED, ONELINE_NEW, ONELINE_REPEAT)


def forwardable(telegram: FakeTelegram, preview: BotMessage) -> BotMessage | None:
    """The message to forward: sent after the preview (now the card), with its pay link."""
    messages = telegram.chat_messages(preview.chat_id)
    card = next(m for m in messages if m.message_id == preview.message_id)
    urls = [button.url for button in card.buttons() if button.url]
    for message in messages:
        if message.message_id > card.message_id and urls and urls[0] in message.text:
            return message
    return None


async def measure(telegram: FakeTelegram, user: FakeUser, flow: Flow) -> FlowResult:
    """Walk `flow` from its first command to the message to forward, counting calls."""
    await quiet(telegram)  # nothing of start-up or of an earlier flow is counted
    start = len(telegram.calls)
    merchant = Merchant(user)
    preview = await flow.walk(merchant)
    await merchant.click(preview, "Confirm")
    forward = await telegram.wait_for(lambda: forwardable(telegram, preview))
    await quiet(telegram)  # and whatever the bot still does for this invoice
    return FlowResult(
        flow, by_method(telegram.calls[start:]), merchant.inputs, merchant.presses, forward
    )


# ---------------------------------------------------------------------------- under load


@dataclass
class LoadResult:
    merchants: int
    invoices: int
    seconds: float
    latencies: dict[str, list[float]]  # step → seconds from input to the bot's reply
    calls: Counter[str]
    statements: int  # SQL statements the bot ran
    commits: int
    cpu_seconds: float  # of this process: the bot, the fakes and the merchants share one core
    provider_invoices: int = 0  # created at the fake provider (must equal `invoices`)


class LoadMerchant:
    """Acts as soon as the bot's reply lands (no think time), timing each input → reply:
    from queueing the update to the last Bot API call of the reply."""

    def __init__(self, telegram: FakeTelegram, log: CallLog, user: FakeUser) -> None:
        self.telegram, self.log, self.user = telegram, log, user

    def _newest(self) -> BotMessage | None:
        messages = self.telegram.chat_messages(self.user.chat_id)
        return messages[-1] if messages else None

    async def say(self, text: str, button: str) -> tuple[BotMessage, float]:
        """Type `text`; the reply is a new message offering `button`."""
        newest = self._newest()
        last_id = newest.message_id if newest else 0
        sent = time.perf_counter()
        await self.user.send(text)

        def replied() -> BotMessage | None:
            message = self._newest()
            if message is None or message.message_id <= last_id:
                return None
            return message if any(button in b.text for b in message.buttons()) else None

        chat = self.user.chat_id
        message: BotMessage = await self.log.until((chat,), replied)
        return message, self.log.last[chat] - sent

    async def tap(
        self, message: BotMessage, label: str, done: Callable[[], BotMessage | None]
    ) -> tuple[BotMessage, float]:
        """Press `label`; the reply is complete once the press is answered and `done()`."""
        sent = time.perf_counter()
        update_id = await self.user.press(message.button(label), message)
        query = str(self.telegram.update(update_id)["callback_query"]["id"])
        chat = self.user.chat_id
        result: BotMessage = await self.log.until(
            (chat, query), lambda: query in self.log.last and done()
        )
        return result, max(self.log.last[chat], self.log.last[query]) - sent

    def _edited(self, message: BotMessage) -> Callable[[], BotMessage | None]:
        def check() -> BotMessage | None:
            for current in self.telegram.chat_messages(message.chat_id):
                if current.message_id == message.message_id and current.edits > message.edits:
                    return current
            return None

        return check

    async def repeat_invoice(self, label: str, latencies: dict[str, list[float]]) -> None:
        question, seconds = await self.say("/new 150 EUR Consulting", label)
        latencies[STEP_NEW].append(seconds)
        preview, seconds = await self.tap(question, label, self._edited(question))
        latencies[STEP_CUSTOMER].append(seconds)
        _, seconds = await self.tap(preview, "Confirm", lambda: forwardable(self.telegram, preview))
        latencies[STEP_CONFIRM].append(seconds)


STEP_NEW, STEP_CUSTOMER, STEP_CONFIRM = "/new 150 EUR Consulting", "customer button", "Confirm"
STEP_LABELS = {STEP_CONFIRM: "Confirm → msg to forward"}


async def under_load(
    telegram: FakeTelegram, log: CallLog, runtime: BotRuntime, merchant_ids: list[int]
) -> LoadResult:
    customers = runtime.services.customers
    labels = {}
    for i, merchant_id in enumerate(merchant_ids):  # set-up, not measured
        person = NaturalPerson("Ada", f"Lovelace {i}", dt.date(1990, 12, 10))
        customer = await customers.find_or_create(merchant_id, person, "payer@example.org")
        labels[merchant_id] = customer_label(customer)
    merchants = [
        LoadMerchant(telegram, log, telegram.user(merchant_id, f"M{merchant_id}"))
        for merchant_id in merchant_ids
    ]
    latencies: dict[str, list[float]] = {STEP_NEW: [], STEP_CUSTOMER: [], STEP_CONFIRM: []}

    async def one(merchant: LoadMerchant) -> None:
        for _ in range(INVOICES_PER_MERCHANT):
            await merchant.repeat_invoice(labels[merchant.user.id], latencies)

    sql = Counter[str]()

    def statement(*_: Any) -> None:
        sql["statements"] += 1

    def commit(*_: Any) -> None:
        sql["commits"] += 1

    await quiet(telegram)
    engine = runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    start, started, cpu = len(log), time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(merchant) for merchant in merchants))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    await quiet(telegram)
    event.remove(engine, "before_cursor_execute", statement)
    event.remove(engine, "commit", commit)
    invoices = len(merchants) * INVOICES_PER_MERCHANT
    return LoadResult(
        len(merchants), invoices, seconds, latencies, by_method(log[start:]),
        sql["statements"], sql["commits"], cpu,
    )  # fmt: skip


# ---------------------------------------------------------------------------- running it


async def _with_bot(
    workdir: Path,
    provider: FakeCryptoProcessing | FakeCryptoCloud,
    body: Callable[[FakeTelegram, CallLog, BotRuntime], Awaitable[None]],
    **overrides: Any,
) -> None:
    async with FakeTelegram() as telegram:
        log = CallLog()
        telegram.calls = log
        runtime = build_runtime(settings_for(workdir, telegram, provider, **overrides))
        await runtime.start(poll_timeout=1)
        try:
            await body(telegram, log, runtime)
        finally:
            await runtime.stop()


async def run(workdir: Path) -> tuple[list[FlowResult], LoadResult]:
    results: list[FlowResult] = []

    async def cryptoprocessing_flows(telegram: FakeTelegram, log: CallLog, _: BotRuntime) -> None:
        merchant = telegram.user(MERCHANT_ID, "Mira")
        for flow in CRYPTOPROCESSING_FLOWS:
            results.append(await measure(telegram, merchant, flow))

    async def cryptocloud_flow(telegram: FakeTelegram, log: CallLog, _: BotRuntime) -> None:
        results.append(await measure(telegram, telegram.user(MERCHANT_ID, "Mira"), CRYPTOCLOUD))

    load: list[LoadResult] = []
    merchant_ids = list(range(20_001, 20_001 + MERCHANTS))

    async def fifty_merchants(telegram: FakeTelegram, log: CallLog, runtime: BotRuntime) -> None:
        load.append(await under_load(telegram, log, runtime, merchant_ids))

    async with FakeCryptoProcessing() as cryptoprocessing:
        await _with_bot(workdir / "flows", cryptoprocessing, cryptoprocessing_flows)
    async with FakeCryptoCloud(secret_key="bench-cryptocloud-secret-" + "0" * 40) as cryptocloud:
        cryptocloud.test_mode = False
        await _with_bot(workdir / "cryptocloud", cryptocloud, cryptocloud_flow)
    async with FakeCryptoProcessing() as cryptoprocessing:
        await _with_bot(
            workdir / "load", cryptoprocessing, fifty_merchants,
            merchant_ids=",".join(map(str, merchant_ids)),
        )  # fmt: skip
        load[0].provider_invoices = len(cryptoprocessing.invoices)
    return results, load[0]


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile: p99 of 300 values is the 297th smallest."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(share * len(ordered))) - 1]


METHODS = ("sendMessage", "editMessageText", "answerCallbackQuery", "editMessageReplyMarkup")
SHORT = {"sendMessage": "send", "editMessageText": "editText", "answerCallbackQuery": "answerCbq",
         "editMessageReplyMarkup": "editMarkup"}  # fmt: skip


def _target(flow: Flow) -> str:
    parts = []
    if flow.max_calls is not None:
        parts.append(f"≤{flow.max_calls} calls")
    if flow.max_inputs is not None:
        parts.append(f"≤{flow.max_inputs} inputs")
    return ", ".join(parts)


def report(results: list[FlowResult], load: LoadResult) -> list[str]:
    """Print the figures; return the targets missed."""
    missed: list[str] = []
    methods = [*METHODS, *sorted({m for r in results for m in r.calls} - set(METHODS))]
    print("Bot API calls per invoice, first command → message to forward (bot quiet after each")
    print("input; start-up and getUpdates not counted). Inputs = messages + button presses.")
    print()
    head = f"{'flow':<34}{'inputs':>7}{'after 1st':>10}"
    head += "".join(f"{SHORT.get(m, m):>11}" for m in methods) + f"{'total':>7}   target"
    print(head)
    print("-" * (len(head) + 16))
    for r in results:
        row = f"{r.flow.key} {r.flow.name:<32}{r.inputs:>7}{r.inputs - 1:>10}"
        row += "".join(f"{r.calls[m]:>11}" for m in methods) + f"{r.total:>7}   "
        misses = r.missed()
        missed += misses
        print(row + f"{_target(r.flow)} {'MISSED' if misses else 'ok'}")
    print()
    print("a = /new → amount → currency button → title → Natural person → first → last → birth")
    print("    → email → Confirm;  b = /new 150 EUR Consulting → Natural person → first → last →")
    print("    birth → email → Confirm;  c = /new 150 EUR Consulting → customer → Confirm;")
    print("d = /new 150 USD Lamp → Confirm (CryptoCloud). Flows a–c on CryptoProcessing.")
    print()

    per_invoice = sum(load.calls.values()) / load.invoices
    chat_calls = sum(n for m, n in load.calls.items() if m != "answerCallbackQuery")
    every = [s for values in load.latencies.values() for s in values]
    print(f"Under load: {load.merchants} merchants at once, {INVOICES_PER_MERCHANT} invoices each, "
          "flow c (customers made first), one bot, SQLite")  # fmt: skip
    print(f"  invoices              {load.invoices:8d} in {load.seconds:.1f} s")
    print(f"  throughput            {load.invoices / load.seconds:8.1f} invoices/s")
    print(f"  CPU busy              {load.cpu_seconds / load.seconds:8.0%}   (bot, fakes and "
          "merchants share this process)")  # fmt: skip
    print(f"  chat-bound calls      {chat_calls / load.seconds:8.1f} /s (send/edit; PTB's "
          "AIORateLimiter allows 30/s)")  # fmt: skip
    print(f"  {'step latency':<26}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}   (input → reply done)")
    for step, values in [("all inputs", every), *load.latencies.items()]:
        print(f"    {STEP_LABELS.get(step, step):<24}{statistics.median(values) * 1e3:8.0f}"
              f"{percentile(values, 0.99) * 1e3:8.0f}{max(values) * 1e3:8.0f}")  # fmt: skip
    breakdown = ", ".join(f"{m} {n / load.invoices:.2f}" for m, n in sorted(load.calls.items()))
    print(f"  Bot API calls/invoice {per_invoice:8.2f}   ({breakdown})")
    print(f"  SQL per invoice       {load.statements / load.invoices:8.1f} statements, "
          f"{load.commits / load.invoices:.1f} commits (one SQLite connection)")  # fmt: skip
    if load.provider_invoices != load.invoices:
        missed.append(f"load: {load.provider_invoices} provider invoices for {load.invoices}")
    if ONELINE_REPEAT.max_calls is not None and per_invoice > ONELINE_REPEAT.max_calls:
        missed.append(f"load: {per_invoice:.2f} calls/invoice > {ONELINE_REPEAT.max_calls}")
    print()
    print("MISSED: " + "; ".join(missed) if missed else "all targets met")
    return missed


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("flows", "cryptocloud", "load"):
            (Path(tmp) / name).mkdir()
        results, load = asyncio.run(run(Path(tmp)))
    sys.exit(1 if report(results, load) else 0)


if __name__ == "__main__":
    main()
