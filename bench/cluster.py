"""Benchmark: one bot on SQLite, one on PostgreSQL, two on one PostgreSQL, side by side.

Run with `.venv/bin/python -m bench.cluster` (options: `--merchants N`, default 50;
`--invoices-per-merchant K`, default 2; `--quick` for 10 × 1; `--postgres-url`, default
TEST_DATABASE_URL, else postgresql+asyncpg://postgres@127.0.0.1:5432/test).

Every set-up runs the real bot as `python -m bot` subprocesses configured through the
environment, as an operator runs it, against the fake Telegram and CryptoProcessing servers
that run in this process on loopback:

1. one process on a SQLite file;
2. one process on a fresh PostgreSQL database (`CREATE DATABASE bench_… TEMPLATE template0`,
   dropped at the end);
3. two processes on one fresh PostgreSQL database (different HTTP ports, the same DATA_KEY):
   the bot runs in cluster mode by itself, one process polls Telegram and both handle
   updates from the shared inbox (bot/cluster.py).

N merchants then talk to the bot at once, each walking the whole conversation K times with
no think time: /new → amount → currency button → title → Natural person → first name →
last name → date of birth → email → Confirm, up to the invoice card with its pay link and
the message to forward. Before the timed load, a few other merchants make one invoice each
(not counted), so lazy start-up costs (currency list, first connections) stay out of it.

Printed per set-up: invoices/s (invoices ÷ wall time of the whole load), p50/p99 step
latency (a merchant's message or press queued in the fake Telegram → the bot's last Bot API
call of the answer arrived there; Confirm ends with the message to forward), Bot API calls
per invoice (every call the fake recorded during the load except getUpdates, ÷ invoices),
peak RSS of each bot process (VmHWM), and below the table the calls by method, the CPU
seconds spent during the load, and what the bots logged at WARNING and above.

Note that the bot caps its chat-bound calls (sendMessage, edits) at Telegram's 30 a second
per bot, shared by all processes (SharedRateLimiter), so with enough merchants the cap, not
the database, sets invoices/s. `--no-send-limit` lifts it inside the bot processes (they run
`python -c` with SharedRateLimiter.OVERALL_PER_SECOND raised, then `bot.__main__.main()`),
to see what the processes and the database could do without it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import re
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bench.bot_api_calls import CallLog, forwardable, percentile, quiet
from bench.crash import BotProcess, _drop_client_disconnects, bot_environment, free_port
from tests.databases import fresh_postgres_database
from tests.fakes.cryptoprocessing_api import FakeCryptoProcessing
from tests.fakes.telegram_api import BotMessage, FakeTelegram, FakeUser

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
FIRST_MERCHANT_ID = 30_001
WARMUP_MERCHANT_ID = 39_001
WARMUP_MERCHANTS_PER_PROCESS = 2
STEP_TIMEOUT = 30.0
"""Seconds one step may take under load before the merchant gives up (a failure)."""
STOP_TIMEOUT = 15.0
DATA_KEY = "bench-cluster-data-key-" + "k" * 24  # any 32+ characters; the same for all
STEPS_PER_INVOICE = 10

FIRST_NAMES = ("Ottilie", "Zebulon", "Henrike", "Leopold", "Rosalind", "Casimir", "Ada")
LAST_NAMES = ("Brennecke", "Marchetti", "Vasquez", "Okonkwo", "Achterberg", "Lindqvist")
AMOUNTS = ("12.50", "100", "7.25", "1500", "33.30", "249.99")

# The bot without its send limit: what `python -m bot` runs, with the class attribute raised.
_UNLIMITED = (
    "import bot.cluster, bot.__main__\n"
    "bot.cluster.SharedRateLimiter.OVERALL_PER_SECOND = 1_000_000.0\n"
    "bot.__main__.main()\n"
)


# --------------------------------------------------------------------------- set-ups


@dataclass(frozen=True)
class Setup:
    key: str
    name: str
    postgres: bool
    processes: int


SETUPS = (
    Setup("sqlite", "1 process, SQLite", postgres=False, processes=1),
    Setup("postgres", "1 process, PostgreSQL", postgres=True, processes=1),
    Setup("postgres-x2", "2 processes, PostgreSQL", postgres=True, processes=2),
)


@dataclass
class Result:
    setup: Setup
    invoices: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    by_step: dict[str, list[float]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    calls_by_pid: Counter[str] = field(default_factory=Counter)
    peak_rss_mb: list[float] = field(default_factory=list)
    bot_cpu: list[float] = field(default_factory=list)
    postgres_cpu: float | None = None
    postgres_transactions: int | None = None
    """Transactions PostgreSQL counted in the bot's database from the load's start to the
    bots' stop (background work and shut-down included)."""
    harness_cpu: float = 0.0
    roles: list[str] = field(default_factory=list)
    start_seconds: list[float] = field(default_factory=list)
    provider_invoices: int = 0
    expected_provider_invoices: int = 0
    failures: list[str] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def chat_calls(self) -> int:
        """The calls the bot's send limit counts: those naming a chat."""
        return sum(n for m, n in self.calls.items() if m != "answerCallbackQuery")


class Unlimited(BotProcess):
    """A bot process that runs `python -c _UNLIMITED` instead of `python -m bot`."""

    async def start(self) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _UNLIMITED,
            stdin=asyncio.subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            env=self.env, cwd=self.workdir,
        )  # fmt: skip
        self._process, self.pid = process, process.pid


# --------------------------------------------------------------------------- /proc figures


def _proc_status(pid: int, key: str) -> float | None:
    """A `kB` figure of /proc/PID/status, in MB; None when it cannot be read."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return None


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (field 3 onwards)."""
    with contextlib.suppress(OSError, ValueError):
        text = Path(f"/proc/{pid}/stat").read_text()
        return text[text.rindex(")") + 2 :].split()
    return None


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far."""
    fields = _stat(pid)
    return None if fields is None else (int(fields[11]) + int(fields[12])) / _TICKS


def _postgres_cpu_seconds() -> float | None:
    """CPU time of the PostgreSQL server on this machine: every live process named postgres,
    plus what the postmaster's ended children used (its cutime + cstime)."""
    comms: dict[int, str] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    comms[int(entry.name)] = Path(entry.path, "comm").read_text().strip()
    total, found = 0.0, False
    for pid, comm in comms.items():
        fields = _stat(pid) if comm == "postgres" else None
        if fields is None:
            continue
        total, found = total + (int(fields[11]) + int(fields[12])) / _TICKS, True
        if comms.get(int(fields[1])) != "postgres":  # the postmaster: add its ended children
            total += (int(fields[13]) + int(fields[14])) / _TICKS
    return total if found else None


# --------------------------------------------------------------------------- PostgreSQL


def postgres_server(value: str) -> URL:
    url = make_url(value)
    if url.get_backend_name() != "postgresql":
        raise SystemExit(f"--postgres-url must be a PostgreSQL URL, like {DEFAULT_POSTGRES_URL}")
    return url.set(drivername="postgresql+asyncpg")


async def postgres_version(server: URL) -> str:
    """The server's version; raises when it cannot be reached within a few seconds."""
    engine = create_async_engine(server, poolclass=NullPool, connect_args={"timeout": 5})
    try:
        async with engine.connect() as connection:
            result = await connection.exec_driver_sql("SHOW server_version")
            return str(result.scalar())
    finally:
        await engine.dispose()


async def transactions(server: URL, database: str) -> int | None:
    """Commits + rollbacks PostgreSQL has counted in `database` (its statistics, which a
    backend reports within about a second of going idle, and when it ends)."""
    engine = create_async_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            result = await connection.exec_driver_sql(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1",
                (database,),
            )
            value = result.scalar()
            return None if value is None else int(value)
    except Exception:  # statistics are a bonus: never fail the run for them
        return None
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------- merchants


class StepFailed(Exception):
    pass


class Merchant:
    """Walks the whole conversation, acting as soon as the bot's answer is complete."""

    def __init__(self, telegram: FakeTelegram, log: CallLog, user: FakeUser, index: int) -> None:
        self.telegram, self.log, self.user, self.index = telegram, log, user, index
        self.latencies: dict[str, list[float]] = {}
        self.invoices = 0

    def _newest(self) -> BotMessage | None:
        messages = self.telegram.chat_messages(self.user.chat_id)
        return messages[-1] if messages else None

    def _record(self, step: str, seconds: float) -> None:
        self.latencies.setdefault(step, []).append(seconds)

    async def _until(self, keys: tuple[int | str, ...], done: Callable[[], Any], step: str) -> Any:
        try:
            return await self.log.until(keys, done, timeout=STEP_TIMEOUT)
        except AssertionError:
            raise StepFailed(f"no answer to {step} within {STEP_TIMEOUT:.0f} s") from None

    async def say(self, step: str, text: str, button: str | None = None) -> BotMessage:
        """Type `text`; the answer is a new message (offering `button`, if given)."""
        newest = self._newest()
        last_id = newest.message_id if newest else 0
        sent = time.perf_counter()
        await self.user.send(text)

        def answered() -> BotMessage | None:
            message = self._newest()
            if message is None or message.message_id <= last_id:
                return None
            wanted = (button or "").casefold()
            if button is not None and not any(
                wanted in b.text.casefold() for b in message.buttons()
            ):
                raise StepFailed(f"{step}: the bot answered {message.text[:80]!r}")
            return message

        chat = self.user.chat_id
        message: BotMessage = await self._until((chat,), answered, step)
        self._record(step, self.log.last[chat] - sent)
        return message

    async def tap(
        self, step: str, message: BotMessage, label: str, done: Callable[[], BotMessage | None]
    ) -> BotMessage:
        """Press `label`; the answer is complete when the press is answered and `done()`."""
        sent = time.perf_counter()
        update_id = await self.user.press(message.button(label), message)
        query = str(self.telegram.update(update_id)["callback_query"]["id"])
        chat = self.user.chat_id
        result: BotMessage = await self._until(
            (chat, query), lambda: query in self.log.last and done(), step
        )
        self._record(step, max(self.log.last[chat], self.log.last[query]) - sent)
        return result

    def _edited(self, message: BotMessage) -> Callable[[], BotMessage | None]:
        def check() -> BotMessage | None:
            for current in self.telegram.chat_messages(message.chat_id):
                if current.message_id == message.message_id and current.edits > message.edits:
                    return current
            return None

        return check

    async def invoice(self, k: int) -> None:
        n = self.index * 7 + k
        await self.say("/new", "/new")
        question = await self.say("amount", AMOUNTS[n % len(AMOUNTS)], button="EUR")
        question = await self.tap("currency button", question, "EUR", self._edited(question))
        question = await self.say("title", f"Order {k + 1}", button="Natural person")
        await self.tap("Natural person", question, "Natural person", self._edited(question))
        await self.say("first name", FIRST_NAMES[n % len(FIRST_NAMES)])
        await self.say("last name", LAST_NAMES[(n // len(FIRST_NAMES)) % len(LAST_NAMES)])
        await self.say("date of birth", f"19{60 + n % 40}-0{1 + n % 9}-1{n % 10}")
        preview = await self.say("email", f"payer{self.index}.{k}@example.org", button="Confirm")
        await self.tap("Confirm", preview, "Confirm", lambda: forwardable(self.telegram, preview))
        self.invoices += 1

    async def run(self, invoices: int) -> str | None:
        """Make `invoices` invoices; what went wrong, or None."""
        try:
            for k in range(invoices):
                await self.invoice(k)
        except (StepFailed, AssertionError) as error:
            return f"merchant {self.user.id}, invoice {self.invoices + 1}: {error}"
        return None


# --------------------------------------------------------------------------- one set-up


async def stop(bot: BotProcess) -> None:
    """SIGTERM, so the bot shuts down as in production; SIGKILL if it takes too long."""
    if bot.pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(bot.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(bot.reap(), STOP_TIMEOUT)
    await bot.close()


async def role_of(port: int) -> str:
    async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
        try:
            body = (await client.get(f"http://127.0.0.1:{port}/healthz")).json()
        except (httpx.HTTPError, ValueError):
            return "?"
    return str(body.get("role", "?")) if isinstance(body, dict) else "?"


def log_findings(path: Path) -> list[str]:
    """Lines at WARNING and above (the bots log nothing below), tracebacks' last lines."""
    found: list[str] = []
    with contextlib.suppress(OSError):
        lines = path.read_text(errors="replace").splitlines()
        for i, line in enumerate(lines):
            if re.search(r"\b(WARNING|ERROR|CRITICAL)\b", line):
                found.append(re.sub(r"^\S+ \S+ ", "", line)[:160])
            elif line.startswith("Traceback"):
                tail = next((t for t in lines[i + 1 :] if t and not t.startswith(" ")), line)
                found.append(f"traceback: {tail[:150]}")
    return found


async def run_setup(
    setup: Setup, workdir: Path, merchants: int, invoices: int, server: URL | None,
    unlimited: bool,
) -> Result:  # fmt: skip
    result = Result(setup)
    async with contextlib.AsyncExitStack() as stack:
        database_url: str | None = None
        if setup.postgres:
            assert server is not None
            database_url = await stack.enter_async_context(
                fresh_postgres_database(server, prefix="bench")
            )
        telegram = await stack.enter_async_context(FakeTelegram())
        provider = await stack.enter_async_context(FakeCryptoProcessing())
        log = CallLog()
        telegram.calls = log
        merchant_ids = list(range(FIRST_MERCHANT_ID, FIRST_MERCHANT_ID + merchants))
        warmup_count = WARMUP_MERCHANTS_PER_PROCESS * setup.processes
        warmup_ids = list(range(WARMUP_MERCHANT_ID, WARMUP_MERCHANT_ID + warmup_count))
        bots: list[BotProcess] = []
        try:
            for i in range(setup.processes):
                directory = workdir / setup.key / f"bot{i + 1}"
                directory.mkdir(parents=True)
                port = free_port()
                env = bot_environment(telegram, provider, directory, port, [])
                env.update(
                    MERCHANT_IDS=",".join(map(str, merchant_ids + warmup_ids)),
                    RECONCILE_INTERVAL_SECONDS="0",
                    LOG_LEVEL="WARNING",
                    DATA_KEY=DATA_KEY,
                    PROVIDER_TIMEOUT_SECONDS="20",
                )
                if database_url is not None:
                    env["DATABASE_URL"] = database_url
                bot = (Unlimited if unlimited else BotProcess)("exec", env, directory, port)
                bots.append(bot)
                # One at a time: the second process starts on a migrated database.
                started = time.perf_counter()
                await bot.start()
                await bot.wait_ready(timeout=60)
                result.start_seconds.append(time.perf_counter() - started)

            # Warm-up, not measured: a few merchants make one invoice each.
            warm = [
                Merchant(telegram, log, telegram.user(uid, f"W{uid}"), i)
                for i, uid in enumerate(warmup_ids)
            ]
            warm_failures = await asyncio.gather(*(m.run(1) for m in warm))
            result.failures += [f"warm-up: {f}" for f in warm_failures if f]
            result.roles = [await role_of(bot.port) for bot in bots]

            await quiet(telegram)
            database = make_url(database_url).database if database_url is not None else None
            xacts_before: int | None = None
            if server is not None and database is not None:
                await asyncio.sleep(1.5)  # the warm-up's statistics reach pg_stat_database
                xacts_before = await transactions(server, database)
            users = [telegram.user(uid, f"M{uid}") for uid in merchant_ids]
            crowd = [Merchant(telegram, log, user, i) for i, user in enumerate(users)]
            pids = [bot.pid for bot in bots if bot.pid is not None]
            cpu_before = [_cpu_seconds(pid) or 0.0 for pid in pids]
            pg_before = _postgres_cpu_seconds() if setup.postgres else None
            harness_before = time.process_time()
            start = len(log)
            started = time.perf_counter()
            outcomes = await asyncio.gather(*(m.run(invoices) for m in crowd))
            result.seconds = time.perf_counter() - started
            result.harness_cpu = time.process_time() - harness_before
            result.bot_cpu = [
                (_cpu_seconds(pid) or 0.0) - before
                for pid, before in zip(pids, cpu_before, strict=True)
            ]
            if pg_before is not None:
                pg_after = _postgres_cpu_seconds()
                result.postgres_cpu = None if pg_after is None else pg_after - pg_before
            await quiet(telegram)
            result.calls = Counter(c.method for c in log[start:] if c.method != "getUpdates")
            result.failures += [f for f in outcomes if f]
            result.invoices = sum(m.invoices for m in crowd)
            for merchant in crowd:
                for step, values in merchant.latencies.items():
                    result.by_step.setdefault(step, []).extend(values)
                    result.latencies.extend(values)
            result.peak_rss_mb = [_proc_status(pid, "VmHWM") or 0.0 for pid in pids]
            result.provider_invoices = len(provider.invoices)
            result.expected_provider_invoices = result.invoices + sum(m.invoices for m in warm)
        finally:
            await asyncio.gather(*(stop(bot) for bot in bots))
            for bot in bots:
                result.log_lines += log_findings(bot.log_path)
        if server is not None and database is not None and xacts_before is not None:
            await asyncio.sleep(0.5)  # the ended backends' last statistics
            xacts_after = await transactions(server, database)
            if xacts_after is not None:
                result.postgres_transactions = xacts_after - xacts_before
    return result


# --------------------------------------------------------------------------- report


def _ms(values: list[float], share: float) -> str:
    return f"{percentile(values, share) * 1e3:.0f}" if values else "-"


def table(results: list[Result]) -> list[str]:
    head = (
        f"{'setup':<26}{'invoices':>9}{'invoices/s':>12}{'step p50 ms':>13}{'step p99 ms':>13}"
        f"{'API calls/invoice':>19}{'peak RSS MB':>14}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        if r.error is not None:
            lines.append(f"{r.setup.name:<26}  not measured: {r.error}")
            continue
        rate = r.invoices / r.seconds if r.seconds else 0.0
        per_invoice = sum(r.calls.values()) / r.invoices if r.invoices else 0.0
        rss = "+".join(f"{mb:.0f}" for mb in r.peak_rss_mb) or "-"
        lines.append(
            f"{r.setup.name:<26}{r.invoices:>9}{rate:>12.2f}{_ms(r.latencies, 0.5):>13}"
            f"{_ms(r.latencies, 0.99):>13}{per_invoice:>19.2f}{rss:>14}"
        )
    return lines


def details(r: Result, cpus: int) -> list[str]:
    if r.error is not None:
        return []
    lines = [f"{r.setup.name}:"]
    starts = ", ".join(f"{s:.1f} s" for s in r.start_seconds)
    lines.append(f"  start to /healthz 200 {starts}; roles after warm-up: {', '.join(r.roles)}")
    lines.append(
        f"  load                  {r.invoices} invoices in {r.seconds:.1f} s; "
        f"{r.chat_calls / r.seconds if r.seconds else 0:.1f} chat-bound calls/s "
        "(the bot's send limit: 30/s for all processes together)"
    )
    if r.invoices:
        breakdown = ", ".join(f"{m} {n / r.invoices:.2f}" for m, n in sorted(r.calls.items()))
        lines.append(f"  calls per invoice     {breakdown}")
    cpu = [f"bot{'s' if len(r.bot_cpu) > 1 else ''} " + "+".join(f"{s:.1f}" for s in r.bot_cpu)]
    if r.postgres_cpu is not None:
        cpu.append(f"postgres {r.postgres_cpu:.1f}")
    cpu.append(f"harness (fakes + merchants) {r.harness_cpu:.1f}")
    available = r.seconds * cpus
    lines.append(
        f"  CPU during load       {', '.join(cpu)} s of {available:.0f} s available "
        f"({cpus} CPUs × {r.seconds:.1f} s)"
    )
    if r.postgres_transactions is not None and r.invoices:
        lines.append(
            f"  PostgreSQL            {r.postgres_transactions / r.invoices:.0f} transactions "
            f"per invoice ({r.postgres_transactions / r.seconds:.0f}/s; pg_stat_database, "
            "from the load's start to the bots' stop, background work included)"
        )
    if r.by_step:
        slowest = sorted(r.by_step.items(), key=lambda kv: -statistics.median(kv[1]))[:3]
        lines.append(
            "  slowest steps (p50/p99 ms)  "
            + "; ".join(f"{s} {_ms(v, 0.5)}/{_ms(v, 0.99)}" for s, v in slowest)
        )
    if r.provider_invoices != r.expected_provider_invoices:
        lines.append(
            f"  PROVIDER MISMATCH     {r.provider_invoices} invoices at the provider for "
            f"{r.expected_provider_invoices} cards (warm-up included)"
        )
    if r.failures:
        lines.append(f"  FAILED CONVERSATIONS  {len(r.failures)}:")
        lines += [f"    {f}" for f in r.failures[:5]]
    if r.log_lines:
        lines.append(f"  bot logs              {len(r.log_lines)} line(s) at WARNING or above:")
        lines += [f"    {n}x {text}" for text, n in Counter(r.log_lines).most_common(5)]
    else:
        lines.append("  bot logs              nothing at WARNING or above")
    return lines


# --------------------------------------------------------------------------- main


async def run(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    cpus = os.cpu_count() or 1
    server = postgres_server(args.postgres_url)
    wanted = [s for s in SETUPS if s.key in args.setups]
    version: str | None = None
    unreachable: str | None = None
    if any(s.postgres for s in wanted):
        try:
            version = await postgres_version(server)
        except Exception as error:  # any failure: measure SQLite only
            unreachable = f"{type(error).__name__}: {str(error)[:120]}"
    where = server.render_as_string(hide_password=True)
    print(
        f"bench.cluster: {args.merchants} merchants at once, {args.invoices_per_merchant} "
        f"invoice(s) each, the whole conversation ({STEPS_PER_INVOICE} inputs: /new, amount, "
        "currency button, title, Natural person, first name, last name, date of birth, email, "
        "Confirm → card and message to forward); no think time"
    )
    print(
        f"machine: {cpus} CPUs, {platform.machine()}, Python {platform.python_version()}; "
        + (f"PostgreSQL {version} at {where}" if version else "PostgreSQL not used")
        + "; bots are `python -m bot` subprocesses"
        + (" WITHOUT the 30/s send limit (--no-send-limit)" if args.no_send_limit else "")
        + "; fakes and merchants share this process"
    )
    print(
        "step latency = merchant's input queued → the bot's last Bot API call of its answer; "
        "API calls/invoice = every call but getUpdates during the load ÷ invoices"
    )
    if unreachable is not None:
        print(f"PostgreSQL at {where} cannot be reached ({unreachable}): only SQLite is measured")
        wanted = [s for s in wanted if not s.postgres]
    print(flush=True)

    uvicorn_errors = logging.getLogger("uvicorn.error")
    uvicorn_errors.addFilter(_drop_client_disconnects)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        for setup in wanted:
            print(f"… {setup.name}", file=sys.stderr, flush=True)
            try:
                result = await run_setup(
                    setup, Path(tmp), args.merchants, args.invoices_per_merchant,
                    server if setup.postgres else None, args.no_send_limit,
                )  # fmt: skip
            except Exception as error:  # report it, go on with the next one
                result = Result(setup, error=f"{type(error).__name__}: {str(error)[:300]}")
            results.append(result)
    print("\n".join(table(results)))
    print()
    for result in results:
        for line in details(result, cpus):
            print(line)
    print()
    print(f"wall time of this run: {time.perf_counter() - began:.1f} s")
    bad = any(r.error or r.failures for r in results) or any(
        r.provider_invoices != r.expected_provider_invoices for r in results if r.error is None
    )
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--merchants", type=int, default=None, help="default 50 (10 with --quick)")
    parser.add_argument(
        "--invoices-per-merchant", type=int, default=None, help="default 2 (1 with --quick)"
    )
    parser.add_argument("--quick", action="store_true", help="10 merchants × 1 invoice")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("TEST_DATABASE_URL", "").strip() or DEFAULT_POSTGRES_URL,
        help="a PostgreSQL server where this user may create databases",
    )
    parser.add_argument(
        "--setups",
        default=",".join(s.key for s in SETUPS),
        help="which set-ups, comma-separated: " + ", ".join(s.key for s in SETUPS),
    )
    parser.add_argument(
        "--no-send-limit",
        action="store_true",
        help="lift the bot's 30 messages/s limit inside the bot processes",
    )
    args = parser.parse_args(argv)
    if args.merchants is None:
        args.merchants = 10 if args.quick else 50
    if args.invoices_per_merchant is None:
        args.invoices_per_merchant = 1 if args.quick else 2
    args.setups = [key.strip() for key in args.setups.split(",") if key.strip()]
    unknown = set(args.setups) - {s.key for s in SETUPS}
    if unknown or args.merchants < 1 or args.invoices_per_merchant < 1:
        parser.error(f"unknown set-up(s) {sorted(unknown)}" if unknown else "counts must be ≥ 1")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
