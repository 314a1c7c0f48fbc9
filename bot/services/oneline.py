"""Amount, currency and title typed in one line: `/new 150 EUR Consulting March`.

The same grammar serves the amount step (`150 USD`, `USD 150`, `€150`, `150€`), so a
merchant can say everything at once, in any order that is unambiguous.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from decimal import Decimal

from bot.services.inputs import InputError, parse_amount, parse_title

# Symbols that name one currency without doubt; "¥" (JPY or CNY) is left to the code.
SYMBOLS = {"€": "EUR", "$": "USD", "£": "GBP", "₽": "RUB"}
_GLUED = re.compile(r"^(?P<a>[^A-Za-z]*\d[^A-Za-z]*?)\s*(?P<c>[A-Za-z]{3,5})$|"
                    r"^(?P<c2>[A-Za-z]{3,5})\s*(?P<a2>\d[^A-Za-z]*)$")  # fmt: skip


@dataclass(slots=True)
class Line:
    """What a line said; a part that was there but wrong is left out, with its error."""

    amount: Decimal | None = None
    currency: str | None = None
    title: str | None = None
    errors: list[InputError] = field(default_factory=list)


def _currency(token: str, known: Collection[str]) -> str | None:
    if token in SYMBOLS:
        return SYMBOLS[token]
    code = token.upper()
    return code if token.isalnum() and code in known else None


def _amount_token(token: str, known: Collection[str]) -> tuple[str, str | None] | None:
    """The number part of a token and a currency glued to it (`150€`, `€150`, `150EUR`)."""
    if not any(ch.isdigit() for ch in token):
        return None
    for symbol, code in SYMBOLS.items():
        if token.startswith(symbol) or token.endswith(symbol):
            return token.removeprefix(symbol).removesuffix(symbol), code
    match = _GLUED.match(token)
    if match:
        number, code = (match["a"], match["c"]) if match["a"] else (match["a2"], match["c2"])
        currency = _currency(code, known)
        return (number, currency) if currency else None
    return token, None


def parse_amount_and_currency(
    text: str, *, known: Collection[str], max_amount: Decimal
) -> tuple[Decimal, str | None]:
    """An amount, with a currency if one is written beside it; InputError otherwise."""
    tokens = text.split()
    if len(tokens) == 2:
        for number, code in (tokens, tokens[::-1]):
            currency = _currency(code, known)
            if currency is not None and any(ch.isdigit() for ch in number):
                return parse_amount(number, max_amount=max_amount), currency
    if len(tokens) == 1:
        split = _amount_token(tokens[0], known)
        if split is not None and split[1] is not None:
            return parse_amount(split[0], max_amount=max_amount), split[1]
    return parse_amount(text, max_amount=max_amount), None


_GROUP = re.compile(r"\d{3}(?:[.,]\d+)?[€$£₽]?")


def _join_groups(tokens: list[str]) -> list[str]:
    """`1 234,56` is one number written with a space, not two."""
    joined: list[str] = []
    for token in tokens:
        previous = joined[-1] if joined else ""
        if _GROUP.fullmatch(token) and re.fullmatch(r"[€$£₽]?\d{1,3}(?: \d{3})*", previous):
            joined[-1] = f"{previous} {token}"
        else:
            joined.append(token)
    return joined


def parse_line(text: str, *, known: Collection[str], max_amount: Decimal) -> Line:
    """Split a one-line start into amount, currency and title.

    The amount is the number next to the currency (or the only number); the currency is the
    first known code or symbol; what is left, in order, is the title. Two numbers and no
    currency to tell them apart is ambiguous: the line's numbers are then left for the steps.
    """
    line = Line()
    tokens = _join_groups(text.split())
    used: set[int] = set()
    currency_at: int | None = None
    for i, token in enumerate(tokens):
        currency = _currency(token, known)
        if currency is not None:
            line.currency, currency_at = currency, i
            used.add(i)
            break
    numbers = [i for i, token in enumerate(tokens) if i not in used and _amount_token(token, known)]
    pick: int | None = None
    if currency_at is not None:
        beside = [i for i in numbers if abs(i - currency_at) == 1]
        pick = beside[0] if len(beside) == 1 else (numbers[0] if len(numbers) == 1 else None)
    elif len(numbers) == 1 or (numbers and numbers[0] == 0):
        pick = numbers[0]
    if pick is not None:
        split = _amount_token(tokens[pick], known)
        assert split is not None
        try:
            line.amount = parse_amount(split[0], max_amount=max_amount)
            used.add(pick)
            if split[1] is not None and line.currency is None:
                line.currency = split[1]
        except InputError as exc:
            line.errors.append(exc)
            used.add(pick)
    rest = " ".join(token for i, token in enumerate(tokens) if i not in used)
    if rest:
        try:
            line.title = parse_title(rest)
        except InputError as exc:
            line.errors.append(exc)
    return line
