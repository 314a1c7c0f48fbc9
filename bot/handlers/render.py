"""Message texts and keyboards. Pure functions of data and a locale: easy to read and test."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import cast

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.domain import (
    Customer,
    Draft,
    LegalEntity,
    NaturalPerson,
    PaymentStatus,
    Sender,
)
from bot.handlers.callback_data import (
    DraftAction,
    DraftButton,
    InvoiceButton,
    ListPage,
    PayerButton,
)
from bot.handlers.formatting import birth_date, duration, money, number, when
from bot.i18n import Html, Texts
from bot.services.conversation import EDIT_MENU, PREVIEW, Prompt
from bot.services.inputs import InputError, country_name
from bot.services.invoices import sender_of
from bot.services.payments import PaymentService
from storage.models import AdminAlertRow, InvoiceEventRow, InvoiceRow, UnmatchedReportRow


def sender_text(t: Texts, sender: Sender) -> Html:
    if isinstance(sender, NaturalPerson):
        return t(
            "sender-natural-line",
            first_name=sender.first_name,
            last_name=sender.last_name,
            date_of_birth=birth_date(sender.date_of_birth, t.locale),
        )
    assert isinstance(sender, LegalEntity)
    return t(
        "sender-legal-line",
        legal_name=sender.legal_name,
        country=f"{country_name(sender.country_alpha3, t.locale)} ({sender.country_alpha3})",
    )


def masked_sender(t: Texts, sender: Sender) -> Html:
    """A payer as cards, lists and notices show them (they may sit in groups): initials, the
    surname's last letters and the birth year only (`A. L…ce, 1990`). A legal entity's name
    is not personal data and is shown."""
    if isinstance(sender, NaturalPerson):
        last = sender.last_name
        tail = last[-2:] if len(last) > 3 else ""
        return t(
            "sender-natural-masked",
            initials=f"{sender.first_name[:1]}. {last[:1]}…{tail}",
            year=sender.date_of_birth.year,
        )
    return sender_text(t, sender)


def button(text: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text, callback_data=data)


def cb(draft: Draft, action: DraftAction, arg: str = "") -> str:
    """Callback data bound to one draft, so a stale button can never act on another."""
    return DraftButton(draft.id, action, arg).build()


def prompt_text(t: Texts, prompt: Prompt, echo: str | None = None) -> str:
    """A step's question, after the notice, what was just picked and the error, if any."""
    if prompt.step == PREVIEW:
        text = preview_text(t, prompt.draft, prompt.customer, note=_error(t, prompt.error))
        return f"{t(prompt.notice)}\n\n{text}" if prompt.notice else text
    parts: list[str] = []
    if prompt.notice:
        parts.append(t(prompt.notice))
    if echo:
        parts.append(f"→ <b>{html.escape(echo, quote=False)}</b>")
    if prompt.error is not None:
        parts.append(_error(t, prompt.error) or "")
    parts.append(t(prompt.question))
    return "\n\n".join(part for part in parts if part)


def _error(t: Texts, error: InputError | None) -> str | None:
    if error is None:
        return None
    params = {k: v for k, v in error.params.items() if k != "suggestions"}
    limit = params.get("max")
    if isinstance(limit, Decimal):  # a limit reads like any amount
        params["max"] = number(limit, t.locale)
    return "⚠️ " + t(error.key, **params)


def prompt_keyboard(t: Texts, prompt: Prompt) -> InlineKeyboardMarkup | None:
    draft = prompt.draft
    if prompt.step == PREVIEW:
        return preview_keyboard(t, draft)
    if not prompt.choices or prompt.button is None:
        return None
    action = cast(DraftAction, prompt.button)
    buttons = [
        button(t(choice.label) if choice.key else choice.label, cb(draft, action, choice.value))
        for choice in prompt.choices
    ]
    per_row = 4 if prompt.button == "cur" else (2 if prompt.step == EDIT_MENU else 1)
    if prompt.button == "cus":  # customers one a row, the two new-payer buttons side by side
        people = [[b] for b in buttons[:-2]]
        return InlineKeyboardMarkup([*people, buttons[-2:]])
    return InlineKeyboardMarkup([buttons[i : i + per_row] for i in range(0, len(buttons), per_row)])


def preview_text(t: Texts, draft: Draft, customer: Customer | None, note: str | None = None) -> str:
    assert draft.amount is not None
    lines = [
        t("preview-title"),
        "",
        t("field-amount", amount=money(draft.amount, draft.currency, t.locale)),
        t("field-title", title=draft.title),
    ]
    sender = customer.sender if customer is not None else sender_of(draft)
    if sender is not None:
        lines.append(t("field-customer"))
        lines.append(sender_text(t, sender))
    email = draft.email or (customer.email if customer else None)
    if email:
        lines.append(t("field-email", email=email))
    if note:
        lines += ["", note]
    lines += ["", t("preview-hint")]
    return "\n".join(lines)


def preview_keyboard(t: Texts, draft: Draft, retry: bool = False) -> InlineKeyboardMarkup:
    confirm = t("button-retry") if retry else t("button-confirm")
    # The revision ties Confirm to this exact preview: an older one cannot confirm edits.
    return InlineKeyboardMarkup(
        [
            [button(confirm, cb(draft, "confirm", draft.extra.get("rev", "0")))],
            [
                button(t("button-edit"), cb(draft, "edit")),
                button(t("button-cancel"), cb(draft, "cancel")),
            ],
        ]
    )


def status_text(t: Texts, invoice: InvoiceRow) -> str:
    key = f"status-{invoice.status or invoice.outcome}"
    return (
        t(key)
        if key in t.catalog.keys(t.locale) | t.catalog.keys("en")
        else (invoice.status or invoice.outcome)
    )


def invoice_card(
    t: Texts, invoice: InvoiceRow, customer: Customer | None, *, forward_hint: bool = False
) -> str:
    lines = [
        t("card-title", id=invoice.id),
        "",
        t("field-amount", amount=money(invoice.amount, invoice.currency, t.locale)),
        t("field-title", title=invoice.title),
    ]
    if customer is not None:
        lines.append(t("field-customer"))
        lines.append(masked_sender(t, customer.sender))
    elif invoice.customer_id is not None:
        lines += [t("field-customer"), t("customer-erased")]
    lines.append(t("field-status", status=status_text(t, invoice)))
    if invoice.test_mode:
        lines.append(t("test-mode-warning"))
    if invoice.amount_received and _money_moved(invoice):
        lines.append(t("field-received", received=received_text(t, invoice)))
        if invoice.status == PaymentStatus.PARTIAL.value:
            lines.append(t("payer-missing", missing=missing_text(t, invoice)))
    if invoice.pay_url and not _is_final(invoice):
        lines.append(t("field-pay-link", url=invoice.pay_url))
        if forward_hint:
            lines += ["", t("card-forward-hint")]
    return "\n".join(lines)


def _money_moved(invoice: InvoiceRow) -> bool:
    """What arrived is worth showing once a payment counts (partly or fully), not while it
    is only seen, and not on an invoice that expired or failed."""
    return invoice.status in {PaymentStatus.PARTIAL, PaymentStatus.PAID, PaymentStatus.OVERPAID}


def received_text(t: Texts, invoice: InvoiceRow) -> str:
    if not invoice.amount_received:
        return "?"
    return money(invoice.amount_received, invoice.received_currency, t.locale)


def _is_final(invoice: InvoiceRow) -> bool:
    try:
        return PaymentStatus(invoice.status or "").final
    except ValueError:
        return False


def invoice_card_keyboard(
    t: Texts,
    invoice: InvoiceRow,
    *,
    can_refresh: bool = False,
    share: bool = False,
    business: bool = False,
) -> InlineKeyboardMarkup | None:
    """Pay link while payable, with a QR code and Share (the inline picker, prefilled);
    Send in a Business chat when the merchant connected one; Cancel while nothing is paid;
    Refresh where the provider answers; and a new invoice for the same customer, always."""
    if invoice.id is None:
        return None
    again = [button(t("button-again"), InvoiceButton("again", invoice.id).build())]
    if not invoice.pay_url or _is_final(invoice):
        return InlineKeyboardMarkup([again])
    rows = [[InlineKeyboardButton(t("button-open-link"), url=invoice.pay_url)]]
    sharing = [button(t("button-qr"), InvoiceButton("qr", invoice.id).build())]
    if share:  # a Share button is refused unless inline mode is on (@BotFather)
        sharing.append(
            InlineKeyboardButton(t("button-share"), switch_inline_query=f"#{invoice.id}")
        )
    rows.append(sharing)
    if business:
        rows.append([button(t("button-business"), InvoiceButton("biz", invoice.id).build())])
    actions = []
    if PaymentService.cancellable(invoice):
        cancel = InvoiceButton("cancel", invoice.id).build()
        actions.append(button(t("button-cancel-invoice"), cancel))
    if can_refresh:
        actions.append(button(t("button-refresh"), InvoiceButton("refresh", invoice.id).build()))
    if actions:
        rows.append(actions)
    rows.append(again)
    return InlineKeyboardMarkup(rows)


def cancel_confirm_keyboard(t: Texts, invoice: InvoiceRow) -> InlineKeyboardMarkup:
    """Cancelling makes the pay link dead for good: one more tap to be sure."""
    assert invoice.id is not None
    return InlineKeyboardMarkup(
        [
            [
                button(t("button-cancel-yes"), InvoiceButton("cancelok", invoice.id).build()),
                button(t("button-cancel-keep"), InvoiceButton("keep", invoice.id).build()),
            ]
        ]
    )


def notification(t: Texts, invoice: InvoiceRow) -> str:
    text: str = t(
        f"notify-{invoice.status}",
        public_id=invoice.public_id,
        id=invoice.id,
        title=invoice.title,
        amount=money(invoice.amount, invoice.currency, t.locale),
        received=received_text(t, invoice),
    )
    if invoice.outcome != "created":
        text += "\n" + t("notify-unconfirmed-attempt", outcome=status_of_outcome(t, invoice))
    if invoice.flag_reason and invoice.status != PaymentStatus.PAID.value:
        text += "\n" + t("notify-flagged")
    return f"{text}\n{t('test-mode-warning')}" if invoice.test_mode else text


def status_of_outcome(t: Texts, invoice: InvoiceRow) -> str:
    key = f"status-{invoice.outcome}"
    return t(key) if key in t.catalog.keys("en") else invoice.outcome


def payer_card(t: Texts, invoice: InvoiceRow, shop: str | None, *, reminder: bool = False) -> str:
    """The invoice as its payer sees it (a chat, the inline card, a Business chat): who asks,
    for what, how much, until when, and where the payment stands, live."""
    lines = [
        t("payer-title-shop" if shop else "payer-title", title=invoice.title, shop=shop or ""),
        "",
        t("field-amount", amount=money(invoice.amount, invoice.currency, t.locale)),
    ]
    status = PaymentStatus(invoice.status or "created")
    if invoice.expires_at is not None and not status.final:
        lines.append(t("payer-valid-until", when=when(invoice.expires_at, t.locale)))
    lines.append(t("field-status", status=status_text(t, invoice)))
    if invoice.amount_received and _money_moved(invoice):
        lines.append(t("field-received", received=received_text(t, invoice)))
    if status is PaymentStatus.PARTIAL:
        lines.append(t("payer-missing", missing=missing_text(t, invoice)))
    if reminder and not status.final:
        lines += ["", t("payer-reminder-line")]
    return "\n".join(lines)


def missing_text(t: Texts, invoice: InvoiceRow) -> str:
    """What is still to pay, when what arrived is in the invoice's currency."""
    if (invoice.received_currency or invoice.currency) != invoice.currency:
        return t("missing-other-currency")
    try:
        received = Decimal(invoice.amount_received or "0")
    except ArithmeticError:
        return "?"
    if received >= invoice.amount:
        return "?"
    return money(invoice.amount - received, invoice.currency, t.locale)


def payer_keyboard(
    t: Texts, invoice: InvoiceRow, *, token: str, status_url: str | None = None
) -> InlineKeyboardMarkup | None:
    """Pay and QR while there is something to pay; the live status in the bot (a link for a
    card outside the payer's chat with the bot)."""
    status = PaymentStatus(invoice.status or "created")
    if status.final:  # paid, expired or cancelled: the card says it all, no link leads on
        return None
    rows: list[list[InlineKeyboardButton]] = []
    if invoice.pay_url:
        rows.append([InlineKeyboardButton(t("button-pay"), url=invoice.pay_url)])
        if status_url is None:
            rows.append([button(t("button-qr"), PayerButton("qr", token).build())])
    if status_url is not None:
        rows.append([InlineKeyboardButton(t("button-track"), url=status_url)])
    return InlineKeyboardMarkup(rows) if rows else None


def receipt_text(t: Texts, invoice: InvoiceRow, shop: str | None) -> str:
    return t(
        "payer-receipt",
        title=invoice.title,
        shop=shop or "—",
        amount=money(invoice.amount, invoice.currency, t.locale),
        received=received_text(t, invoice),
        when=when(invoice.updated_at, t.locale),
        reference=invoice.public_id,
    )


def forward_text(
    t: Texts, invoice: InvoiceRow, shop: str | None = None, status_url: str | None = None
) -> str:
    """The message the customer gets: who asks, for what, how much, how long, where to pay.
    A title that already says "Invoice" is not prefixed with it again."""
    bare = invoice.title.casefold().startswith(t("forward-invoice-word").casefold())
    key = "forward-title-bare" if bare else "forward-title"
    heading = t(key + ("-shop" if shop else ""), title=invoice.title, shop=shop or "")
    validity: str
    if invoice.expires_at is not None:
        validity = t("forward-valid-until", when=when(invoice.expires_at, t.locale))
    elif invoice.provider == "cryptoprocessing":
        validity = t("forward-valid-after-pick", duration=duration(15 * 60, t.locale))
    else:
        validity = ""
    return t(
        "forward-message",
        heading=heading,
        amount=money(invoice.amount, invoice.currency, t.locale),
        validity=validity,
        url=invoice.pay_url or "",
    ).replace("\n\n", "\n") + (f"\n{t('forward-track', url=status_url)}" if status_url else "")


def settled_notice(t: Texts, invoice: InvoiceRow, outcome: str) -> str:
    """An attempt whose draft was left is settled: what became of it."""
    return t(
        f"settled-{outcome}",
        title=invoice.title,
        amount=money(invoice.amount, invoice.currency, t.locale),
        public_id=invoice.public_id,
    )


def admin_alert(t: Texts, alert: AdminAlertRow, invoice: InvoiceRow | None) -> str | None:
    """The text of one queued admin alert, or None when there is nothing left to say."""
    params = json.loads(alert.params or "{}")
    if alert.kind == "invoice":
        if invoice is None:
            return None
        return t(
            "alert-invoice-flagged",
            id=invoice.id,
            public_id=invoice.public_id,
            provider=invoice.provider,
            merchant=invoice.merchant_id,
            amount=money(invoice.amount, invoice.currency, t.locale),
            reason=invoice.flag_reason or "",
        )
    if alert.kind == "unmatched":
        return t(
            "alert-unmatched",
            provider=params.get("provider") or "",
            provider_id=params.get("provider_invoice_id") or "—",
            foreign_id=params.get("foreign_id") or "—",
            status=params.get("status") or "",
            received=(
                money(params["amount"], params.get("currency"), t.locale)
                if params.get("amount")
                else "—"
            ),
        )
    if alert.kind == "provider-auth":
        return t("alert-provider-auth", provider=params.get("provider") or alert.ref)
    return None


def unmatched_list(t: Texts, rows: Sequence[UnmatchedReportRow]) -> str:
    if not rows:
        return t("unmatched-empty")
    lines = [t("unmatched-header"), ""]
    for row in rows:
        received = (
            money(row.amount_received, row.received_currency, t.locale)
            if row.amount_received
            else "—"
        )
        lines.append(
            t(
                "unmatched-line",
                id=row.id,
                time=when(row.received_at, t.locale),
                provider=row.provider,
                provider_id=row.provider_invoice_id or "—",
                foreign_id=row.foreign_id or "—",
                status=row.status,
                received=received,
            )
        )
    return "\n".join(lines)


def invoice_line(t: Texts, invoice: InvoiceRow, *, admin: bool) -> str:
    """One line of a list; the merchant column only in an admin's list of everyone's."""
    return t(
        "list-line-admin" if admin else "list-line",
        id=invoice.id,
        time=when(invoice.created_at, t.locale),
        merchant=invoice.merchant_id,
        amount=money(invoice.amount, invoice.currency, t.locale),
        title=invoice.title,
        status=status_text(t, invoice),
    )


def invoice_list(
    t: Texts, rows: Sequence[InvoiceRow], page: int, pages: int, *, admin: bool = False
) -> str:
    if not rows:
        return t("list-empty")
    lines = [t("list-header", page=page + 1, pages=pages), ""]
    lines += [invoice_line(t, row, admin=admin) for row in rows]
    lines += ["", t("list-hint")]
    return "\n".join(lines)


def list_keyboard(t: Texts, page: int, pages: int) -> InlineKeyboardMarkup | None:
    row = []
    if page > 0:
        row.append(button(t("button-prev"), ListPage(page - 1).build()))
    if page + 1 < pages:
        row.append(button(t("button-next"), ListPage(page + 1).build()))
    return InlineKeyboardMarkup([row]) if row else None


def invoice_details(
    t: Texts, invoice: InvoiceRow, customer: Customer | None, events: Sequence[InvoiceEventRow]
) -> str:
    lines = [invoice_card(t, invoice, customer), ""]
    lines.append(
        t(
            "details-meta",
            public_id=invoice.public_id,
            provider=invoice.provider,
            merchant=invoice.merchant_id,
            provider_id=invoice.provider_invoice_id or "—",
            created=when(invoice.created_at, t.locale),
        )
    )
    if customer is not None:
        lines.append(t("details-reference", reference=customer.reference))
    if invoice.error_code:
        lines.append(t("details-error", code=invoice.error_code))
    if invoice.flag_reason:
        lines.append(t("details-flagged", reason=invoice.flag_reason))
    lines += ["", t("details-history")]
    for event in events[-30:]:  # the newest, so the message stays under Telegram's limit
        lines.append(t("details-event", time=when(event.created_at, t.locale),
                       event=event_text(t, event)))  # fmt: skip
    return "\n".join(lines)


def event_text(t: Texts, event: InvoiceEventRow) -> str:
    """A history entry in words: "Created at the provider", "Status: paid"."""
    key = f"event-{event.kind}"
    if key not in t.catalog.keys("en"):
        return event.kind
    status_key = f"status-{event.status}"
    status = t(status_key) if status_key in t.catalog.keys("en") else (event.status or "")
    return t(key, status=status)
