"""Several processes, one bot (PostgreSQL): who leads, who handles which chat, who polls.

Each process keeps one dedicated PostgreSQL connection for coordination:
- the **leader lock** (a session advisory lock): the leader polls Telegram (polling mode) and
  runs the notifier, the settler and the periodic jobs. PostgreSQL releases the lock the
  moment the leader's connection drops (a killed process, a lost machine), and a standby
  that retries every `RETRY_SECONDS` takes over;
- one **chat lock** per chat being processed, so one chat's updates are handled by one process
  at a time, in update_id order, while different chats run in parallel across processes;
- **LISTEN** on one channel: a stored update or a status change elsewhere wakes this process
  at once (a periodic sweep covers a missed notification).

Updates reach the shared inbox (`telegram_update`) from the poller or from any process taking
a webhook delivery, and are confirmed to Telegram only once stored, so none is lost; the
inbox's key makes a re-sent update a no-op, so none is handled twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiolimiter import AsyncLimiter
from sqlalchemy.engine import make_url
from telegram import Bot, Update
from telegram.error import Conflict, NetworkError, RetryAfter, TimedOut
from telegram.ext import AIORateLimiter

from storage.coordination import NOTIFY_CHANNEL, Busy, ProcessRegistry, UpdateInbox
from storage.repositories import Sessions
from storage.types import utcnow

logger = logging.getLogger(__name__)

RETRY_SECONDS = 1.0  # how often a standby tries the leader lock, and the liveness check
SWEEP_SECONDS = 1.0  # the inbox is looked at this often even without a notification
HEARTBEAT_SECONDS = 2.0
STALE_AFTER = dt.timedelta(seconds=6)  # a process not seen for this long is not counted
CLAIM_TTL = dt.timedelta(minutes=3)  # longer than any handler (provider calls time out sooner)
_LEADER_LOCK = "crypto-invoice-bot:leader"


def chat_key_of(update: Update) -> int:
    """The chat (or, without one, the user) whose updates must keep their order."""
    if update.effective_chat is not None:
        return update.effective_chat.id
    if update.effective_user is not None:
        return update.effective_user.id
    return 0


def asyncpg_connect_args(database_url: str) -> tuple[str, dict[str, Any]]:
    """SQLAlchemy's `postgresql+asyncpg://…?…` as asyncpg's DSN and keyword arguments.

    Query parameters SQLAlchemy understands are not server settings to asyncpg: `ssl` /
    `sslmode` become asyncpg's `ssl=`, the dialect's own options are dropped.
    """
    url = make_url(database_url)
    query = dict(url.query)
    kwargs: dict[str, Any] = {}
    ssl = query.pop("ssl", None) or query.pop("sslmode", None)
    if ssl:
        kwargs["ssl"] = ssl if isinstance(ssl, str) else ssl[0]
    dsn = url.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
    return dsn, kwargs


class CoordinationLost(Exception):
    """The coordination connection is gone or does not answer: what it held is released."""


class Coordinator:
    """The coordination connection: the leader lock, chat locks and notifications.

    Everything held here is tied to one connection; `generation` counts connections, so a
    drain started under an older one knows its chat lock is gone.
    """

    QUERY_SECONDS = 5.0  # a query (or the wait for the connection) longer than this: lost

    def __init__(
        self,
        database_url: str,
        *,
        on_notification: Callable[[str], None],
        on_leadership: Callable[[bool], Awaitable[None]],
    ) -> None:
        self._dsn, self._connect_kwargs = asyncpg_connect_args(database_url)
        self._on_notification = on_notification
        self._on_leadership = on_leadership
        self._connection: asyncpg.Connection | None = None
        self._io = asyncio.Lock()  # one query at a time on the connection
        self._chats: dict[int, int] = {}  # chat -> the generation its lock was taken under
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.generation = 0
        self.is_leader = False

    async def start(self) -> None:
        await self._connect()
        await self._try_lead()
        self._task = asyncio.create_task(self._watch(), name="coordinator")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.is_leader:
            await self._set_leader(False)
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close(timeout=5)  # releases every lock it held
            self._connection = None

    @property
    def server_pid(self) -> int | None:
        """The PostgreSQL backend of the coordination connection (for operators and tests)."""
        return self._connection.get_server_pid() if self._connection is not None else None

    async def _query(self, sql: str, *args: Any) -> Any:
        """One query on the coordination connection, bounded in time: a connection that
        stopped answering (half-open) counts as lost rather than stalling everything."""
        try:
            async with asyncio.timeout(self.QUERY_SECONDS):
                async with self._io:
                    if self._connection is None:
                        raise CoordinationLost("no connection")
                    return await self._connection.fetchval(sql, *args)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise CoordinationLost(type(exc).__name__) from exc

    async def notify(self, message: str) -> None:
        """Tell every process (this one too) something changed; best effort."""
        try:
            await self._query("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, message)
        except CoordinationLost:
            logger.warning("could not notify the other processes; their sweep will catch up")

    async def lock_chat(self, chat_key: int) -> int | None:
        """Take the chat's lock unless this or another process is processing it; the
        generation it was taken under, or None."""
        if chat_key in self._chats or self._connection is None:
            return None
        generation = self.generation
        try:
            taken = await self._query(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", f"chat:{chat_key}"
            )
        except CoordinationLost as exc:
            logger.warning("chat lock not taken (%s)", exc)
            return None
        if not taken:
            return None
        if generation != self.generation:  # the connection changed meanwhile
            return None
        self._chats[chat_key] = generation
        return generation

    def holds(self, chat_key: int, generation: int | None = None) -> bool:
        """Whether this process holds the chat's lock (under `generation`, when given)."""
        held = self._chats.get(chat_key)
        return held is not None and (generation is None or held == generation == self.generation)

    async def unlock_chat(self, chat_key: int, generation: int) -> None:
        """Release the lock taken under `generation`; a lock of a lost connection is gone
        already, and must not release one taken since."""
        if self._chats.get(chat_key) != generation:
            return
        del self._chats[chat_key]
        if generation != self.generation:
            return
        with contextlib.suppress(CoordinationLost):
            await self._query(
                "SELECT pg_advisory_unlock(hashtextextended($1, 0))", f"chat:{chat_key}"
            )

    async def _connect(self) -> None:
        connection = await asyncpg.connect(
            self._dsn, timeout=10, command_timeout=self.QUERY_SECONDS, **self._connect_kwargs
        )
        await connection.add_listener(NOTIFY_CHANNEL, self._listener)
        self._connection = connection
        self.generation += 1

    def _listener(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self._on_notification(payload)

    async def _try_lead(self) -> None:
        if self.is_leader or self._connection is None:
            return
        won = await self._query("SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                                _LEADER_LOCK)  # fmt: skip
        if won:
            await self._set_leader(True)

    async def _set_leader(self, leader: bool) -> None:
        self.is_leader = leader
        logger.info("this process is %s", "the leader" if leader else "no longer the leader")
        try:
            await self._on_leadership(leader)
        except Exception:  # the lock is still held: the leader's work retries on its own
            logger.exception("taking up (or handing over) the leader's work failed")

    def _lost(self, reason: str) -> None:
        logger.warning("coordination connection lost (%s); retrying", reason)
        self._chats.clear()
        self.generation += 1  # drains of the old connection stop before their next update
        if self._connection is not None:
            self._connection.terminate()
            self._connection = None

    async def _watch(self) -> None:
        """Check the connection; on loss give up leadership and chats, then reconnect."""
        while not self._stopping:
            await asyncio.sleep(RETRY_SECONDS)
            try:
                if self._connection is None:
                    await self._connect()
                await self._query("SELECT 1")
                await self._try_lead()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is unreachable: whatever we held is gone
                self._lost(str(exc) or type(exc).__name__)
                if self.is_leader:
                    await self._set_leader(False)


class InboxDispatcher:
    """Processes stored updates: each chat under its lock, in update_id order."""

    def __init__(
        self,
        inbox: UpdateInbox,
        coordinator: Coordinator,
        process: Callable[[dict[str, Any]], Awaitable[None]],
        owner: str,
    ) -> None:
        self._owner = owner  # this process's id, as its heartbeats name it
        self._inbox = inbox
        self._coordinator = coordinator
        self._process = process
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._drains: set[asyncio.Task[None]] = set()
        self._stopping = False
        # Chats another process was draining when last tried: it drains every update of the
        # chat before letting go, so they are left to it until the next sweep.
        self._elsewhere: dict[int, float] = {}
        self._draining: set[int] = set()  # chats with a drain task alive (any generation)

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="inbox")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
        if self._drains:  # let each chat finish the update in hand
            await asyncio.wait(self._drains, timeout=10)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                now = asyncio.get_running_loop().time()
                for chat_key in await self._inbox.pending_chats():
                    if self._elsewhere.get(chat_key, 0.0) > now or chat_key in self._draining:
                        continue
                    generation = await self._coordinator.lock_chat(chat_key)
                    if generation is not None:
                        self._elsewhere.pop(chat_key, None)
                        self._draining.add(chat_key)
                        task = asyncio.create_task(self._drain(chat_key, generation))
                        self._drains.add(task)
                        task.add_done_callback(self._drains.discard)
                    elif not self._coordinator.holds(chat_key):
                        self._elsewhere[chat_key] = now + SWEEP_SECONDS
                if len(self._elsewhere) > 1000:
                    self._elsewhere = {k: v for k, v in self._elsewhere.items() if v > now}
            except Exception:
                logger.exception("inbox round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=SWEEP_SECONDS)
            self._wake.clear()

    async def _drain(self, chat_key: int, generation: int) -> None:
        try:
            # Stop as soon as the lock may be gone (a lost connection): another process may
            # take the chat, and one chat is never processed in two places at once.
            while not self._stopping and self._coordinator.holds(chat_key, generation):
                row = await self._inbox.claim_next(
                    chat_key, self._owner, ttl=CLAIM_TTL, live_since=utcnow() - STALE_AFTER
                )
                if row is None:
                    break
                if isinstance(row, Busy):  # another process is still on it (a lost lock)
                    self._elsewhere[chat_key] = asyncio.get_running_loop().time() + SWEEP_SECONDS
                    break
                try:
                    await self._process(json.loads(row.payload))
                except Exception:  # the handler's own error path has told the user
                    logger.exception("update %s failed", row.update_id)
                await self._inbox.mark_done(row.update_id)
        finally:
            self._draining.discard(chat_key)
            await self._coordinator.unlock_chat(chat_key, generation)
            self.wake()  # an update stored while we unlocked is picked up at once


class Poller:
    """getUpdates while this process leads; each update is stored before it is confirmed."""

    def __init__(
        self, bot: Bot, inbox: UpdateInbox, on_stored: Callable[[], None], timeout: int
    ) -> None:
        self._bot, self._inbox, self._on_stored, self.timeout = bot, inbox, on_stored, timeout
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self._task = asyncio.create_task(self._run(), name="poller")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        offset: int | None = None
        webhook_deleted = False
        while True:
            try:
                if not webhook_deleted:  # polling and a webhook exclude each other
                    await self._bot.delete_webhook()
                    webhook_deleted = True
                updates = await self._bot.get_updates(
                    offset=offset, timeout=self.timeout, allowed_updates=Update.ALL_TYPES
                )
            except RetryAfter as exc:
                await asyncio.sleep(float(getattr(exc, "retry_after", 1) or 1))
                continue
            except Conflict:  # another poller still holds Telegram's long poll: it ends soon
                logger.info("Telegram reports another poller; retrying")
                await asyncio.sleep(RETRY_SECONDS)
                continue
            except (TimedOut, NetworkError) as exc:
                logger.warning("getUpdates failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            except Exception:  # a database hiccup: nothing was confirmed, so nothing is lost
                logger.exception("polling round failed")
                await asyncio.sleep(RETRY_SECONDS)
                continue
            try:
                await self._inbox.store_many(
                    [(u.update_id, chat_key_of(u), u.to_json()) for u in updates]
                )
            except Exception:
                logger.exception("could not store updates; Telegram will send them again")
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if updates:
                offset = updates[-1].update_id + 1  # confirmed only now: all are stored
                self._on_stored()


class SharedRateLimiter(AIORateLimiter):
    """PTB's limiter, with the per-bot overall rate split between the live processes: the
    30 messages a second Telegram allows one bot hold for all processes together."""

    OVERALL_PER_SECOND = 30.0

    def __init__(self, max_retries: int = 2) -> None:
        super().__init__(max_retries=max_retries, overall_max_rate=self.OVERALL_PER_SECOND)
        self.share = 1

    def set_share(self, processes: int) -> None:
        processes = max(1, processes)
        if processes != self.share:
            self.share = processes
            # PTB keeps the overall limiter in this attribute; a new one takes the new rate.
            self._base_limiter = AsyncLimiter(self.OVERALL_PER_SECOND / processes, 1)
            logger.info("sending at most %.1f messages/s: %d process(es) share the bot's limit",
                        self.OVERALL_PER_SECOND / processes, processes)  # fmt: skip


class Cluster:
    """This process's part in a bot served by several processes sharing PostgreSQL."""

    def __init__(
        self,
        *,
        database_url: str,
        polling: bool,
        bot: Bot,
        sessions: Sessions,
        process_update: Callable[[Update], Awaitable[None]],
        on_change: Callable[[], None],
        on_leader: Callable[[], Awaitable[None]],
        limiter: SharedRateLimiter | None,
    ) -> None:
        self.process_id = f"{socket.gethostname()[:20]}-{os.getpid()}-{secrets.token_hex(3)}"
        self.inbox = UpdateInbox(sessions, notify=True)
        self._registry = ProcessRegistry(sessions)
        self._bot = bot
        self._process_update = process_update
        self._on_change = on_change
        self._on_leader = on_leader
        self._limiter = limiter
        self.coordinator = Coordinator(
            database_url, on_notification=self._notified, on_leadership=self._leadership
        )
        self.dispatcher = InboxDispatcher(
            self.inbox, self.coordinator, self._process, self.process_id
        )
        self.poller = Poller(bot, self.inbox, self.dispatcher.wake, 30) if polling else None
        self._heartbeat: asyncio.Task[None] | None = None
        self.started = False

    @property
    def is_leader(self) -> bool:
        return self.coordinator.is_leader

    @property
    def role(self) -> str:
        """poller / standby in polling mode, webhook in webhook mode."""
        if self.poller is None:
            return "webhook"
        return "poller" if self.poller.running else "standby"

    async def start(self, poll_timeout: int) -> None:
        if self.poller is not None:
            self.poller.timeout = poll_timeout
        self.dispatcher.start()
        await self.coordinator.start()
        await self._beat()
        self._heartbeat = asyncio.create_task(self._beat_forever(), name="heartbeat")
        self.started = True  # /healthz: ready, and its role settled

    async def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        if self.poller is not None:
            await self.poller.stop()
        await self.dispatcher.stop()
        await self.coordinator.stop()
        with contextlib.suppress(Exception):
            await self._registry.forget(self.process_id, stale_before=utcnow() - STALE_AFTER * 10)

    async def live_processes(self) -> set[str]:
        """Processes seen lately (this one included)."""
        return {row.id for row in await self._registry.live(utcnow() - STALE_AFTER)}

    async def receive(self, payload: dict[str, Any]) -> None:
        """A webhook delivery: stored (once) before Telegram gets its 200."""
        update = Update.de_json(payload, self._bot)
        await self.inbox.store(update.update_id, chat_key_of(update), json.dumps(payload))
        self.dispatcher.wake()

    def changed(self) -> None:
        """Something the leader acts on changed here (a status, an unsettled attempt)."""
        task = asyncio.get_running_loop().create_task(self.coordinator.notify("changes"))
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _process(self, payload: dict[str, Any]) -> None:
        await self._process_update(Update.de_json(payload, self._bot))

    def _notified(self, payload: str) -> None:
        if payload == "updates":
            self.dispatcher.wake()
        elif self.is_leader:
            self._on_change()

    async def _leadership(self, leader: bool) -> None:
        if self.poller is not None:
            if leader:
                self.poller.start()
            else:
                await self.poller.stop()
        if leader:
            await self._on_leader()
            self._on_change()
        with contextlib.suppress(Exception):
            await self._beat()

    async def _beat(self) -> None:
        await self._registry.beat(self.process_id, self.role, self.is_leader)
        if self._limiter is not None:
            live = await self._registry.live(utcnow() - STALE_AFTER)
            self._limiter.set_share(len(live))

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            if self.is_leader and self.poller is not None and not self.poller.running:
                logger.warning("the poller had stopped; starting it again")
                self.poller.start()
            try:
                await self._beat()
            except Exception as exc:
                logger.warning("heartbeat failed (%s)", type(exc).__name__)


_background: set[asyncio.Task[None]] = set()
