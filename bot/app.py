"""The one app factory: wires settings → storage, provider, services → Telegram handlers.

Production (`bot.__main__`) and the tests build the bot through `build_runtime`; tests only
point the base URLs at their fake servers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from telegram import BotCommand, BotCommandScopeChat, Update
from telegram.error import BadRequest
from telegram.ext import (
    Application,
    BusinessConnectionHandler,
    CallbackQueryHandler,
    ChosenInlineResultHandler,
    CommandHandler,
    ContextTypes,
    InlineQueryHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.cluster import Cluster, SharedRateLimiter
from bot.config import Settings, TelegramMode
from bot.data_key import resolve_data_key
from bot.handlers import admin, common, customers, lifecycle, new_invoice, reach, views
from bot.handlers.callback_data import (
    BusinessSend,
    CustomerButton,
    DraftButton,
    InvoiceButton,
    ListPage,
    NewInvoice,
    PayerButton,
    matcher,
)
from bot.handlers.context import BotApplication, BotContext, BotServices
from bot.i18n import Catalog
from bot.providers import ProviderRegistry, build_providers
from bot.providers.base import ProviderError
from bot.services.access import AccessPolicy, Role, commands_for
from bot.services.conversation import STEPS, ConversationService, Step
from bot.services.currencies import CurrencyCatalog
from bot.services.customers import CustomerService
from bot.services.drafts import DraftCodec, DraftService
from bot.services.invoices import InvoiceService
from bot.services.payments import PaymentService
from bot.services.sharing import ShareService
from bot.single_process import ProcessLock
from bot.update_processor import PerChatUpdateProcessor
from bot.web import UPDATES_ROUTE, build_web_app
from storage.engine import create_engine, create_session_factory, migrate
from storage.repositories import (
    AlertRepository,
    CustomerRepository,
    DraftRepository,
    InvoiceRepository,
    PaymentRepository,
)
from storage.sealing import Sealer
from storage.sharing import BusinessRepository, ShareRepository
from storage.types import utcnow

logger = logging.getLogger(__name__)


def register_handlers(app: BotApplication, settings: Settings) -> None:
    # Group -1 runs first for every update: unknown users stop there.
    app.add_handler(TypeHandler(Update, common.gate), group=-1)
    # Group 0, first match wins. The conversation keeps no state here: each handler reads
    # the merchant's open draft from the database, so order only decides who gets what.
    app.add_handler(CommandHandler("new", new_invoice.start_new))
    app.add_handler(CallbackQueryHandler(new_invoice.start_new, pattern=matcher(NewInvoice)))
    app.add_handler(
        CallbackQueryHandler(new_invoice.start_new, pattern=matcher(InvoiceButton, "again"))
    )
    app.add_handler(CommandHandler("cancel", new_invoice.cancel))
    app.add_handler(
        CallbackQueryHandler(new_invoice.confirm, pattern=matcher(DraftButton, "confirm"))
    )
    app.add_handler(CallbackQueryHandler(new_invoice.on_button, pattern=matcher(DraftButton)))
    app.add_handler(CommandHandler("start", common.start))
    app.add_handler(CommandHandler("help", common.help_command))
    app.add_handler(CommandHandler("invoices", admin.list_invoices))
    app.add_handler(CommandHandler("invoice", admin.show_invoice))
    app.add_handler(CallbackQueryHandler(admin.list_page, pattern=matcher(ListPage)))
    app.add_handler(CommandHandler("cancel_invoice", lifecycle.cancel_invoice_command))
    app.add_handler(CommandHandler("refresh", lifecycle.refresh_command))
    app.add_handler(CommandHandler("callbacks", lifecycle.callbacks_command))
    app.add_handler(CommandHandler("unmatched", lifecycle.unmatched_command))
    app.add_handler(CallbackQueryHandler(lifecycle.card_button, pattern=matcher(InvoiceButton)))
    app.add_handler(CallbackQueryHandler(reach.payer_button, pattern=matcher(PayerButton)))
    app.add_handler(CallbackQueryHandler(reach.business_send, pattern=matcher(BusinessSend)))
    app.add_handler(InlineQueryHandler(reach.inline_query))
    app.add_handler(ChosenInlineResultHandler(reach.inline_chosen))
    app.add_handler(BusinessConnectionHandler(reach.business_connection))
    app.add_handler(MessageHandler(filters.UpdateType.BUSINESS_MESSAGES, reach.business_message))
    app.add_handler(CommandHandler("customers", customers.list_customers))
    app.add_handler(CommandHandler("forget", customers.forget_command))
    app.add_handler(CallbackQueryHandler(customers.forget_button, pattern=matcher(CustomerButton)))
    app.add_handler(CallbackQueryHandler(common.outside_conversation))  # anything else: stale
    app.add_handler(
        MessageHandler(
            filters.UpdateType.MESSAGE & filters.TEXT & ~filters.COMMAND, new_invoice.on_text
        )
    )
    app.add_handler(
        MessageHandler(filters.UpdateType.MESSAGE & ~filters.COMMAND, new_invoice.on_other_message)
    )
    app.add_error_handler(common.on_error)


async def _reconcile(context: BotContext) -> None:
    """Job: catch up on missed callbacks, flag what cannot be checked, wake the notifier."""
    services = context.services
    try:
        result = await services.payments.reconcile()
    except ProviderError as exc:
        logger.warning("reconciliation skipped: provider %s", exc.code)
        return
    if result.checked:
        logger.info(
            "reconciliation: %d open invoice(s), %d changed", result.checked, result.changed
        )


async def _erase_unused_customers(context: BotContext) -> None:
    """Job (daily): the retention rule, PERSONAL_DATA_RETENTION_DAYS."""
    services = context.services
    days = services.settings.personal_data_retention_days
    if not days:
        return
    erased = await services.customers.erase_unused_since(utcnow() - dt.timedelta(days=days))
    if erased:
        logger.info("retention: erased the sender data of %d customer(s) unused for %d days",
                    erased, days)  # fmt: skip


class HttpServer:
    """uvicorn in the bot's loop, on a socket we bind ourselves so port 0 works in tests."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        self._app, self._host, self._port = app, host, port
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.port: int | None = None

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app, lifespan="off", log_level="warning", access_log=False,
            timeout_graceful_shutdown=2,
        )  # fmt: skip
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="http")
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None


@dataclass
class BotRuntime:
    """Everything one running bot owns, started and stopped in the right order."""

    settings: Settings
    application: BotApplication
    engine: AsyncEngine
    providers: ProviderRegistry
    services: BotServices
    notifier: lifecycle.Notifier
    settler: lifecycle.Settler
    keeper: views.ViewKeeper
    http: HttpServer
    data_key: str = field(repr=False, default="")
    cluster: Cluster | None = None  # several processes share PostgreSQL
    stopped: bool = False
    _process_lock: ProcessLock | None = None

    def leads(self) -> bool:
        """Whether this process runs the background work (always, unless several share it)."""
        return self.cluster is None or self.cluster.is_leader

    def _leader_only(self, job: Callable[[BotContext], Awaitable[None]]) -> Any:
        async def run(context: BotContext) -> None:
            if self.leads():
                await job(context)

        return run

    async def start(self, *, poll_timeout: int = 30) -> None:
        settings = self.settings
        if settings.sqlite_path is not None:
            self._process_lock = ProcessLock(settings.sqlite_path)
            self._process_lock.acquire()
        await migrate(self.engine, self.data_key)
        await self.services.customers.check_key()
        if self.cluster is None:  # with several processes, the leader does it (see below)
            await self._recover_interrupted()
        await self.application.initialize()
        self.services.sharing.inline_enabled = bool(self.application.bot.supports_inline_queries)
        await self._set_commands()
        await self.services.currencies.all()
        await self.http.start()
        logger.info("HTTP server listening on port %s", self.http.port)
        if settings.telegram_mode is TelegramMode.WEBHOOK:
            assert settings.public_base_url and settings.telegram_webhook_secret
            await self.application.bot.set_webhook(
                url=settings.public_base_url + UPDATES_ROUTE,
                secret_token=settings.telegram_webhook_secret.get_secret_value(),
                allowed_updates=Update.ALL_TYPES,
            )
        elif self.cluster is None:
            assert self.application.updater is not None
            await self.application.updater.start_polling(
                poll_interval=0.0, timeout=poll_timeout, allowed_updates=Update.ALL_TYPES
            )
        await self.application.start()
        if self.cluster is not None:
            await self.cluster.start(poll_timeout)
        self.notifier.start()
        self.notifier.wake()  # anything left untold by a previous run
        self.keeper.start()
        self.settler.start()  # and any attempt left unsettled
        assert self.application.job_queue is not None
        idle_check = min(60.0, max(0.2, settings.conversation_timeout_seconds / 4))
        jobs = self.application.job_queue
        jobs.run_repeating(
            self._leader_only(new_invoice.expire_idle),
            interval=idle_check,
            first=idle_check,
            name="idle-drafts",
        )
        if self.cluster is not None:
            jobs.run_repeating(
                self._leader_only(self._housekeeping), interval=5, first=5, name="housekeeping"
            )
        if settings.reconcile_interval_seconds > 0:
            self.application.job_queue.run_repeating(
                self._leader_only(_reconcile),
                interval=settings.reconcile_interval_seconds,
                first=1.0,
                name="reconcile",
            )
        if settings.personal_data_retention_days:
            self.application.job_queue.run_repeating(
                self._leader_only(_erase_unused_customers),
                interval=24 * 3600,
                first=2.0,
                name="retention",
            )
        logger.info(
            "bot started with provider %s in %s mode",
            self.providers.active.name,
            settings.telegram_mode.value,
        )
        if settings.public_base_url is None:
            logger.warning("PUBLIC_BASE_URL is not set: providers cannot send payment callbacks")
        if not settings.admin_ids and not settings.merchant_ids:
            logger.warning(
                "ADMIN_IDS and MERCHANT_IDS are empty: everyone is refused and shown their id; "
                "add yours and restart"
            )

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        await self.http.stop()
        if self.cluster is not None:
            await self.cluster.stop()
        await self.settler.stop()
        await self.notifier.stop()
        await self.keeper.stop()
        updater = self.application.updater
        if updater is not None and updater.running:
            await updater.stop()
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()
        await self.providers.aclose()
        await self.engine.dispose()
        if self._process_lock is not None:
            self._process_lock.release()
        logger.info("bot stopped")

    async def _recover_interrupted(self, *, release_leases: bool = True) -> None:
        """Attempts a stop left 'creating' become 'unknown' and are settled. With several
        processes, only those of a process no longer live, or older than any request could
        still be running (another process may be waiting for the provider's answer)."""
        if self.cluster is None:
            interrupted = await self.services.invoices.recover_interrupted()
        else:
            interrupted = await self.services.invoices.recover_interrupted(
                dt.timedelta(seconds=2 * self.settings.provider_timeout_seconds + 5),
                await self.cluster.live_processes(),
                release_leases=release_leases,
            )
        if interrupted:
            logger.warning(
                "%d invoice attempt(s) were interrupted by a stop; marked unknown", interrupted
            )

    async def _housekeeping(self, _context: BotContext) -> None:
        """Leader job (several processes): a dead process's attempts are recovered, and
        processed updates are forgotten after a day."""
        await self._recover_interrupted(release_leases=False)
        assert self.cluster is not None
        purged = await self.cluster.inbox.purge_done(utcnow() - dt.timedelta(days=1))
        if purged:
            logger.info("forgot %d processed update(s)", purged)

    async def _set_commands(self) -> None:
        """The menu shows each user the commands they may use: admins get theirs in their
        private chats, everyone else the merchant's."""
        catalog = self.services.catalog
        bot = self.application.bot
        for locale in catalog.locales:
            t = catalog.texts(locale)
            language = None if locale == "en" else locale
            refresh = self.services.payments.any_query
            merchant = [
                BotCommand(name, t(f"command-{name}"))
                for name in commands_for(Role.MERCHANT, refresh=refresh)
            ]
            await bot.set_my_commands(merchant, language_code=language)
            admin = [
                BotCommand(name, t(f"command-{name}"))
                for name in commands_for(Role.ADMIN, refresh=refresh)
            ]
            for admin_id in self.settings.admin_ids:
                try:
                    await bot.set_my_commands(
                        admin, scope=BotCommandScopeChat(admin_id), language_code=language
                    )
                except BadRequest:  # the admin has not opened a chat with the bot yet
                    logger.info("admin command menu not set for one admin (no chat yet)")


def build_runtime(
    settings: Settings, *, provider_transport: Any = None, steps: Sequence[Step] = STEPS
) -> BotRuntime:
    """Wire one bot. `steps` is the conversation's step table (an extension point: a
    deployment, or a test, may add a question without touching the chat layer)."""
    engine = create_engine(settings.database_url)
    sessions = create_session_factory(engine)
    providers = build_providers(settings, provider_transport)
    provider = providers.active
    data_key = resolve_data_key(settings)
    sealer = Sealer(data_key)
    customer_service = CustomerService(CustomerRepository(sessions), sealer)
    draft_repository = DraftRepository(sessions)
    draft_codec = DraftCodec(sealer)
    draft_service = DraftService(draft_repository, draft_codec)
    alerts = AlertRepository(sessions)
    payments = PaymentService(
        providers=providers,
        payments=PaymentRepository(sessions),
        allow_test_payments=settings.allow_test_payments,
    )
    currencies = CurrencyCatalog(
        provider, ttl_seconds=settings.currency_cache_seconds, common=settings.common_currencies
    )
    invoices = InvoiceService(
        providers=providers,
        invoices=InvoiceRepository(sessions),
        drafts=draft_repository,
        codec=draft_codec,
        customers=customer_service,
        payments=payments,
        alerts=alerts,
        # A request that timed out may still be running at the provider: settle it only
        # once it certainly finished (the client gave up after one timeout).
        wait_window=dt.timedelta(seconds=2 * settings.provider_timeout_seconds),
    )
    services = BotServices(
        settings=settings,
        catalog=Catalog.load(default=settings.default_locale),
        access=AccessPolicy(frozenset(settings.admin_ids), frozenset(settings.merchant_ids)),
        drafts=draft_service,
        customers=customer_service,
        invoices=invoices,
        currencies=currencies,
        conversation=ConversationService(
            drafts=draft_service,
            customers=customer_service,
            currencies=currencies,
            invoices=invoices,
            requirements=provider.requirements,
            max_amount=settings.max_invoice_amount,
            steps=steps,
        ),
        requirements=provider.requirements,
        payments=payments,
        alerts=alerts,
        sharing=ShareService(
            shares=ShareRepository(sessions),
            business=BusinessRepository(sessions),
            invoices=invoices,
            drafts=draft_service,
            customers=customer_service,
            currencies=currencies,
            max_amount=settings.max_invoice_amount,
            sender_data=provider.requirements.sender_data,
        ),
    )
    limiter = SharedRateLimiter(max_retries=2)
    builder = (
        Application.builder()
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(settings.telegram_api_base_url)
        .base_file_url(settings.telegram_api_base_url.removesuffix("/bot") + "/file/bot")
        .context_types(ContextTypes(context=BotContext))
        .concurrent_updates(PerChatUpdateProcessor())
        .rate_limiter(limiter)
    )
    shared = not settings.database_url.startswith("sqlite")  # several processes may run
    webhook = settings.telegram_mode is TelegramMode.WEBHOOK
    if webhook or shared:
        # Updates arrive on our own HTTP server, or through the shared inbox (cluster.py).
        builder = builder.updater(None)
    application: BotApplication = builder.build()
    application.bot_data["services"] = services
    register_handlers(application, settings)
    notifier = lifecycle.Notifier(application.bot, services)
    keeper = views.ViewKeeper(application.bot, services)

    def on_change() -> None:
        notifier.wake()
        keeper.wake()

    payments.on_change = on_change
    settler = lifecycle.Settler(application.bot, services)
    services.invoices.on_unsettled = settler.wake
    cluster: Cluster | None = None
    runtime_box: list[BotRuntime] = []

    async def on_leader() -> None:
        await runtime_box[0]._recover_interrupted()

    def wake_background() -> None:
        notifier.wake()
        settler.wake()
        keeper.wake()

    if shared:
        cluster = Cluster(
            database_url=settings.database_url,
            polling=not webhook,
            bot=application.bot,
            sessions=sessions,
            process_update=application.process_update,
            on_change=wake_background,
            on_leader=on_leader,
            limiter=limiter,
        )
        notifier.active = settler.active = keeper.active = lambda: (
            cluster is not None and cluster.is_leader
        )
        services.invoices.process_id = cluster.process_id
        payments.on_change = services.invoices.on_unsettled = cluster.changed

    async def enqueue_update(payload: Any) -> None:
        if cluster is not None:
            await cluster.receive(payload)
        else:
            await application.update_queue.put(Update.de_json(payload, application.bot))

    def role() -> str:
        if cluster is not None:
            return cluster.role
        return "webhook" if webhook else "poller"

    web_app = build_web_app(
        payments=payments,
        max_body=settings.http_max_body_bytes,
        role=role,
        is_ready=lambda: application.running and (cluster is None or cluster.started),
        telegram_secret=(
            settings.telegram_webhook_secret.get_secret_value()
            if webhook and settings.telegram_webhook_secret
            else None
        ),
        on_telegram_update=enqueue_update if webhook else None,
    )
    http = HttpServer(web_app, settings.http_host, settings.http_port)
    runtime = BotRuntime(
        settings, application, engine, providers, services, notifier, settler, keeper, http,
        data_key, cluster,
    )  # fmt: skip
    runtime_box.append(runtime)
    return runtime
