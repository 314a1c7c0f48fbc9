"""Crash test: SIGKILL the real bot at random moments, restart it, check that nothing was lost.

The harness runs the fake Telegram and CryptoProcessing servers in this process and the bot as
a real subprocess configured through environment variables, as an operator runs it. Simulated
merchants compose invoices concurrently (/new → amount → currency → title → customer →
preview → Confirm) while the harness posts signed payment callbacks to the bot's HTTP port,
and some creates get injected faults (lost answers, 500s, garbled answers). At random moments,
or right after a chosen event (a bot message, an update delivered, a create request reaching
the provider, a callback sent, a quiet moment), the bot gets SIGKILL and is restarted at once.

What the harness saw acknowledged before a kill must survive it:

- an invoice card that showed a pay link: the invoice is stored with that link, and the
  provider holds exactly what the merchant typed;
- a callback the bot answered 200: its status is stored, and statuses never move backwards;
- an answer the bot followed with the next question: after the restart the merchant's next
  answer is taken as that next step (the conversation resumes; it neither restarts nor
  repeats an earlier question).

At the end, after a final restart and a settling period (polled, with deadlines), the
SQLite file passes `PRAGMA integrity_check`, no attempt is left 'creating' or 'unknown', no
order (draft) has more than one invoice still payable at the provider, every invoice created
at the provider has reached its merchant's chat as a card with the pay link, the provider got
exactly what the merchant typed, and the bot's log holds no secret and no personal data.

Run: `python -m bench.crash --kills 100 --seed 1` (or `make crash`); it prints the figures
and exits 1 when an invariant fails, keeping bot.log, the database, report.txt (every
violation) and transcript.txt (every step, reaction and kill, timed) in a directory it
names. With `--spawn fork` (the default) every bot process is forked from a template process
that imported the bot once, so a restart costs the bot's own start-up rather than two
seconds of imports; `--spawn exec` runs `python -m bot` each time. The seed fixes the
merchants' choices and the kill triggers; the moments themselves follow the machine's timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import html
import itertools
import json
import logging
import os
import random
import re
import signal
import socket
import sqlite3
import statistics
import string
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import httpx
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from bot.domain import PaymentStatus
from bot.i18n import Catalog
from tests.e2e.payments import cp_callback
from tests.fakes.cryptoprocessing_api import FakeCryptoProcessing
from tests.fakes.telegram_api import BotMessage, Button, Call, FakeTelegram, FakeUser

ROOT = Path(__file__).resolve().parent.parent
ADMIN_ID = 4999
FIRST_MERCHANT_ID = 4101
PROVIDER_TIMEOUT_SECONDS = 2.0
POLL_SECONDS = 0.015
QUIET_SECONDS = 0.15
NO_REPLY_SECONDS = 15.0
"""An update the running bot took and never answered in this long counts as unanswered."""

PHASES = ("conversation", "create in flight", "callback write", "idle")
TRIGGERS = ("random", "bot message", "update delivered", "create request", "callback", "idle")
TRIGGER_WEIGHTS = (30, 25, 10, 18, 12, 5)

# What a merchant types: a few payers per merchant, so returning customers are offered too.
PAYERS = (
    ("Ottilie", "Brennecke", "1987-04-23", "ottilie.brennecke@example.net"),
    ("Zebulon", "Marchetti", "1979-11-02", "z.marchetti@example.net"),
    ("Henrike", "Vasquez", "1992-06-30", "henrike.vasquez@example.net"),
    ("Leopold", "Okonkwo", "1968-01-15", "leo.okonkwo@example.net"),
    ("Rosalind", "Achterberg", "1984-09-09", "r.achterberg@example.net"),
    ("Casimir", "Lindqvist", "1975-03-27", "casimir.l@example.net"),
)
AMOUNTS = ("12.50", "100", "7.25", "1500", "33.30", "249.99")
CURRENCIES = ("EUR", "USD")

# Callback plans: the statuses a provider reports for one invoice, in order.
PLANS: tuple[tuple[tuple[str, ...], int], ...] = (
    (("pending", "processing", "confirmed"), 40),
    (("pending", "confirmed"), 20),
    (("pending",), 20),
    ((), 20),
)
# CryptoProcessing's word → the bot's status (what an acknowledged callback must leave).
CALLBACK_STATUS = {"pending": "pending", "processing": "processing", "confirmed": "paid"}
FAKE_RANK = {"created": 0, "pending": 1, "processing": 2, "confirmed": 4, "failed": 4}

Kind = str
QUESTION_STEPS = (
    "amount", "currency", "title", "customer", "sender-type", "first-name", "last-name",
    "birth-date", "legal-name", "country", "email",
)  # fmt: skip
TERMINAL = frozenset(
    {*QUESTION_STEPS, "preview", "card", "closed", "changed", "internal-error", "final-edit"}
)


def rank_of(status: str | None) -> int:
    try:
        return PaymentStatus(status or "").rank
    except ValueError:
        return -1


# --------------------------------------------------------------------------- configuration


@dataclass
class CrashConfig:
    kills: int = 100
    seed: int = 1
    merchants: int = 6
    spawn: Literal["fork", "exec"] = "fork"
    fault_rate: float = 0.3
    """Share of Confirm presses preceded by an injected provider fault."""
    max_seconds: float = 900.0
    """Stop killing (and fail) when the kill phase runs longer than this."""
    settle_seconds: float = 100.0
    """At most this long for the end: orders finished, callbacks delivered, attempts settled."""
    workdir: Path | None = None
    keep: bool = False
    progress: Callable[[str], None] | None = None


# --------------------------------------------------------------------------- report


@dataclass
class Violation:
    invariant: str
    detail: str


@dataclass
class CrashReport:
    config: CrashConfig
    kills: int = 0
    kills_by_phase: Counter[str] = field(default_factory=Counter)
    kills_by_trigger: Counter[str] = field(default_factory=Counter)
    restarts: int = 0
    restart_seconds: list[float] = field(default_factory=list)
    first_start_seconds: float = 0.0
    conversations_started: int = 0
    conversations_completed: int = 0
    conversations_closed: int = 0
    conversations_abandoned: int = 0
    invoices_acknowledged: int = 0
    invoices_created: int = 0
    attempts_by_outcome: Counter[str] = field(default_factory=Counter)
    provider_invoices: int = 0
    provider_creates: int = 0
    faults_injected: Counter[str] = field(default_factory=Counter)
    retries_pressed: int = 0
    steps: int = 0
    resume_checks: int = 0
    resume_failures: int = 0
    flow_deviations: int = 0
    bot_errors: list[str] = field(default_factory=list)
    updates_lost: int = 0
    no_reply: int = 0
    nudges: int = 0
    callbacks_sent: int = 0
    callbacks_acknowledged: int = 0
    callbacks_failed: int = 0
    stale_callbacks_acknowledged: int = 0
    cards_behind: list[str] = field(default_factory=list)
    shown_late: int = 0
    kill_seconds: float = 0.0
    settle_seconds: float = 0.0
    total_seconds: float = 0.0
    checked: dict[str, int] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    log_path: Path | None = None

    INVARIANTS = (
        "kills done",
        "integrity_check ok",
        "acknowledged invoices present",
        "invoices carry what was typed",
        "acknowledged callbacks stored",
        "statuses never backwards",
        "at most one payable invoice per order",
        "attempts settled",
        "conversations resume",
        "created invoices reach the merchant",
        "no personal data or secrets in logs",
    )

    def failed(self, invariant: str) -> list[Violation]:
        return [v for v in self.violations if v.invariant == invariant]

    @property
    def ok(self) -> bool:
        return not self.violations

    def text(self) -> str:
        c = self.config
        restarts = self.restart_seconds
        lines = [
            f"crash test: seed {c.seed}, {c.merchants} merchants, spawn={c.spawn} (again: "
            f"python -m bench.crash --kills {c.kills} --seed {c.seed} --merchants {c.merchants} "
            f"--spawn {c.spawn}; kill moments follow the machine's timing, so a rerun hits "
            "similar, not identical, moments)",
            f"kills done             {self.kills:6d} of {c.kills} requested",
            "kills by phase         "
            + ", ".join(f"{p} {self.kills_by_phase.get(p, 0)}" for p in PHASES),
            "kills by trigger       "
            + ", ".join(f"{t} {self.kills_by_trigger.get(t, 0)}" for t in TRIGGERS),
            f"restarts               {self.restarts:6d}",
        ]
        if restarts:
            lines.append(
                f"restart-to-ready       avg {statistics.mean(restarts):.2f} s, "
                f"p50 {statistics.median(restarts):.2f} s, max {max(restarts):.2f} s "
                f"(kill → /healthz 200; first start {self.first_start_seconds:.2f} s)"
            )
        lines += [
            f"conversations          {self.conversations_started} started, "
            f"{self.conversations_completed} completed with a pay link, "
            f"{self.conversations_closed} closed by the bot, "
            f"{self.conversations_abandoned} abandoned by the merchant",
            f"merchant steps         {self.steps}; {self.updates_lost} updates lost with a "
            f"killed bot and sent again, {self.nudges} nudges after a half-handled press, "
            f"{self.no_reply} unanswered",
            f"resumes                {self.resume_checks} answers sent after a kill, "
            f"{self.resume_checks - self.resume_failures} taken as the step asked; "
            f"{self.flow_deviations} later answers gone wrong in the aftermath of a kill",
            f"invoices               {self.invoices_acknowledged} acknowledged (pay link seen), "
            f"{self.invoices_created} created in the database; attempts "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.attempts_by_outcome.items())),
            f"provider               {self.provider_creates} create requests, "
            f"{self.provider_invoices} invoices",
            "faults injected        "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.faults_injected.items())) or "none")
            + f"; Retry pressed {self.retries_pressed} times",
            f"callbacks              {self.callbacks_sent} sent, "
            f"{self.callbacks_acknowledged} acknowledged (200; {self.stale_callbacks_acknowledged}"
            f" stale or repeated), {self.callbacks_failed} failed with the bot down or killed",
            f"time                   {self.total_seconds:.1f} s total: kill phase "
            f"{self.kill_seconds:.1f} s, settling {self.settle_seconds:.1f} s",
            "invariants:",
        ]
        for name in self.INVARIANTS:
            failures = self.failed(name)
            checked = self.checked.get(name)
            suffix = f" ({checked} checked)" if checked is not None else ""
            lines.append(f"  {'ok  ' if not failures else 'FAIL'} {name}{suffix}")
            lines.extend(f"       - {v.detail}" for v in failures[:8])
            if len(failures) > 8:
                lines.append(f"       … and {len(failures) - 8} more")
        if self.shown_late:
            lines.append(
                f"note: {self.shown_late} invoice card(s) got their pay link only after the "
                "merchant had moved on (drawn by the restarted bot)"
            )
        if self.bot_errors:
            causes = Counter(self.bot_errors).most_common(5)
            lines.append(
                f"note: the bot logged {len(self.bot_errors)} error(s): "
                + "; ".join(f"{count}x {text}" for text, count in causes)
            )
        if self.cards_behind:
            lines.append(
                f"note: {len(self.cards_behind)} card(s) not showing their invoice's status at "
                "the end: " + "; ".join(self.cards_behind[:5])
            )
        lines.extend(f"note: {note}" for note in self.notes[:20])
        if self.log_path is not None:
            lines.append(f"bot log: {self.log_path}")
        return "\n".join(lines)


class HarnessError(RuntimeError):
    """The harness itself cannot go on (the bot does not start)."""


# --------------------------------------------------------------------------- events


class Events:
    """One-shot waits for things the fakes see: "the next create request", and so on."""

    def __init__(self) -> None:
        self._waiters: list[tuple[str, asyncio.Future[None]]] = []

    def fire(self, kind: str) -> None:
        keep = []
        for wanted, future in self._waiters:
            if wanted == kind:
                if not future.done():
                    future.set_result(None)
            else:
                keep.append((wanted, future))
        self._waiters = keep

    async def next(self, kind: str, timeout: float) -> bool:  # noqa: ASYNC109
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((kind, future))
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return False
        return True


class WatchedTelegram(FakeTelegram):
    """The fake Bot API, also noting which bot process took which update."""

    def __init__(self, events: Events) -> None:
        super().__init__()
        self.events = events
        self.generation = 0
        self.kills = 0
        self.delivered_to: dict[int, int] = {}
        self.kills_at: dict[tuple[int, int], int] = {}
        """How many kills had happened when a message was last sent or edited."""

    async def _get_updates(self, call: Call) -> list[dict[str, Any]]:
        updates = await super()._get_updates(call)
        if updates:
            for update in updates:
                self.delivered_to[update["update_id"]] = self.generation
            self.events.fire("update delivered")
        return updates

    def _send_message(self, call: Call) -> dict[str, Any]:
        result = super()._send_message(call)
        self.events.fire("bot message")
        return result

    def _edit_message(self, call: Call, kind: str) -> dict[str, Any] | bool:
        result = super()._edit_message(call, kind)
        self.events.fire("bot message")
        return result

    def _touch(self, chat: Any, message: BotMessage) -> None:
        self.kills_at[(chat.id, message.message_id)] = self.kills
        super()._touch(chat, message)

    def is_pending(self, update_id: int) -> bool:
        """Not yet confirmed by the bot (a later getUpdates offset): Telegram sends it again."""
        return any(update["update_id"] == update_id for update in self._updates)


class WatchedProvider(FakeCryptoProcessing):
    """The fake CryptoProcessing, also counting create requests per invoice title."""

    def __init__(self, events: Events) -> None:
        super().__init__()
        self.events = events
        self.creates_by_title: Counter[str] = Counter()
        self.cancels: dict[str, list[tuple[float, int]]] = {}

    async def _invoices_create(self, request: Request) -> Response:
        with contextlib.suppress(ValueError, AttributeError):
            title = json.loads(await request.body()).get("title")
            if isinstance(title, str):
                self.creates_by_title[title] += 1
        self.events.fire("create request")
        return await super()._invoices_create(request)

    async def _invoices_cancel(self, request: Request) -> Response:
        response = await super()._invoices_cancel(request)
        foreign_id = request.path_params.get("foreign_id", "")
        self.cancels.setdefault(foreign_id, []).append((time.monotonic(), response.status_code))
        return response

    def unanswered_creates(self) -> int:
        return sum(
            1 for r in self.requests if r.path.endswith("/invoices/create") and r.status is None
        )


# --------------------------------------------------------------------------- the bot process

# The template process: imports what the bot loads at start-up once, then forks a child that
# runs `bot.__main__.main()` (exactly what `python -m bot` runs) for every "spawn" line.
_TEMPLATE = """
import importlib, os, signal, sys
import bot.__main__
for name in ("bot.app", "bot.preflight", "aiosqlite", "sqlalchemy.dialects.sqlite.aiosqlite",
             "apscheduler.schedulers.asyncio"):
    try:
        importlib.import_module(name)
    except ImportError:
        pass  # the child reports it, if the bot needs it
control = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
children = set()
control.write("ready\\n")
for line in sys.stdin:
    command, _, argument = line.strip().partition(" ")
    if command == "spawn":
        pid = os.fork()
        if pid == 0:
            control.close()
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            code = 1
            try:
                bot.__main__.main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                import traceback
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children.add(pid)
        control.write(f"pid {pid}\\n")
    elif command == "wait":
        pid = int(argument)
        _, status = os.waitpid(pid, 0)
        children.discard(pid)
        control.write(f"exited {pid} {status}\\n")
for pid in children:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except OSError:
        pass
"""


class BotProcess:
    """Starts `python -m bot` (or a fork of a pre-imported template of it) and kills it."""

    def __init__(self, spawn: str, env: dict[str, str], workdir: Path, port: int) -> None:
        self.spawn = spawn
        self.env = env
        self.workdir = workdir
        self.port = port
        self.log_path = workdir / "bot.log"
        self._log = self.log_path.open("ab")
        self._template: asyncio.subprocess.Process | None = None
        self._process: asyncio.subprocess.Process | None = None
        self.pid: int | None = None
        self._client = httpx.AsyncClient(trust_env=False, timeout=1.0)

    async def prepare(self) -> None:
        if self.spawn != "fork":
            return
        self._template = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _TEMPLATE,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=self._log,
            env=self.env, cwd=self.workdir,
        )  # fmt: skip
        if await self._read() != "ready":
            raise HarnessError(f"the bot template process did not start; see {self.log_path}")

    async def _read(self) -> str:
        assert self._template is not None and self._template.stdout is not None
        line = await asyncio.wait_for(self._template.stdout.readline(), 120)
        return line.decode().strip()

    async def _command(self, text: str) -> str:
        assert self._template is not None and self._template.stdin is not None
        self._template.stdin.write(text.encode() + b"\n")
        await self._template.stdin.drain()
        return await self._read()

    def mark(self, text: str) -> None:
        self._log.write(f"----- crash harness: {text} -----\n".encode())
        self._log.flush()

    async def start(self) -> None:
        if self.spawn == "fork":
            reply = await self._command("spawn")
            if not reply.startswith("pid "):
                raise HarnessError(f"the template process answered {reply!r}")
            self.pid = int(reply.split()[1])
        else:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot",
                stdin=asyncio.subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                env=self.env, cwd=self.workdir,
            )  # fmt: skip
            self.pid = self._process.pid

    async def wait_ready(self, timeout: float = 60.0) -> None:  # noqa: ASYNC109
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        url = f"http://127.0.0.1:{self.port}/healthz"
        while loop.time() < deadline:
            if self._process is not None and self._process.returncode is not None:
                break
            with contextlib.suppress(httpx.HTTPError):
                if (await self._client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.02)
        raise HarnessError(f"the bot did not become ready:\n{self.log_tail()}")

    def kill(self) -> None:
        if self.pid is not None:
            os.kill(self.pid, signal.SIGKILL)

    async def reap(self) -> None:
        """Wait until the killed process is gone (its socket and file handles closed)."""
        if self.pid is None:
            return
        if self.spawn == "fork":
            await self._command(f"wait {self.pid}")
        elif self._process is not None:
            await self._process.wait()
            self._process = None
        self.pid = None

    async def close(self) -> None:
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                self.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.reap(), 10)
        if self._template is not None:
            assert self._template.stdin is not None
            self._template.stdin.close()
            try:
                await asyncio.wait_for(self._template.wait(), 10)
            except TimeoutError:
                self._template.kill()
                await self._template.wait()
        await self._client.aclose()
        self._log.close()

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return "(no log)"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def bot_environment(
    telegram: FakeTelegram, provider: FakeCryptoProcessing, workdir: Path, port: int,
    merchant_ids: Iterable[int],
) -> dict[str, str]:  # fmt: skip
    """The settings, as environment variables named like .env.example; nothing inherited."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "TELEGRAM_BOT_TOKEN": telegram.token,
        "TELEGRAM_API_BASE_URL": telegram.base_url,
        "PROVIDER": "cryptoprocessing",
        "CRYPTOPROCESSING_API_KEY": provider.api_key,
        "CRYPTOPROCESSING_SECRET_KEY": provider.secret_key,
        "CRYPTOPROCESSING_BASE_URL": provider.base_url,
        "INVOICE_URL_SUCCESS": "https://shop.example.com/paid",
        "INVOICE_URL_FAILED": "https://shop.example.com/failed",
        "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bot.sqlite3'}",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(port),
        "PUBLIC_BASE_URL": "https://bot.example.com",
        "MERCHANT_IDS": ",".join(str(i) for i in merchant_ids),
        "ADMIN_IDS": str(ADMIN_ID),
        "PROVIDER_TIMEOUT_SECONDS": str(PROVIDER_TIMEOUT_SECONDS),
        # Lost answers of abandoned drafts are settled within seconds, not minutes.
        "RECONCILE_INTERVAL_SECONDS": "1",
        "CONVERSATION_TIMEOUT_SECONDS": "900",
        "LOG_LEVEL": "INFO",
        # Nothing here speaks TLS; without this every HTTP client the bot builds parses the
        # whole CA bundle, a third of a restart. A CA directory is read lazily.
        "SSL_CERT_DIR": str(workdir / "no-ca-certificates"),
    }


# --------------------------------------------------------------------------- reading the chat


def _plain(template: str) -> str:
    """A template as Telegram shows it: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]*>", "", template))


def _pattern(template: str) -> re.Pattern[str]:
    """A regex matching a template's text with any values in its {placeholders}."""
    parts = []
    for literal, name, _, _ in string.Formatter().parse(template):
        parts.append(re.escape(_plain(literal)))
        if name is not None:
            parts.append(f"(?P<{name}>.+?)" if name.isidentifier() else ".+?")
    return re.compile("".join(parts).strip())


class Classifier:
    """What a bot message is, read from the English texts in locales/ as a user reads it.

    Questions are recognised by their text (after any error line), the preview by its
    Confirm or Retry button, the invoice card by its title line; button data is only used to
    press buttons, so the bot may change its callback formats freely.
    """

    BUTTON_STEPS = frozenset({"currency", "customer", "sender-type"})

    def __init__(self, catalog: Catalog) -> None:
        def text(key: str) -> str | None:
            with contextlib.suppress(KeyError):
                return _plain(catalog.raw("en", key)).strip()
            return None

        # ask-<step> and its variants (ask-title-internal, …), longest text first.
        questions: list[tuple[str, str]] = []
        for key in catalog.keys("en"):
            name = key.removeprefix("ask-")
            steps = [s for s in QUESTION_STEPS if name == s or name.startswith(f"{s}-")]
            question = text(key)
            if key.startswith("ask-") and steps and question:
                questions.append((max(steps, key=len), question))
        self.questions = sorted(questions, key=lambda q: -len(q[1]))
        closed_keys = ("no-draft", "cancelled", "timed-out", "error-draft-gone",
                       "error-draft-incomplete")  # fmt: skip
        self.closed = {
            value for key in closed_keys for value in (text(key), text(f"{key}-settling")) if value
        }
        self.changed = text("error-draft-changed") or "\0"
        self.internal = text("internal-error") or "\0"
        self.progress = text("progress-creating") or "\0"
        self.stale = text("stale-button") or "\0"
        self.confirm = text("button-confirm") or "\0"
        self.retry = text("button-retry") or "\0"
        self.natural = text("button-natural") or "\0"
        self.new_customer = text("button-new-customer") or "\0"
        self.card = _pattern(catalog.raw("en", "card-title"))

    def kind(self, message: BotMessage, *, pressed: bool, confirm: bool) -> Kind:
        text = message.text
        buttons = message.buttons()
        if self.card.match(text):
            return "card"
        if self.confirm_button(message) is not None:
            return "preview"
        for step, question in self.questions:
            if text.endswith(question):
                if step in self.BUTTON_STEPS and not any(b.callback_data for b in buttons):
                    break  # answered already: its buttons are gone
                return step
        if text == self.progress:
            return "progress"
        if any(text.endswith(closed) for closed in self.closed):
            return "closed"
        if text.endswith(self.changed):
            return "changed"
        if text.endswith(self.internal):
            return "internal-error"
        if pressed and confirm:
            return "final-edit"  # the card turned into an error without buttons
        return "other"

    def confirm_button(self, message: BotMessage) -> Button | None:
        for button in message.buttons():
            data = button.callback_data or ""
            if "|confirm|" in data or self.confirm in button.text or self.retry in button.text:
                return button
        return None

    def pay_link(self, message: BotMessage) -> str | None:
        """The pay link of an invoice card, or None (not a card, or no link on it)."""
        if self.card.match(message.text) is None:
            return None
        url = next((b.url for b in message.buttons() if b.url), None)
        if url is None:
            found = re.search(r"https://\S+", message.text)
            url = found.group(0) if found else None
        return url


# --------------------------------------------------------------------------- merchants


@dataclass
class Order:
    merchant_id: int
    title: str
    amount: str
    currency: str
    first_name: str
    last_name: str
    birth_date: str
    email: str
    outcome: str = "open"  # open | invoiced | closed | abandoned
    draft_ids: set[str] = field(default_factory=set)


@dataclass
class Card:
    """An invoice card with a pay link, as the merchant saw it: acknowledged."""

    public_id: str
    pay_url: str
    order: Order
    chat_id: int
    message_id: int
    draft_id: str | None


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Press:
    message_id: int
    data: str


Action = Text | Press


@dataclass
class Reaction:
    kind: Kind
    message: BotMessage | None = None


class Merchant:
    """One merchant composing invoices one after another, reacting to what the bot shows."""

    def __init__(self, harness: Harness, user: FakeUser, index: int, rng: random.Random) -> None:
        self.h = harness
        self.user = user
        self.index = index
        self.rng = rng
        self.payers = rng.sample(PAYERS, 3)
        self.last_ack_kills = 0
        self.awaiting: int | None = None
        self.confirm_title: str | None = None
        self.creates_before = 0
        self.transcript: list[str] = []

    @property
    def chat(self) -> Any:
        return self.h.telegram._chat(self.user.chat_id)

    def message(self, message_id: int) -> BotMessage | None:
        found: BotMessage | None = self.chat.messages.get(message_id)
        return found

    async def run(self) -> None:
        number = 0
        while not self.h.closing:
            number += 1
            first, last, born, email = self.rng.choice(self.payers)
            order = Order(
                merchant_id=self.user.id,
                title=f"Crash {self.index}-{number}",
                amount=self.rng.choice(AMOUNTS),
                currency=self.rng.choice(CURRENCIES),
                first_name=first, last_name=last, birth_date=born, email=email,
            )  # fmt: skip
            self.h.orders.append(order)
            report = self.h.report
            report.conversations_started += 1
            order.outcome = await self.converse(order)
            if order.outcome == "invoiced":
                report.conversations_completed += 1
            elif order.outcome == "closed":
                report.conversations_closed += 1
            else:
                report.conversations_abandoned += 1
            await asyncio.sleep(self.rng.uniform(0.0, 0.5))

    async def think(self) -> None:
        pause = self.rng.uniform(1.0, 2.5) if self.rng.random() < 0.05 else self.rng.uniform(0, 0.3)
        await asyncio.sleep(pause)

    async def converse(self, order: Order) -> str:
        reaction = await self.act(order, None, Text("/new"), {"amount"})
        for _ in range(80):
            kind = reaction.kind
            if kind == "card":
                return "invoiced"
            if kind in ("closed", "final-edit"):
                return "closed"
            next_reaction = await self.respond(order, reaction)
            if next_reaction is None:
                return "abandoned"
            reaction = next_reaction
        self.h.note(f"merchant {self.user.id}: {order.title} took over 80 steps; abandoned")
        return "abandoned"

    @staticmethod
    def _press(message: BotMessage | None, wanted: Callable[[Button], bool]) -> Press | None:
        if message is None:
            return None
        for button in message.buttons():
            if button.callback_data and wanted(button):
                return Press(message.message_id, button.callback_data)
        return None

    async def respond(self, order: Order, reaction: Reaction) -> Reaction | None:
        """The merchant's answer to what the bot shows now, and the bot's reaction to it."""
        kind, message = reaction.kind, reaction.message
        await self.think()
        texts = {
            "amount": (order.amount, {"currency"}),
            "title": (order.title, {"customer", "sender-type"}),
            "first-name": (order.first_name, {"last-name"}),
            "last-name": (order.last_name, {"birth-date"}),
            "birth-date": (order.birth_date, {"email", "preview"}),
            "email": (order.email, {"preview"}),
            "legal-name": ("Crash Test Holding GmbH", {"country"}),
            "country": ("DEU", {"email", "preview"}),
        }
        if kind in texts:
            answer, expected = texts[kind]
            return await self.act(order, kind, Text(answer), expected)
        press: Press | None = None
        expect: set[str] = set()
        c = self.h.classifier
        if kind == "currency":
            press = self._press(message, lambda b: b.text.strip() == order.currency)
            expect = {"title"}
        elif kind in ("customer", "sender-type"):
            label = f"{order.first_name} {order.last_name}"
            if self.rng.random() < 0.4:  # a returning customer, when offered
                press = self._press(message, lambda b: label in b.text)
                expect = {"preview", "email"}
            if press is None:
                press = self._press(message, lambda b: c.natural in b.text)
                expect = {"first-name"}
            if press is None:  # an older flow: "new customer", then the sender type
                press = self._press(message, lambda b: c.new_customer in b.text)
                expect = {"sender-type"}
        elif kind == "preview" and message is not None:
            button = c.confirm_button(message)
            if button is not None and button.callback_data:
                press = Press(message.message_id, button.callback_data)
                if c.retry in button.text:
                    self.h.report.retries_pressed += 1
                    await asyncio.sleep(self.rng.uniform(0.5, 4.0))
                else:
                    self.h.maybe_inject_fault()
                return await self.act(order, kind, press, {"card", "preview"}, confirming=True)
        if press is None:
            # A stale button, an out-of-date preview, an internal error or something new:
            # the merchant gives up on this order and starts the next one.
            return None
        return await self.act(order, kind, press, expect)

    async def act(
        self,
        order: Order,
        step: str | None,
        action: Action,
        expect: set[str],
        *,
        confirming: bool = False,
    ) -> Reaction:
        """Send one answer and wait for the bot's reaction; send it again if a kill ate it."""
        h = self.h
        for _ in range(12):
            reaction = await self.send_and_wait(order, action, confirming=confirming)
            if reaction.kind not in ("lost", "no reply"):
                break
            if reaction.kind == "no reply":
                h.report.no_reply += 1
                h.note(
                    f"merchant {self.user.id}: the running bot never answered {action} at step "
                    f"{step} ({order.title})"
                )
            else:
                h.report.updates_lost += 1
            h.trace(f"merchant {self.user.id} {order.title} at {step}: {action} -> {reaction.kind}")
            await h.bot_ready.wait()
            if isinstance(action, Press):
                current = self.message(action.message_id)
                if current is not None and any(
                    b.callback_data == action.data for b in current.buttons()
                ):
                    continue  # the buttons are still there: tap again
                if confirming:
                    # Half-handled Confirm: the card said "creating" when the bot died. The
                    # restarted bot may still finish the card; else ask where things stand.
                    finished = await self.card_after_restart(action.message_id)
                    if finished is not None:
                        h.trace(f"merchant {self.user.id} {order.title}: card finished later")
                        reaction = finished
                        break
                    if self.rng.random() < 0.3:
                        h.trace(f"merchant {self.user.id} {order.title}: abandoned at progress")
                        return Reaction("abandoned")
                    action, expect, confirming = Text("?"), {"preview", "closed", "card"}, False
                elif step == "currency":
                    action, expect = Text(order.currency), expect | {"currency"}
                else:
                    action, expect = Text("?"), expect | {step or ""}
                h.report.nudges += 1
        else:
            h.violation(
                "conversations resume",
                f"merchant {self.user.id} {order.title}: no reaction to {action} at step {step} "
                "after 12 tries",
            )
            return Reaction("abandoned")
        self.check(order, step, action, expect, reaction)
        return reaction

    def check(
        self, order: Order, step: str | None, action: Action, expect: set[str], got: Reaction
    ) -> None:
        """The bot must take each answer as the step it asked for, kill or no kill."""
        h = self.h
        h.report.steps += 1
        # Kills between the bot's previous reply (when it was sent, not when it was read) and
        # its reply to this answer: each one is a restart this answer had to survive.
        acked = h.kills_done
        if got.message is not None:
            acked = h.telegram.kills_at.get((got.message.chat_id, got.message.message_id), acked)
        kills_since = acked - self.last_ack_kills
        if kills_since:
            h.report.resume_checks += 1
        self.last_ack_kills = acked
        if got.kind == "card" and got.message is not None:
            h.acknowledge_card(order, got.message)
        what = f"{action.text!r}" if isinstance(action, Text) else f"press {action.data}"
        shown = (got.message.text if got.message else "").replace("\n", " ")
        self.transcript.append(f"{step}: {what} -> {got.kind}")
        h.trace(f"merchant {self.user.id} {order.title} at {step}: {what} -> {got.kind}")
        del self.transcript[:-6]
        if got.kind in expect:
            return
        if kills_since:
            h.report.resume_failures += 1
            context = (
                f"{kills_since} kill(s) since the bot acknowledged the previous answer (last: "
                f"{h.last_kill_summary()})"
            )
        else:
            h.report.flow_deviations += 1
            context = "no kill since the previous answer (the aftermath of an earlier kill)"
        h.violation(
            "conversations resume",
            f"merchant {self.user.id} {order.title}: at step {step} sent {what}, expected "
            f"{'/'.join(sorted(expect))}, got {got.kind} {shown[-70:]!r}; {context}; "
            f"steps: {' | '.join(self.transcript[:-1])}",
        )

    async def send_and_wait(self, order: Order, action: Action, *, confirming: bool) -> Reaction:
        h = self.h
        chat = self.chat
        first_new = chat.next_message_id
        if confirming:
            self.confirm_title = order.title
            self.creates_before = h.provider.creates_by_title[order.title]
        pressed: int | None = None
        query_id: str | None = None
        if isinstance(action, Text):
            update_id = await self.user.send(action.text)
        else:
            message = self.message(action.message_id)
            if message is None:
                return Reaction("other")
            update_id = await self.user.press_data(action.data, message)
            draft_id = action.data.split("|", 1)[0]
            if re.fullmatch(r"[0-9a-f]{16}", draft_id):
                order.draft_ids.add(draft_id)
            pressed = action.message_id
            query_id = h.telegram._all_updates[update_id]["callback_query"]["id"]
        mark = h.telegram._update_marks[update_id][1]
        self.awaiting = update_id
        loop = asyncio.get_running_loop()
        try:
            taken_at: float | None = None
            stale_at: float | None = None
            while True:
                found = self.scan(mark, first_new, pressed, confirming)
                if found is not None:
                    reaction = await self.quiet(mark, first_new, pressed, confirming)
                    self.trace_reaction(update_id, mark, first_new, pressed)
                    return reaction
                if query_id is not None and self.answered_stale(query_id):
                    stale_at = stale_at or loop.time()
                    if loop.time() - stale_at > 0.5:
                        return Reaction("stale")
                state = h.update_state(update_id)
                if state == "dead":
                    return self.scan(mark, first_new, pressed, confirming) or Reaction("lost")
                if state == "live":
                    taken_at = taken_at or loop.time()
                    if loop.time() - taken_at > NO_REPLY_SECONDS:
                        return Reaction("no reply")
                else:
                    taken_at = None
                await asyncio.sleep(POLL_SECONDS)
        finally:
            self.awaiting = None
            self.confirm_title = None

    def trace_reaction(
        self, update_id: int, mark: int, first_new: int, pressed: int | None
    ) -> None:
        """Every bot message of a reaction, for the transcript."""
        taker = self.h.telegram.delivered_to.get(update_id)
        for message in sorted(self.chat.messages.values(), key=lambda m: m.activity):
            if message.activity > mark and (
                message.message_id == pressed or message.message_id >= first_new
            ):
                data = [b.callback_data or b.url or "" for b in message.buttons()][:2]
                text = message.text.replace("\n", " / ")
                self.h.trace(
                    f"    update {update_id} (bot {taker}) -> #{message.message_id} "
                    f"edits={message.edits} {text[:60]!r}…{text[-40:]!r} {data}"
                )

    def answered_stale(self, query_id: str) -> bool:
        answers = self.h.telegram._answers.get(self.user.id, [])
        return any(
            a.get("callback_query_id") == query_id and a.get("text") == self.h.classifier.stale
            for a in answers[-5:]
        )

    def scan(
        self, mark: int, first_new: int, pressed: int | None, confirming: bool
    ) -> Reaction | None:
        """The newest terminal reaction: a question, a preview, a card, a closing text."""
        best: BotMessage | None = None
        best_kind = ""
        for message in self.chat.messages.values():
            if message.activity <= mark:
                continue
            if message.message_id != pressed and message.message_id < first_new:
                continue  # an older card redrawn by the notifier, not a reaction
            kind = self.h.classifier.kind(
                message, pressed=message.message_id == pressed, confirm=confirming
            )
            if kind == "card" and message.message_id != pressed:
                continue
            if kind in TERMINAL and (best is None or message.activity > best.activity):
                best, best_kind = message, kind
        return Reaction(best_kind, copy.deepcopy(best)) if best is not None else None

    async def quiet(
        self, mark: int, first_new: int, pressed: int | None, confirming: bool
    ) -> Reaction:
        """Let the bot finish reacting (an edit and a question, say), then read the result."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.5
        seen = self.chat.activity
        quiet_since = loop.time()
        while loop.time() - quiet_since < QUIET_SECONDS and loop.time() < deadline:
            await asyncio.sleep(POLL_SECONDS)
            if self.chat.activity != seen:
                seen, quiet_since = self.chat.activity, loop.time()
        found = self.scan(mark, first_new, pressed, confirming)
        assert found is not None
        return found

    async def card_after_restart(self, message_id: int) -> Reaction | None:
        """After a kill mid-create, give the restarted bot a moment to finish the card."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2.0
        while loop.time() < deadline:
            message = self.message(message_id)
            if message is not None:
                kind = self.h.classifier.kind(message, pressed=True, confirm=True)
                if kind in ("card", "preview"):
                    return Reaction(kind, copy.deepcopy(message))
            await asyncio.sleep(POLL_SECONDS * 4)
        return None

    def create_in_flight(self) -> bool:
        title = self.confirm_title
        return title is not None and self.h.provider.creates_by_title[title] > self.creates_before


# --------------------------------------------------------------------------- callbacks


@dataclass
class Plan:
    card: Card
    statuses: list[str]
    next_at: float = 0.0
    acknowledged_rank: int = -1
    acknowledged: list[str] = field(default_factory=list)


class Payments:
    """Signed invoice callbacks for acknowledged invoices, resent until answered 200."""

    def __init__(self, harness: Harness, rng: random.Random) -> None:
        self.h = harness
        self.rng = rng
        self.plans: list[Plan] = []
        self.in_flight = 0
        self._client = httpx.AsyncClient(trust_env=False, timeout=5.0)

    def add(self, card: Card) -> None:
        options = [plan for plan, _ in PLANS]
        statuses = list(self.rng.choices(options, [w for _, w in PLANS])[0])
        if statuses and self.rng.random() < 0.2:
            at = self.rng.randrange(len(statuses))
            statuses.insert(at, statuses[at])  # a duplicate delivery
        if len(statuses) > 1 and self.rng.random() < 0.3:
            statuses.append(self.rng.choice(statuses[:-1]))  # a late, older one
        self.plans.append(Plan(card, statuses, next_at=time.monotonic() + self.rng.uniform(0, 1)))

    def pending(self) -> list[Plan]:
        return [plan for plan in self.plans if plan.statuses]

    async def run(self, until: Callable[[], bool]) -> None:
        while not until():
            await asyncio.sleep(self.rng.uniform(0.03, 0.15))
            now = time.monotonic()
            due = [plan for plan in self.pending() if plan.next_at <= now]
            if due:
                await self.send(self.rng.choice(due))

    async def send(self, plan: Plan) -> None:
        h = self.h
        status = plan.statuses[0]
        invoice = h.provider.invoices.get(plan.card.public_id)
        if invoice is None:
            plan.statuses.clear()
            return  # reported by the final checks
        if FAKE_RANK[status] > FAKE_RANK.get(invoice["status"], 0):
            h.provider.set_status(plan.card.public_id, status)  # the provider moves first
        body = cp_callback(invoice, status)
        headers = {
            "Content-Type": "application/json",
            "X-Processing-Key": h.provider.api_key,
            "X-Processing-Signature": h.provider.sign(body),
        }
        url = f"http://127.0.0.1:{h.port}/callbacks/cryptoprocessing"
        h.report.callbacks_sent += 1
        self.in_flight += 1
        h.events.fire("callback")
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.TransportError:
            h.report.callbacks_failed += 1
            plan.next_at = time.monotonic() + self.rng.uniform(0.1, 0.5)  # the provider retries
            return
        finally:
            self.in_flight -= 1
        if response.status_code != 200:
            h.report.callbacks_failed += 1
            if response.status_code < 500:
                h.note(f"callback {status} for {plan.card.public_id} refused: {response.text}")
                plan.statuses.pop(0)
            plan.next_at = time.monotonic() + self.rng.uniform(0.1, 0.5)
            return
        h.report.callbacks_acknowledged += 1
        plan.statuses.pop(0)
        rank = rank_of(CALLBACK_STATUS[status])
        if rank <= plan.acknowledged_rank:
            h.report.stale_callbacks_acknowledged += 1
        plan.acknowledged_rank = max(plan.acknowledged_rank, rank)
        plan.acknowledged.append(status)
        plan.next_at = time.monotonic() + self.rng.uniform(0.1, 0.8)

    async def aclose(self) -> None:
        await self._client.aclose()


# --------------------------------------------------------------------------- the harness


@dataclass
class Kill:
    number: int
    phase: str
    trigger: str
    at: float


class Harness:
    def __init__(self, config: CrashConfig, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.rng = random.Random(config.seed)  # noqa: S311 - reproducible, not secret
        self.events = Events()
        self.telegram = WatchedTelegram(self.events)
        self.provider = WatchedProvider(self.events)
        self.catalog = Catalog.load()
        self.classifier = Classifier(self.catalog)
        self.report = CrashReport(config)
        self.orders: list[Order] = []
        self.transcript: list[str] = []
        self.cards: dict[str, Card] = {}
        self.merchants: list[Merchant] = []
        self.payments = Payments(self, random.Random(config.seed + 1))  # noqa: S311
        self.kills_done = 0
        self.kill_log: list[Kill] = []
        self.dead: set[int] = set()
        self.closing = False
        self.bot_ready = asyncio.Event()
        self.port = free_port()
        self.started = time.monotonic()
        self.bot: BotProcess | None = None

    # ---- bookkeeping used by merchants and payments

    def trace(self, text: str) -> None:
        self.transcript.append(f"{time.monotonic() - self.started:7.2f} {text}")

    def note(self, text: str) -> None:
        self.report.notes.append(text)

    def violation(self, invariant: str, detail: str) -> None:
        self.report.violations.append(Violation(invariant, detail))
        if self.config.progress is not None:
            self.config.progress(f"VIOLATION {invariant}: {detail}")

    def last_kill_summary(self) -> str:
        if not self.kill_log:
            return "none"
        kill = self.kill_log[-1]
        ago = time.monotonic() - kill.at
        return f"kill #{kill.number}, {kill.phase}, trigger {kill.trigger}, {ago:.1f} s ago"

    def update_state(self, update_id: int) -> str:
        """pending (Telegram still holds it), live (the running bot took it) or dead."""
        if self.telegram.is_pending(update_id):
            return "pending"
        taker = self.telegram.delivered_to.get(update_id)
        if taker is None:
            return "pending"
        return "dead" if taker in self.dead else "live"

    def public_id_of(self, pay_url: str) -> str | None:
        """Our id (the provider's foreign_id) of the invoice behind a pay link."""
        return next(
            (fid for fid, invoice in self.provider.invoices.items() if invoice["url"] == pay_url),
            None,
        )

    def acknowledge_card(self, order: Order, message: BotMessage) -> None:
        url = self.classifier.pay_link(message)
        if url is None:
            self.note(f"{order.title}: a card without a pay link: {message.text[:80]!r}")
            return
        public_id = self.public_id_of(url)
        if public_id is None:
            self.violation(
                "acknowledged invoices present",
                f"{order.title}: the card's pay link {url} is no invoice at the provider",
            )
            return
        if public_id in self.cards:
            return
        draft_id = next(iter(order.draft_ids), None) if len(order.draft_ids) == 1 else None
        card = Card(public_id, url, order, message.chat_id, message.message_id, draft_id)
        self.cards[public_id] = card
        self.report.invoices_acknowledged += 1
        self.payments.add(card)

    def maybe_inject_fault(self) -> None:
        if self.closing or self.rng.random() >= self.config.fault_rate or self.provider._faults:
            return  # at the end, orders are only finished
        choice = self.rng.choices(("lost answer", "500", "garbled"), (5, 3, 2))[0]
        if choice == "lost answer":  # created, but the answer comes after the bot's timeout
            self.provider.delay_next(PROVIDER_TIMEOUT_SECONDS + 1.5, create_anyway=True)
        elif choice == "500":
            self.provider.fail_next(500, "<html>Internal Server Error</html>")
        else:
            self.provider.garble_next()
        self.report.faults_injected[choice] += 1

    def phase(self) -> str:
        if self.provider.unanswered_creates() or any(m.create_in_flight() for m in self.merchants):
            return "create in flight"
        if self.payments.in_flight:
            return "callback write"
        for merchant in self.merchants:
            update_id = merchant.awaiting
            if update_id is not None and self.update_state(update_id) == "live":
                return "conversation"
        return "idle"

    # ---- the bot

    async def start_bot(self) -> float:
        assert self.bot is not None
        self.telegram.generation += 1
        self.bot.mark(f"start {self.telegram.generation}")
        started = time.monotonic()
        await self.bot.start()
        await self.bot.wait_ready()
        self.bot_ready.set()
        self.trace(f"bot {self.telegram.generation} ready")
        return time.monotonic() - started

    async def kill_bot(self, trigger: str) -> None:
        assert self.bot is not None
        phase = self.phase()
        self.bot.kill()
        killed_at = time.monotonic()
        self.bot_ready.clear()
        self.dead.add(self.telegram.generation)
        self.kills_done += 1
        self.telegram.kills = self.kills_done
        self.kill_log.append(Kill(self.kills_done, phase, trigger, killed_at))
        self.trace(
            f"KILL #{self.kills_done} of bot {self.telegram.generation} ({phase}, {trigger})"
        )
        self.report.kills = self.kills_done
        self.report.kills_by_phase[phase] += 1
        self.report.kills_by_trigger[trigger] += 1
        await self.bot.reap()
        self.bot.mark(f"kill {self.kills_done} ({phase}, {trigger})")
        if self.rng.random() < 0.15:
            await asyncio.sleep(self.rng.uniform(0.05, 0.5))  # a supervisor's back-off
        await self.start_bot()
        self.report.restarts += 1
        self.report.restart_seconds.append(time.monotonic() - killed_at)

    async def wait_trigger(self, trigger: str) -> None:
        rng = self.rng
        if trigger == "random":
            await asyncio.sleep(rng.uniform(0.05, 1.1))
        elif trigger == "bot message":
            await self.events.next("bot message", 2.0)
            await asyncio.sleep(rng.uniform(0.0, 0.3))
        elif trigger == "update delivered":
            await self.events.next("update delivered", 2.0)
            await asyncio.sleep(rng.uniform(0.0, 0.004))
        elif trigger == "create request":
            await self.events.next("create request", 2.0)
            await asyncio.sleep(rng.uniform(0.0, 0.04))
        elif trigger == "callback":
            await self.events.next("callback", 2.0)
            await asyncio.sleep(rng.uniform(0.0, 0.015))
        else:  # idle: nothing in flight for a moment
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 1.5
            quiet_since = loop.time()
            while loop.time() < deadline and loop.time() - quiet_since < 0.1:
                await asyncio.sleep(0.01)
                if self.phase() != "idle":
                    quiet_since = loop.time()

    def progress(self, text: str) -> None:
        if self.config.progress is not None:
            elapsed = time.monotonic() - self.started
            self.config.progress(f"[{elapsed:6.1f}s] {text}")

    async def killer(self) -> None:
        deadline = self.started + self.config.max_seconds
        while self.kills_done < self.config.kills:
            if time.monotonic() > deadline:
                self.note(f"kill phase stopped after {self.config.max_seconds:.0f} s")
                break
            trigger = self.rng.choices(TRIGGERS, TRIGGER_WEIGHTS)[0]
            await self.wait_trigger(trigger)
            await self.kill_bot(trigger)
            if self.kills_done % 10 == 0:
                self.progress(
                    f"{self.kills_done} kills, {len(self.cards)} invoices acknowledged, "
                    f"{self.report.callbacks_acknowledged} callbacks acknowledged"
                )

    # ---- the run

    async def run(self) -> CrashReport:
        report = self.report
        merchant_ids = [FIRST_MERCHANT_ID + i for i in range(self.config.merchants)]
        async with self.telegram, self.provider:
            env = bot_environment(
                self.telegram, self.provider, self.workdir, self.port, merchant_ids
            )
            (self.workdir / "no-ca-certificates").mkdir(exist_ok=True)
            self.bot = BotProcess(self.config.spawn, env, self.workdir, self.port)
            report.log_path = self.bot.log_path
            tasks: list[asyncio.Task[None]] = []
            try:
                await self.bot.prepare()
                report.first_start_seconds = await self.start_bot()
                self.progress(f"bot ready in {report.first_start_seconds:.2f} s")
                for index, merchant_id in enumerate(merchant_ids, start=1):
                    user = self.telegram.user(merchant_id, f"Merchant{index}")
                    rng = random.Random(self.config.seed * 1000 + index)  # noqa: S311
                    self.merchants.append(Merchant(self, user, index, rng))
                tasks = [asyncio.create_task(m.run()) for m in self.merchants]
                payments_done = asyncio.Event()
                tasks.append(asyncio.create_task(self.payments.run(payments_done.is_set)))
                await self._watch(self.killer(), tasks)
                report.kill_seconds = time.monotonic() - self.started
                self.progress(f"kill phase done: {self.kills_done} kills; settling")
                settle_started = time.monotonic()
                await self.settle(tasks[:-1], payments_done)
                report.settle_seconds = time.monotonic() - settle_started
                await self.bot.close()  # SIGKILL: the checks read the file as a crash left it
                self.check()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await self.bot.close()
                await self.payments.aclose()
        report.total_seconds = time.monotonic() - self.started
        details = [report.text(), "", "all violations:"]
        details += [f"- {v.invariant}: {v.detail}" for v in report.violations]
        (self.workdir / "report.txt").write_text("\n".join(details) + "\n")
        (self.workdir / "transcript.txt").write_text("\n".join(self.transcript) + "\n")
        return report

    async def _watch(self, main: Awaitable[None], helpers: list[asyncio.Task[None]]) -> None:
        """Run `main`, failing at once if a helper task (a merchant, the payments) fails."""
        main_task = asyncio.ensure_future(main)
        while not main_task.done():
            await asyncio.wait([main_task, *helpers], return_when=asyncio.FIRST_COMPLETED)
            for task in helpers:
                error = task.exception() if task.done() and not task.cancelled() else None
                if error is not None:
                    main_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await main_task
                    raise error
        main_task.result()

    async def settle(
        self, merchants: list[asyncio.Task[None]], payments_done: asyncio.Event
    ) -> None:
        """Finish every conversation and callback, then wait for the bot to settle attempts.

        Each wait polls against its own deadline, so a healthy run settles in seconds and a
        broken one still ends (and reports what was left).
        """
        self.closing = True
        loop = asyncio.get_running_loop()
        budget = self.config.settle_seconds
        _, stuck = await asyncio.wait(merchants, timeout=budget * 0.5)
        for task in merchants:
            error = task.exception() if task.done() and not task.cancelled() else None
            if error is not None:
                raise error
        for task, merchant in zip(merchants, self.merchants, strict=True):
            if task in stuck:
                self.note(
                    f"merchant {merchant.user.id} had not finished its order when settling; "
                    f"last steps: {' | '.join(merchant.transcript[-4:])}"
                )
        await _poll(lambda: not self.payments.pending(), loop.time() + budget * 0.15)
        payments_done.set()
        if self.payments.pending():
            self.note(f"{len(self.payments.pending())} callback plan(s) not delivered in time")
        db = self.workdir / "bot.sqlite3"
        unsettled = "SELECT count(*) FROM invoice WHERE outcome IN ('creating', 'unknown')"
        await _poll(lambda: _query(db, unsettled) == [(0,)], loop.time() + budget * 0.3, 0.25)
        # The notifier redraws cards after callbacks: give it a few seconds to catch up.
        await _poll(lambda: not self._cards_behind(db), loop.time() + budget * 0.05, 0.25)

    def _cards_behind(self, db: Path) -> list[str]:
        rows = _query(db, "SELECT public_id, status FROM invoice WHERE outcome = 'created'")
        statuses = {public_id: status for public_id, status in rows}
        behind = []
        t = self.catalog.texts("en")
        for card in self.cards.values():
            status = statuses.get(card.public_id)
            message = self.telegram._chat(card.chat_id).messages.get(card.message_id)
            if status is None or message is None:
                continue
            key = f"status-{status}"
            shown = _plain(t(key)) if key in t.catalog.keys("en") else status
            if shown not in message.text:
                behind.append(f"{card.public_id} is {status}, its card: {message.text[-60:]!r}")
        return behind

    # ---- the invariants

    def check(self) -> None:
        report = self.report
        db = self.workdir / "bot.sqlite3"
        fail = self.violation
        if self.kills_done < self.config.kills:
            fail("kills done", f"only {self.kills_done} of {self.config.kills} kills")
        report.checked["kills done"] = self.kills_done

        with contextlib.closing(sqlite3.connect(db, timeout=10)) as connection:
            integrity = [row[0] for row in connection.execute("PRAGMA integrity_check")]
            foreign = connection.execute("PRAGMA foreign_key_check").fetchall()
            invoices = connection.execute(
                "SELECT id, public_id, draft_id, outcome, status, pay_url, provider_invoice_id, "
                "title FROM invoice ORDER BY id"
            ).fetchall()
            events = connection.execute(
                "SELECT invoice_id, kind, status FROM invoice_event ORDER BY id"
            ).fetchall()
        if integrity != ["ok"]:
            fail("integrity_check ok", f"PRAGMA integrity_check: {integrity[:5]}")
        if foreign:
            fail("integrity_check ok", f"PRAGMA foreign_key_check: {foreign[:5]}")

        by_public = {row[1]: row for row in invoices}
        report.attempts_by_outcome = Counter(row[3] for row in invoices)
        report.invoices_created = report.attempts_by_outcome.get("created", 0)
        report.provider_invoices = len(self.provider.invoices)
        report.provider_creates = self.provider.create_calls

        # Every acknowledged invoice: stored with the link the merchant saw, for that order.
        for card in self.cards.values():
            row = by_public.get(card.public_id)
            invoice = self.provider.invoices.get(card.public_id)
            where = f"{card.order.title} ({card.public_id})"
            if row is None:
                fail("acknowledged invoices present", f"{where}: not in the database")
                continue
            _, _, draft_id, outcome, _, pay_url, _, _ = row
            if outcome != "created" or pay_url != card.pay_url:
                fail(
                    "acknowledged invoices present",
                    f"{where}: stored as {outcome} with pay link {pay_url!r}, the merchant saw "
                    f"{card.pay_url!r}",
                )
            if card.draft_id is not None and draft_id != card.draft_id:
                fail("acknowledged invoices present", f"{where}: stored under another draft")
            if invoice is None or invoice["url"] != card.pay_url:
                fail("acknowledged invoices present", f"{where}: not payable at that link")
                continue
            wrong = _differences(card.order, invoice["request"])
            if wrong:
                fail(
                    "invoices carry what was typed",
                    f"{where}: the invoice's {', '.join(wrong)} differ from what the merchant "
                    f"typed at those steps",
                )
        report.checked["acknowledged invoices present"] = len(self.cards)
        report.checked["invoices carry what was typed"] = len(self.cards)

        # Every callback answered 200 left its status; statuses only moved forward.
        for plan in self.payments.plans:
            if plan.acknowledged_rank < 0:
                continue
            row = by_public.get(plan.card.public_id)
            stored = row[4] if row else None
            if rank_of(stored) < plan.acknowledged_rank:
                fail(
                    "acknowledged callbacks stored",
                    f"{plan.card.public_id}: callbacks {plan.acknowledged} answered 200, "
                    f"stored status {stored}",
                )
        report.checked["acknowledged callbacks stored"] = sum(
            len(plan.acknowledged) for plan in self.payments.plans
        )
        history: dict[int, list[str]] = {}
        for invoice_id, kind, status in events:
            if kind == "status" and status:
                history.setdefault(invoice_id, []).append(status)
        for row in invoices:
            statuses = history.get(row[0], [])
            ranks = [rank_of(s) for s in statuses]
            if any(b <= a for a, b in itertools.pairwise(ranks)) or (
                ranks and rank_of(row[4]) < ranks[-1]
            ):
                fail(
                    "statuses never backwards", f"{row[1]}: status history {statuses}, now {row[4]}"
                )
        report.checked["statuses never backwards"] = len(history)

        # At most one payable invoice per order, at the provider and in the database.
        payable: dict[str, list[str]] = {}
        for foreign_id, invoice in self.provider.invoices.items():
            row = by_public.get(foreign_id)
            if row is None:
                fail(
                    "at most one payable invoice per order",
                    f"provider invoice {foreign_id} ({invoice['title']}) is unknown to the bot",
                )
                continue
            if invoice["status"] != "failed":
                payable.setdefault(row[2], []).append(foreign_id)
            if row[3] in ("voided", "failed") and invoice["status"] != "failed":
                fail(
                    "at most one payable invoice per order",
                    f"{foreign_id} ({invoice['title']}) is {row[3]} in the bot but "
                    f"{invoice['status']} at the provider",
                )
        for draft_id, ids in payable.items():
            if len(ids) > 1:
                fail(
                    "at most one payable invoice per order",
                    f"draft {draft_id}: {len(ids)} payable invoices at the provider {ids}",
                )
        for order in self.orders:  # an order whose /new was sent twice spans two drafts
            ids = [i for draft_id in order.draft_ids for i in payable.get(draft_id, [])]
            if len(order.draft_ids) > 1 and len(ids) > 1:
                fail(
                    "at most one payable invoice per order",
                    f"order {order.title}: {len(ids)} payable invoices at the provider {ids}",
                )
        created_per_draft = Counter(row[2] for row in invoices if row[3] == "created")
        for draft_id, count in created_per_draft.items():
            if count > 1:
                fail(
                    "at most one payable invoice per order",
                    f"draft {draft_id}: {count} attempts created in the database",
                )
        report.checked["at most one payable invoice per order"] = len(payable)

        for row in invoices:
            if row[3] in ("creating", "unknown"):
                fail("attempts settled", f"{row[1]} ({row[7]}) still {row[3]} after settling; "
                     + self.provider_history(row[1]))  # fmt: skip
        report.checked["attempts settled"] = len(invoices)

        report.checked["conversations resume"] = report.steps
        # A Confirm the bot took (it said "creating") must end in a card with the pay link
        # once the bot is back, not in a payable invoice the merchant never hears of.
        shown = self.cards_in_chats()
        for row in invoices:
            if row[3] == "created" and row[1] not in self.cards and row[1] not in shown:
                fail(
                    "created invoices reach the merchant",
                    f"{row[1]} ({row[7]}): created and payable, never shown in the chat; "
                    + self.provider_history(row[1]),
                )
        report.checked["created invoices reach the merchant"] = report.invoices_created
        report.shown_late = len(
            [row for row in invoices if row[1] in shown and row[1] not in self.cards]
        )
        report.cards_behind = self._cards_behind(db)
        self.check_logs()

    def provider_history(self, foreign_id: str) -> str:
        """What the provider saw of one attempt, with the kills around it, for a bug report."""
        invoice = self.provider.invoices.get(foreign_id)
        parts = [f"at the provider: {invoice['status'] if invoice else 'absent'}"]
        for at, status in self.provider.cancels.get(foreign_id, []):
            before = [k for k in self.kill_log if k.at <= at]
            after = [k for k in self.kill_log if k.at > at]
            near = f"kill #{after[0].number} {after[0].at - at:.2f} s later" if after else ""
            near = near or (f"after kill #{before[-1].number}" if before else "")
            parts.append(f"cancel answered {status} at {at - self.started:.1f} s ({near})")
        return ", ".join(parts)

    def cards_in_chats(self) -> set[str]:
        """Public ids of every invoice card with a pay link in any merchant's chat now."""
        shown = set()
        for merchant in self.merchants:
            for message in merchant.chat.messages.values():
                url = self.classifier.pay_link(message)
                public_id = self.public_id_of(url) if url else None
                if public_id is not None:
                    shown.add(public_id)
        return shown

    def check_logs(self) -> None:
        assert self.bot is not None
        text = self.bot.log_path.read_text(errors="replace")
        secrets = (self.telegram.token, self.provider.api_key, self.provider.secret_key)
        personal = {value for payer in PAYERS for value in payer}
        found = sorted({value for value in (*secrets, *personal) if value in text})
        for value in found:
            kind = "a secret" if value in secrets else "personal data"
            self.violation("no personal data or secrets in logs", f"{kind} in the bot log")
        self.report.checked["no personal data or secrets in logs"] = text.count("\n")
        lines = text.splitlines()
        for number, line in enumerate(lines):
            if " ERROR " not in line and " CRITICAL " not in line:
                continue
            cause = ""
            if number + 1 < len(lines) and lines[number + 1].startswith("Traceback"):
                cause = next(
                    (later for later in lines[number + 2 :] if not later.startswith(" ")), ""
                )
            message = line.split(": ", 1)[-1]
            self.report.bot_errors.append(f"{message} [{cause}]" if cause else message)


def _differences(order: Order, request: dict[str, Any]) -> list[str]:
    sender = request.get("sender_data") or {}
    expected = {
        "title": (request.get("title"), order.title),
        "amount": (Decimal(str(request.get("amount"))), Decimal(order.amount)),
        "currency": (request.get("currency"), order.currency),
        "first_name": (sender.get("first_name"), order.first_name),
        "last_name": (sender.get("last_name"), order.last_name),
        "date_of_birth": (sender.get("date_of_birth"), order.birth_date),
        "email_user": (request.get("email_user"), order.email),
    }
    return [name for name, (got, want) in expected.items() if got != want]


async def _poll(done: Callable[[], bool], deadline: float, step: float = 0.1) -> bool:
    """Wait until `done()` or the loop's clock passes `deadline`; returns `done()`."""
    loop = asyncio.get_running_loop()
    while True:
        if done():
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(step)


def _query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=5)) as connection:
            return connection.execute(sql).fetchall()
    except sqlite3.Error:
        return []


async def run_crash_test(config: CrashConfig) -> CrashReport:
    # A bot killed mid-request makes the fakes' uvicorn log "Exception in ASGI application".
    uvicorn_errors = logging.getLogger("uvicorn.error")
    uvicorn_errors.addFilter(_drop_client_disconnects)
    try:
        return await _run_in_workdir(config)
    finally:
        uvicorn_errors.removeFilter(_drop_client_disconnects)


def _drop_client_disconnects(record: logging.LogRecord) -> bool:
    return not (record.exc_info and isinstance(record.exc_info[1], ClientDisconnect))


async def _run_in_workdir(config: CrashConfig) -> CrashReport:
    if config.workdir is not None:
        config.workdir.mkdir(parents=True, exist_ok=True)
        return await Harness(config, config.workdir).run()
    with tempfile.TemporaryDirectory(prefix="crash-") as tmp:
        workdir = Path(tmp)
        report = await Harness(config, workdir).run()
        if config.keep or not report.ok:
            kept = Path(tempfile.mkdtemp(prefix="crash-kept-"))
            names = ("bot.log", "report.txt", "transcript.txt", "bot.sqlite3", "bot.sqlite3-wal")
            for name in names:
                if (workdir / name).exists():
                    (kept / name).write_bytes((workdir / name).read_bytes())
            report.log_path = kept / "bot.log"
        return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--merchants", type=int, default=6)
    parser.add_argument("--spawn", choices=("fork", "exec"), default="fork")
    parser.add_argument("--fault-rate", type=float, default=0.3)
    parser.add_argument("--max-seconds", type=float, default=900.0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the log and database")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    config = CrashConfig(
        kills=args.kills, seed=args.seed, merchants=args.merchants, spawn=args.spawn,
        fault_rate=args.fault_rate, max_seconds=args.max_seconds, workdir=args.workdir,
        keep=args.keep,
        progress=None if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True)),
    )  # fmt: skip
    report = asyncio.run(run_crash_test(config))
    print(report.text())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
