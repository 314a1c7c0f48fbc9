"""The one app factory: wires settings → storage, provider, services → Telegram handlers.

Production (`bot.__main__`) and the tests build the bot through `build_runtime`; tests only
point the base URLs at their fake servers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from telegram import BotCommand, Update
from telegram.ext import (
    AIORateLimiter,
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.config import Settings
from bot.handlers import admin, common, new_invoice
from bot.handlers.context import BotApplication, BotContext, BotServices, texts_for
from bot.i18n import Catalog
from bot.persistence import DatabaseConversationPersistence
from bot.providers import PaymentProvider, build_provider
from bot.services.access import AccessPolicy
from bot.services.currencies import CurrencyCatalog
from bot.services.customers import CustomerService
from bot.services.drafts import DraftService
from bot.services.invoices import InvoiceService
from bot.update_processor import PerChatUpdateProcessor
from storage.engine import create_engine, create_session_factory, migrate
from storage.repositories import (
    ConversationStateRepository,
    CustomerRepository,
    DraftRepository,
    InvoiceRepository,
)

logger = logging.getLogger(__name__)

COMMANDS = ("new", "cancel", "invoices", "invoice", "help")


async def _outside_conversation(update: Update, context: BotContext) -> None:
    """Text, /cancel or an old draft button when no invoice is being composed."""
    t = texts_for(update, context)
    if update.callback_query is not None:
        await update.callback_query.answer(t("stale-button"))
    elif update.effective_chat is not None:
        await update.effective_chat.send_message(t("no-draft"))


def register_handlers(app: BotApplication, settings: Settings) -> None:
    # Group -1 runs first for every update: unknown users stop there.
    app.add_handler(TypeHandler(Update, common.gate), group=-1)
    # Group 0: the conversation must come before the generic handlers so it sees its input.
    app.add_handler(new_invoice.build_conversation(settings.conversation_timeout_seconds))
    app.add_handler(new_invoice.confirm_outside_conversation())
    app.add_handler(CommandHandler("start", common.start))
    app.add_handler(CommandHandler("help", common.help_command))
    app.add_handler(CommandHandler("invoices", admin.list_invoices))
    app.add_handler(CommandHandler("invoice", admin.show_invoice))
    app.add_handler(CallbackQueryHandler(admin.list_page, pattern=r"^list\|\d{1,6}$"))
    app.add_handler(CommandHandler("cancel", _outside_conversation))
    app.add_handler(CallbackQueryHandler(_outside_conversation))
    app.add_handler(
        MessageHandler(filters.UpdateType.MESSAGE & ~filters.COMMAND, _outside_conversation)
    )
    app.add_error_handler(common.on_error)


@dataclass
class BotRuntime:
    """Everything one running bot owns, started and stopped in the right order."""

    settings: Settings
    application: BotApplication
    engine: AsyncEngine
    provider: PaymentProvider
    services: BotServices
    stopped: bool = False

    async def start(self, *, poll_timeout: int = 30) -> None:
        await migrate(self.engine)
        interrupted = await self.services.invoices.recover_interrupted()
        if interrupted:
            logger.warning(
                "%d invoice attempt(s) were interrupted by a stop; marked unknown", interrupted
            )
        await self.application.initialize()
        await self._set_commands()
        await self.services.currencies.all()
        assert self.application.updater is not None
        await self.application.updater.start_polling(
            poll_interval=0.0, timeout=poll_timeout, allowed_updates=Update.ALL_TYPES
        )
        await self.application.start()
        logger.info("bot started with provider %s", self.provider.name)
        if not self.settings.admin_ids and not self.settings.merchant_ids:
            logger.warning(
                "ADMIN_IDS and MERCHANT_IDS are empty: everyone is refused and shown their id; "
                "add yours and restart"
            )

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        updater = self.application.updater
        if updater is not None and updater.running:
            await updater.stop()
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()
        await self.provider.aclose()
        await self.engine.dispose()
        logger.info("bot stopped")

    async def _set_commands(self) -> None:
        catalog = self.services.catalog
        bot = self.application.bot
        for locale in catalog.locales:
            t = catalog.texts(locale)
            commands = [BotCommand(name, t(f"command-{name}")) for name in COMMANDS]
            await bot.set_my_commands(commands, language_code=None if locale == "en" else locale)


def build_runtime(settings: Settings, *, provider_transport: Any = None) -> BotRuntime:
    engine = create_engine(settings.database_url)
    sessions = create_session_factory(engine)
    provider = build_provider(settings, provider_transport)
    customer_service = CustomerService(CustomerRepository(sessions))
    draft_repository = DraftRepository(sessions)
    draft_service = DraftService(draft_repository)
    services = BotServices(
        settings=settings,
        catalog=Catalog.load(default=settings.default_locale),
        access=AccessPolicy(frozenset(settings.admin_ids), frozenset(settings.merchant_ids)),
        drafts=draft_service,
        customers=customer_service,
        invoices=InvoiceService(
            provider=provider,
            invoices=InvoiceRepository(sessions),
            drafts=draft_repository,
            draft_service=draft_service,
            customers=customer_service,
        ),
        currencies=CurrencyCatalog(
            provider, ttl_seconds=settings.currency_cache_seconds, common=settings.common_currencies
        ),
        requirements=provider.requirements,
    )
    application: BotApplication = (
        Application.builder()
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(settings.telegram_api_base_url)
        .base_file_url(settings.telegram_api_base_url.removesuffix("/bot") + "/file/bot")
        .context_types(ContextTypes(context=BotContext))
        .persistence(DatabaseConversationPersistence(ConversationStateRepository(sessions)))
        .concurrent_updates(PerChatUpdateProcessor())
        .rate_limiter(AIORateLimiter(max_retries=2))
        .build()
    )
    application.bot_data["services"] = services
    register_handlers(application, settings)
    return BotRuntime(settings, application, engine, provider, services)
