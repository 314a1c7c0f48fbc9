"""The invoice conversation as data: one table of steps, and the use cases that walk it.

Each step says when it is still needed, what it asks, how a typed answer or a button is
read, and where the value goes in the draft. What comes next is always the first step still
needed, so starting with `/new 150 EUR Consulting`, editing one field from the preview, or
resuming after a restart all follow from the same table. The draft row (with its `step`) is
the only record of where a conversation stands; nothing is kept in memory between updates.

Adding a step: one `Step(...)` row in `STEPS` plus its locale keys (`ask-<name>`, and
`button-edit-<name>` if Edit may jump to it).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bot.domain import (
    Currency,
    Customer,
    Draft,
    EmailRule,
    LegalEntity,
    NaturalPerson,
    ProviderRequirements,
    SenderType,
)
from bot.services.currencies import CurrencyCatalog
from bot.services.customers import CustomerService
from bot.services.drafts import DraftService
from bot.services.inputs import (
    InputError,
    check_amount_precision,
    country_name,
    parse_country,
    parse_currency_code,
    parse_date_of_birth,
    parse_email,
    parse_legal_name,
    parse_name,
    parse_title,
)
from bot.services.invoices import InvoiceService
from bot.services.oneline import SYMBOLS, parse_amount_and_currency, parse_line
from storage.types import utcnow

PREVIEW = "preview"
EDIT_MENU = "edit"
# Button codes of earlier versions, still on merchants' screens: what they mean now.
LEGACY_ACTIONS = {"st": "cus"}


@dataclass(frozen=True, slots=True)
class Choice:
    """One button: `label` is shown (a locale key when `key` is True), `value` comes back."""

    label: str
    value: str
    key: bool = False


@dataclass(slots=True)
class Flow:
    """What the steps may consult while handling one update (loaded once per update)."""

    requirements: ProviderRequirements
    currencies: Mapping[str, Currency]
    common: Sequence[Currency]
    recent: Sequence[Customer]
    customer: Customer | None
    max_amount: Decimal
    today: dt.date
    locale: str


Note = InputError | None


@dataclass(frozen=True, slots=True)
class Step:
    """One question of the conversation."""

    name: str
    needed: Callable[[Draft, Flow], bool]
    store: Callable[[Draft, Any, Flow], Note]
    parse: Callable[[str, Flow], Any] | None = None  # None: buttons only
    choices: Callable[[Draft, Flow], list[Choice]] | None = None
    button: str | None = None  # the short code its buttons carry (see callback_data)
    pick: Callable[[str, Flow], Any] | None = None  # a button's value → the step's value
    prompt: Callable[[Draft, Flow], str] | None = None  # default: `ask-<name>`
    editable: Callable[[Draft, Flow], bool] = lambda draft, flow: True

    def question(self, draft: Draft, flow: Flow) -> str:
        return self.prompt(draft, flow) if self.prompt else f"ask-{self.name.replace('_', '-')}"


# --- what each step needs, reads and stores -------------------------------------------------


def _sender_data(flow: Flow) -> bool:
    return flow.requirements.sender_data


def _new_person(kind: SenderType) -> Callable[[Draft, Flow], bool]:
    def applies(draft: Draft, flow: Flow) -> bool:
        return _sender_data(flow) and draft.customer_id is None and draft.sender_type is kind

    return applies


def _missing(name: str, kind: SenderType) -> Callable[[Draft, Flow], bool]:
    applies = _new_person(kind)
    return lambda draft, flow: applies(draft, flow) and getattr(draft, name) is None


def _setter(name: str) -> Callable[[Draft, Any, Flow], Note]:
    def store(draft: Draft, value: Any, flow: Flow) -> Note:
        setattr(draft, name, value)
        return None

    return store


def _check_precision(draft: Draft, flow: Flow) -> Note:
    """An amount with more decimals than the currency allows is asked again, never rounded."""
    currency = flow.currencies.get(draft.currency or "")
    if draft.amount is None or currency is None:
        return None
    try:
        check_amount_precision(draft.amount, currency.decimals, currency.code)
    except InputError as exc:
        draft.amount = None
        return exc
    return None


def _parse_amount(text: str, flow: Flow) -> tuple[Decimal, str | None, str | None]:
    """`150`, `150 USD`, `€150`, or the whole one-line grammar (`95 April lessons`)."""
    try:
        amount, currency = parse_amount_and_currency(
            text, known=flow.currencies, max_amount=flow.max_amount
        )
        return amount, currency, None
    except InputError as exc:
        line = parse_line(text, known=flow.currencies, max_amount=flow.max_amount)
        if line.amount is None or line.errors:
            raise (line.errors[0] if line.errors else exc) from None
        return line.amount, line.currency, line.title


def _store_amount(draft: Draft, value: tuple[Decimal, str | None, str | None], flow: Flow) -> Note:
    amount, currency, title = value
    draft.amount = amount
    if title is not None and draft.title is None:
        draft.title = title
    if currency is not None:
        if currency not in flow.currencies:
            return InputError("error-currency-unsupported", currency=currency)
        draft.currency = currency
    return _check_precision(draft, flow)


def _parse_currency(text: str, flow: Flow) -> str:
    code = SYMBOLS.get(text.strip()) or parse_currency_code(text)
    if code not in flow.currencies:
        raise InputError("error-currency-unsupported", currency=code)
    return code


def _store_currency(draft: Draft, code: str, flow: Flow) -> Note:
    draft.currency = code
    return _check_precision(draft, flow)


def _currency_choices(draft: Draft, flow: Flow) -> list[Choice]:
    return [Choice(currency.code, currency.code) for currency in flow.common]


def customer_label(customer: Customer) -> str:
    """How the merchant knows a customer on a button (their own private chat)."""
    sender = customer.sender
    if isinstance(sender, NaturalPerson):
        label = f"{sender.first_name} {sender.last_name} · {sender.date_of_birth.year}"
    else:
        label = f"{sender.legal_name} · {sender.country_alpha3}"
    return label[:60]


def _customer_choices(draft: Draft, flow: Flow) -> list[Choice]:
    return [
        *(Choice(customer_label(c), str(c.id)) for c in flow.recent),
        Choice("button-natural", SenderType.NATURAL.value, key=True),
        Choice("button-legal", SenderType.LEGAL.value, key=True),
    ]


def _pick_customer(value: str, flow: Flow) -> Customer | SenderType:
    if value in {kind.value for kind in SenderType}:
        return SenderType(value)
    for customer in flow.recent:
        if str(customer.id) == value:
            return customer
    raise InputError("stale-button")


def _clear_sender(draft: Draft) -> None:
    draft.customer_id = None
    draft.sender_type = None
    draft.first_name = draft.last_name = draft.legal_name = draft.country_alpha3 = None
    draft.date_of_birth = None
    draft.email = None


def _store_customer(draft: Draft, value: Customer | SenderType, flow: Flow) -> Note:
    _clear_sender(draft)
    if isinstance(value, SenderType):
        draft.sender_type = value
    else:
        draft.customer_id = value.id
        flow.customer = value
    return None


def _customer_needed(draft: Draft, flow: Flow) -> bool:
    return _sender_data(flow) and draft.customer_id is None and draft.sender_type is None


def _email_needed(draft: Draft, flow: Flow) -> bool:
    if flow.requirements.email is not EmailRule.REQUIRED or draft.email:
        return False
    customer_email = flow.customer.email if flow.customer is not None else None
    return not customer_email


def _title_prompt(draft: Draft, flow: Flow) -> str:
    # CryptoCloud shows no title to the payer: say what it is used for there.
    return "ask-title" if _sender_data(flow) else "ask-title-internal"


def _customer_prompt(draft: Draft, flow: Flow) -> str:
    return "ask-customer" if flow.recent else "ask-sender-type"


STEPS: tuple[Step, ...] = (
    Step("amount", lambda d, f: d.amount is None, _store_amount, parse=_parse_amount),
    Step(
        "currency", lambda d, f: d.currency is None, _store_currency, parse=_parse_currency,
        choices=_currency_choices, button="cur", pick=_parse_currency,
    ),
    Step(
        "title", lambda d, f: d.title is None, _setter("title"),
        parse=lambda text, flow: parse_title(text), prompt=_title_prompt,
    ),
    Step(
        "customer", _customer_needed, _store_customer, choices=_customer_choices, button="cus",
        pick=_pick_customer, prompt=_customer_prompt, editable=lambda d, f: _sender_data(f),
    ),
    Step(
        "first_name", _missing("first_name", SenderType.NATURAL), _setter("first_name"),
        parse=lambda text, flow: parse_name(text), editable=_new_person(SenderType.NATURAL),
    ),
    Step(
        "last_name", _missing("last_name", SenderType.NATURAL), _setter("last_name"),
        parse=lambda text, flow: parse_name(text), editable=_new_person(SenderType.NATURAL),
    ),
    Step(
        "birth_date", _missing("date_of_birth", SenderType.NATURAL), _setter("date_of_birth"),
        parse=lambda text, flow: parse_date_of_birth(text, today=flow.today),
        editable=_new_person(SenderType.NATURAL),
    ),
    Step(
        "legal_name", _missing("legal_name", SenderType.LEGAL), _setter("legal_name"),
        parse=lambda text, flow: parse_legal_name(text), editable=_new_person(SenderType.LEGAL),
    ),
    Step(
        "country", _missing("country_alpha3", SenderType.LEGAL), _setter("country_alpha3"),
        parse=lambda text, flow: parse_country(text, flow.locale), button="cty",
        pick=lambda value, flow: parse_country(value, flow.locale),
        editable=_new_person(SenderType.LEGAL),
    ),
    Step(
        "email", _email_needed, _setter("email"), parse=lambda text, flow: parse_email(text),
        editable=lambda d, f: f.requirements.email is not EmailRule.UNUSED
        and (d.customer_id is not None or d.sender_type is not None),
    ),
)  # fmt: skip
STEP_BY_NAME = {step.name: step for step in STEPS}
STEP_BY_BUTTON = {step.button: step for step in STEPS if step.button}
SENDER_FIELDS = ("first_name", "last_name", "birth_date", "legal_name", "country", "email")


def next_step(draft: Draft, flow: Flow, steps: Sequence[Step] = STEPS) -> str:
    """The first step still needed, or the preview when the draft is complete."""
    for step in steps:
        if step.needed(draft, flow):
            return step.name
    return PREVIEW


# --- what the chat layer gets back ----------------------------------------------------------


@dataclass(slots=True)
class Prompt:
    """What to show the merchant now: a step's question, the preview or the edit menu."""

    draft: Draft
    step: str
    question: str  # locale key
    customer: Customer | None = None
    choices: list[Choice] = field(default_factory=list)
    button: str | None = None
    error: InputError | None = None
    notice: str | None = None  # a locale key shown first (the intro, a settling notice)


@dataclass(frozen=True, slots=True)
class Stale:
    """A button of an older message (or of another draft): refused, nothing changed."""


@dataclass(frozen=True, slots=True)
class Closed:
    """A draft was closed; `settling` when an attempt of unknown outcome is still settled."""

    draft: Draft
    settling: bool


class ConversationService:
    def __init__(
        self,
        *,
        drafts: DraftService,
        customers: CustomerService,
        currencies: CurrencyCatalog,
        invoices: InvoiceService,
        requirements: ProviderRequirements,
        max_amount: Decimal,
        steps: Sequence[Step] = STEPS,
    ) -> None:
        self._drafts = drafts
        self._customers = customers
        self._currencies = currencies
        self._invoices = invoices
        self._requirements = requirements
        self._max_amount = max_amount
        self._steps = tuple(steps)
        self._by_name = {step.name: step for step in self._steps}
        self._by_button = {step.button: step for step in self._steps if step.button}
        # When this process started: an answer saved before it may never have been replied to.
        self._started = time.time()

    async def _flow(self, draft: Draft, locale: str) -> Flow:
        sender = self._requirements.sender_data
        return Flow(
            requirements=self._requirements,
            currencies=await self._currencies.all(),
            common=await self._currencies.common(),
            recent=await self._customers.recent(draft.merchant_id) if sender else [],
            customer=await self._customers.get(draft.merchant_id, draft.customer_id),
            max_amount=self._max_amount,
            today=utcnow().date(),
            locale=locale,
        )

    async def current(self, merchant_id: int, chat_id: int) -> Draft | None:
        return await self._drafts.current(merchant_id, chat_id)

    async def start(
        self,
        merchant_id: int,
        chat_id: int,
        locale: str,
        line: str = "",
        customer_id: int | None = None,
    ) -> Prompt:
        """A new draft (closing any open one), filled from a one-line start if given."""
        previous = await self._drafts.current(merchant_id, chat_id)
        draft = self._drafts.new(merchant_id, chat_id)
        draft.extra["locale"] = locale
        flow = await self._flow(draft, locale)
        error: Note = None
        if line.strip():
            parsed = parse_line(line, known=flow.currencies, max_amount=self._max_amount)
            draft.amount, draft.title = parsed.amount, parsed.title
            if parsed.currency in flow.currencies:
                draft.currency = parsed.currency
            error = parsed.errors[0] if parsed.errors else _check_precision(draft, flow)
        if customer_id is not None:
            customer = await self._customers.get(merchant_id, customer_id)
            if customer is not None:
                draft.customer_id, flow.customer = customer.id, customer
        draft.step = next_step(draft, flow, self._steps)
        draft = await self._drafts.start(draft)
        settling = previous is not None and await self._invoices.abandoned(previous.id)
        prompt = await self._prompt(draft, flow, error)
        prompt.notice = "previous-attempt-settling" if settling else "new-intro"
        return prompt

    async def answer(
        self, merchant_id: int, chat_id: int, text: str, locale: str, update_id: int = 0
    ) -> Prompt | None:
        """A typed answer to the draft's current step; None when no draft is open.

        `update_id` makes it idempotent: Telegram sends an update again when the bot died
        before confirming it, and an answer already applied must not count for the next step.
        """
        draft = await self._drafts.current(merchant_id, chat_id)
        if draft is None:
            return None
        flow = await self._flow(draft, locale)
        if _seen(draft, update_id):
            return await self._prompt(draft, flow, None)  # applied before: ask what's next
        step = self._by_name.get(draft.step)
        if step is None:  # the preview (or a step a newer version removed): ask what's missing
            draft.step = next_step(draft, flow, self._steps)
            if draft.step == PREVIEW:
                return await self._prompt(draft, flow, InputError("use-buttons"))
            step = self._by_name[draft.step]
        if step.parse is None:
            return await self._prompt(draft, flow, InputError("use-buttons"))
        fingerprint = self._drafts.fingerprint(text)
        if self._retyped(draft, fingerprint):
            # The bot stopped after saving the last answer and before asking the next
            # question; the merchant, seeing nothing, typed that answer again. It is not an
            # answer to a question they never saw: show them the question.
            draft.extra["saved"] = f"{time.time():.3f}"  # asked now: the same text again counts
            await self._drafts.save(draft)
            prompt = await self._prompt(draft, flow, None)
            prompt.notice = "restarted-next-question"
            return prompt
        try:
            value = step.parse(text, flow)
        except InputError as exc:
            return await self._prompt(draft, flow, exc)
        draft.extra["last"], draft.extra["saved"] = fingerprint, f"{time.time():.3f}"
        return await self._store(draft, step, value, flow)

    def _retyped(self, draft: Draft, fingerprint: str) -> bool:
        """The same text as the answer saved last, saved before this process started."""
        saved = float(draft.extra.get("saved", "inf"))
        return draft.extra.get("last") == fingerprint and saved < self._started

    async def press(
        self,
        merchant_id: int,
        chat_id: int,
        draft_id: str,
        action: str,
        arg: str,
        locale: str,
        update_id: int = 0,
    ) -> Prompt | Stale:
        """A button of the open draft: a choice, Edit, a field to edit, or Back. A button of
        another draft, or of a step the draft has left, changes nothing."""
        draft = await self._drafts.current(merchant_id, chat_id)
        if draft is None or draft.id != draft_id:
            return Stale()
        flow = await self._flow(draft, locale)
        if _seen(draft, update_id):
            return await self._prompt(draft, flow, None)
        if action == "edit" and draft.step == PREVIEW:
            return self._edit_menu(draft, flow)
        if action == "ed" and draft.step == PREVIEW:
            return await self._edit(draft, arg, flow)
        # Buttons sent before the payer's kind joined the customer step still count there.
        action = LEGACY_ACTIONS.get(action, action)
        if action == "cus" and arg == "new" and draft.step == "customer":
            return await self._prompt(draft, flow, None)  # the old "New customer": ask again
        step = self._by_button.get(action)
        if step is None or step.pick is None or draft.step != step.name:
            # This draft's button, but of a question already answered (perhaps just before a
            # restart, so its message still shows it): show where the draft stands now.
            return await self._prompt(draft, flow, None)
        try:
            value = step.pick(arg, flow)
        except InputError:
            return await self._prompt(draft, flow, None)
        return await self._store(draft, step, value, flow)

    async def cancel(self, merchant_id: int, chat_id: int) -> Closed | None:
        draft = await self._drafts.cancel(merchant_id, chat_id)
        if draft is None:
            return None
        return Closed(draft, await self._invoices.abandoned(draft.id) is not None)

    async def expire_idle(self, idle_for: dt.timedelta) -> list[Closed]:
        """Close drafts left idle; run by a job, so a restart or another process loses none."""
        closed = await self._drafts.expire_idle(utcnow() - idle_for)
        return [Closed(d, await self._invoices.abandoned(d.id) is not None) for d in closed]

    async def show(self, draft: Draft, locale: str, error: Note = None) -> Prompt:
        """The draft's current question (or preview) again."""
        return await self._prompt(draft, await self._flow(draft, locale), error)

    async def _store(self, draft: Draft, step: Step, value: Any, flow: Flow) -> Prompt:
        note = step.store(draft, value, flow)
        draft.step = next_step(draft, flow, self._steps)
        return await self._prompt(draft, flow, note)

    async def _edit(self, draft: Draft, name: str, flow: Flow) -> Prompt:
        if name == "back":
            return await self._prompt(draft, flow, None)
        step = self._by_name.get(name)
        if step is None or not step.editable(draft, flow):
            return self._edit_menu(draft, flow)
        if name in SENDER_FIELDS and flow.customer is not None:
            # Changing one detail of a known customer: the draft takes over their data, so
            # only that field is asked and the rest stays as it was.
            _detach(draft, flow.customer)
            flow.customer = None
        await self._invoices.abandoned(draft.id)  # an earlier attempt is not this order
        draft.step = step.name
        return await self._prompt(draft, flow, None)

    def _edit_menu(self, draft: Draft, flow: Flow) -> Prompt:
        fields = [
            Choice(f"button-edit-{step.name.replace('_', '-')}", step.name, key=True)
            for step in self._steps
            if step.editable(draft, flow)
        ]
        fields.append(Choice("button-back", "back", key=True))
        return Prompt(draft, EDIT_MENU, "edit-which", flow.customer, fields, "ed")

    async def _prompt(self, draft: Draft, flow: Flow, error: Note) -> Prompt:
        if draft.step == PREVIEW:
            draft.extra["rev"] = str(int(draft.extra.get("rev", "0")) + 1)
        await self._drafts.save(draft)
        if draft.step == PREVIEW:
            return Prompt(draft, PREVIEW, "preview-title", flow.customer, error=error)
        step = self._by_name[draft.step]
        choices = step.choices(draft, flow) if step.choices else []
        suggestions = error.params.get("suggestions") if error is not None else None
        if step.name == "country" and isinstance(suggestions, tuple | list):
            choices = [
                Choice(country_name(str(code), flow.locale), str(code)) for code in suggestions[:3]
            ]
        return Prompt(
            draft, step.name, step.question(draft, flow), flow.customer, choices, step.button,
            error,
        )  # fmt: skip


def _seen(draft: Draft, update_id: int) -> bool:
    """Whether this update was applied already; otherwise it is noted in the draft, and
    saved with the answer it carries (Telegram's update ids only grow)."""
    if update_id <= 0:
        return False
    if update_id <= int(draft.extra.get("update", "0")):
        return True
    draft.extra["update"] = str(update_id)
    return False


def _detach(draft: Draft, customer: Customer) -> None:
    sender = customer.sender
    draft.customer_id = None
    if isinstance(sender, NaturalPerson):
        draft.sender_type = SenderType.NATURAL
        draft.first_name, draft.last_name = sender.first_name, sender.last_name
        draft.date_of_birth = sender.date_of_birth
    else:
        assert isinstance(sender, LegalEntity)
        draft.sender_type = SenderType.LEGAL
        draft.legal_name, draft.country_alpha3 = sender.legal_name, sender.country_alpha3
    draft.email = draft.email or customer.email
