"""Message texts and keyboards. Pure functions of data and a locale: easy to read and test."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation, localcontext
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
from bot.handlers.callback_data import DraftAction, DraftButton, InvoiceButton, ListPage
from bot.i18n import Texts
from bot.services.conversation import EDIT_MENU, PREVIEW, Prompt
from bot.services.currencies import decimals_of
from bot.services.inputs import InputError, country_name
from bot.services.invoices import sender_of
from bot.services.payments import PaymentService
from storage.models import AdminAlertRow, InvoiceEventRow, InvoiceRow, UnmatchedReportRow


def amount_text(amount: Decimal | str, currency: str | None = None) -> str:
    """Exact, grouped, never an exponent, with the currency's own decimal places:
    1234.5 EUR → `1 234.50`; a provider's `0E-8` → `0.00`; `150.00000000` USD → `150.00`.
    Places beyond the currency's are shown, never rounded away."""
    try:
        value = Decimal(amount) if isinstance(amount, str) else amount
    except InvalidOperation:
        return str(amount)[:40]
    if not value.is_finite():
        return str(amount)[:40]
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    significant = "".join(map(str, digits)).rstrip("0")
    needed = max(0, -(exponent + len(digits) - len(significant))) if significant else 0
    places = decimals_of(currency)
    shown = needed if places is None else max(places, needed)
    # Padding zeros never rounds; a context wide enough keeps every digit.
    with localcontext() as context:
        context.prec = len(digits) + abs(exponent) + shown + 2
        text = format(value.quantize(Decimal(1).scaleb(-shown)), "f")
    sign, text = ("-", text[1:]) if text.startswith("-") else ("", text)
    whole, _, fraction = text.partition(".")
    grouped = f"{int(whole):,}".replace(",", "\u202f")
    return sign + (f"{grouped}.{fraction}" if fraction else grouped)


def sender_text(t: Texts, sender: Sender) -> str:
    if isinstance(sender, NaturalPerson):
        return t(
            "sender-natural-line",
            first_name=sender.first_name,
            last_name=sender.last_name,
            date_of_birth=sender.date_of_birth.isoformat(),
        )
    assert isinstance(sender, LegalEntity)
    return t(
        "sender-legal-line",
        legal_name=sender.legal_name,
        country=f"{country_name(sender.country_alpha3)} ({sender.country_alpha3})",
    )


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
    parts = []
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
        t(
            "field-amount",
            amount=amount_text(draft.amount, draft.currency),
            currency=draft.currency,
        ),
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


def invoice_card(t: Texts, invoice: InvoiceRow, customer: Customer | None) -> str:
    lines = [
        t("card-title", public_id=invoice.public_id, id=invoice.id),
        "",
        t(
            "field-amount",
            amount=amount_text(invoice.amount, invoice.currency),
            currency=invoice.currency,
        ),
        t("field-title", title=invoice.title),
    ]
    if customer is not None:
        lines.append(t("field-customer"))
        lines.append(sender_text(t, customer.sender))
    lines.append(t("field-status", status=status_text(t, invoice)))
    if invoice.test_mode:
        lines.append(t("test-mode-warning"))
    if invoice.amount_received:
        lines.append(t("field-received", received=received_text(invoice)))
    if invoice.pay_url and not _is_final(invoice):
        lines.append(t("field-pay-link", url=invoice.pay_url))
    return "\n".join(lines)


def received_text(invoice: InvoiceRow) -> str:
    if not invoice.amount_received:
        return "?"
    currency = invoice.received_currency or ""
    return f"{amount_text(invoice.amount_received, currency or None)} {currency}".strip()


def _is_final(invoice: InvoiceRow) -> bool:
    try:
        return PaymentStatus(invoice.status or "").final
    except ValueError:
        return False


def invoice_card_keyboard(
    t: Texts, invoice: InvoiceRow, *, can_refresh: bool = False
) -> InlineKeyboardMarkup | None:
    """Pay link while payable; Cancel while nothing is paid; Refresh where the provider
    answers; and a new invoice for the same customer and currency, always."""
    if invoice.id is None:
        return None
    again = [button(t("button-again"), InvoiceButton("again", invoice.id).build())]
    if not invoice.pay_url or _is_final(invoice):
        return InlineKeyboardMarkup([again])
    rows = [[InlineKeyboardButton(t("button-open-link"), url=invoice.pay_url)]]
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
    text = t(
        f"notify-{invoice.status}",
        public_id=invoice.public_id,
        id=invoice.id,
        title=invoice.title,
        amount=amount_text(invoice.amount, invoice.currency),
        currency=invoice.currency,
        received=received_text(invoice),
    )
    if invoice.outcome != "created":
        text += "\n" + t("notify-unconfirmed-attempt", outcome=status_of_outcome(t, invoice))
    if invoice.flag_reason:
        text += "\n" + t("notify-flagged")
    return f"{text}\n{t('test-mode-warning')}" if invoice.test_mode else text


def status_of_outcome(t: Texts, invoice: InvoiceRow) -> str:
    key = f"status-{invoice.outcome}"
    return t(key) if key in t.catalog.keys("en") else invoice.outcome


def forward_text(t: Texts, invoice: InvoiceRow) -> str:
    return t(
        "forward-message",
        title=invoice.title,
        amount=amount_text(invoice.amount, invoice.currency),
        currency=invoice.currency,
        url=invoice.pay_url or "",
    )


def settled_notice(t: Texts, invoice: InvoiceRow, outcome: str) -> str:
    """An attempt whose draft was left is settled: what became of it."""
    return t(
        f"settled-{outcome}",
        title=invoice.title,
        amount=amount_text(invoice.amount, invoice.currency),
        currency=invoice.currency,
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
            amount=amount_text(invoice.amount, invoice.currency),
            currency=invoice.currency,
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
                f"{amount_text(params['amount'], params.get('currency'))} "
                f"{params.get('currency') or ''}".strip()
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
            f"{amount_text(row.amount_received, row.received_currency)} "
            f"{row.received_currency or ''}".strip()
            if row.amount_received
            else "—"
        )
        lines.append(
            t(
                "unmatched-line",
                id=row.id,
                time=row.received_at.strftime("%Y-%m-%d %H:%M UTC"),
                provider=row.provider,
                provider_id=row.provider_invoice_id or "—",
                foreign_id=row.foreign_id or "—",
                status=row.status,
                received=received,
            )
        )
    return "\n".join(lines)


def invoice_line(t: Texts, invoice: InvoiceRow) -> str:
    return t(
        "list-line",
        id=invoice.id,
        time=invoice.created_at.strftime("%Y-%m-%d %H:%M"),
        merchant=invoice.merchant_id,
        amount=amount_text(invoice.amount, invoice.currency),
        currency=invoice.currency,
        title=invoice.title,
        status=status_text(t, invoice),
    )


def invoice_list(t: Texts, rows: Sequence[InvoiceRow], page: int, pages: int) -> str:
    if not rows:
        return t("list-empty")
    lines = [t("list-header", page=page + 1, pages=pages), ""]
    lines += [invoice_line(t, row) for row in rows]
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
            provider=invoice.provider,
            merchant=invoice.merchant_id,
            provider_id=invoice.provider_invoice_id or "—",
            created=invoice.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
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
        lines.append(
            t(
                "details-event",
                time=event.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                kind=event.kind,
                status=event.status or "",
            )
        )
    return "\n".join(lines)
