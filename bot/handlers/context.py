"""A typed context, so handlers reach services by attribute rather than by string keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telegram import Update
from telegram.ext import Application, CallbackContext, ExtBot

from bot.config import Settings
from bot.domain import ProviderRequirements
from bot.i18n import Catalog, Texts
from bot.services.access import AccessPolicy, Role
from bot.services.conversation import ConversationService
from bot.services.currencies import CurrencyCatalog
from bot.services.customers import CustomerService
from bot.services.drafts import DraftService
from bot.services.invoices import InvoiceService
from bot.services.payments import PaymentService
from bot.services.sharing import ShareService
from storage.repositories import AlertRepository


@dataclass(frozen=True, slots=True)
class BotServices:
    settings: Settings
    catalog: Catalog
    access: AccessPolicy
    drafts: DraftService
    customers: CustomerService
    invoices: InvoiceService
    currencies: CurrencyCatalog
    conversation: ConversationService
    requirements: ProviderRequirements
    payments: PaymentService
    alerts: AlertRepository
    sharing: ShareService


class BotContext(CallbackContext[ExtBot[Any], dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    @property
    def services(self) -> BotServices:
        services = self.bot_data.get("services")
        assert isinstance(services, BotServices), "app factory did not register services"
        return services


BotApplication = Application[
    ExtBot[Any], BotContext, dict[Any, Any], dict[Any, Any], dict[Any, Any], Any
]


def texts_for(update: Update, context: BotContext) -> Texts:
    user = update.effective_user
    return context.services.catalog.texts(user.language_code if user else None)


def role_of(update: Update, context: BotContext) -> Role | None:
    user = update.effective_user
    return context.services.access.role(user.id if user else None)


def merchant_scope(update: Update, context: BotContext) -> int | None:
    """Whose invoices and customers the caller may see: None for every merchant's (admins),
    otherwise the caller's own id."""
    if role_of(update, context) is Role.ADMIN:
        return None
    assert update.effective_user is not None
    return update.effective_user.id
