"""Customers and their end_user_reference: random, persistent, never derived from personal data."""

from __future__ import annotations

import hashlib
import json
import secrets

from bot.domain import Customer, LegalEntity, NaturalPerson, Sender, SenderType, sender_type_of
from storage.models import CustomerRow
from storage.repositories import CustomerRepository


def new_reference() -> str:
    return secrets.token_hex(16)


def lookup_key(merchant_id: int, sender: Sender) -> str:
    """Digest of the normalised sender data, to recognise a customer typed in again."""
    if isinstance(sender, NaturalPerson):
        parts = ["natural", sender.first_name, sender.last_name, sender.date_of_birth.isoformat()]
    else:
        parts = ["legal", sender.legal_name, sender.country_alpha3]
    normalised = [" ".join(part.casefold().split()) for part in parts]
    data = json.dumps([merchant_id, *normalised], ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def to_customer(row: CustomerRow) -> Customer:
    assert row.id is not None
    sender: Sender
    if row.sender_type == SenderType.NATURAL:
        assert row.first_name and row.last_name and row.date_of_birth
        sender = NaturalPerson(row.first_name, row.last_name, row.date_of_birth)
    else:
        assert row.legal_name and row.country_alpha3
        sender = LegalEntity(row.legal_name, row.country_alpha3)
    return Customer(id=row.id, reference=row.reference, sender=sender, email=row.email)


class CustomerService:
    def __init__(self, repository: CustomerRepository) -> None:
        self._repository = repository

    async def recent(self, merchant_id: int, limit: int = 6) -> list[Customer]:
        return [to_customer(row) for row in await self._repository.recent(merchant_id, limit)]

    async def get(self, merchant_id: int, customer_id: int | None) -> Customer | None:
        """The merchant's customer, or None (also when there is no customer id at all)."""
        if customer_id is None:
            return None
        row = await self._repository.get(merchant_id, customer_id)
        return to_customer(row) if row is not None else None

    async def find_or_create(self, merchant_id: int, sender: Sender, email: str | None) -> Customer:
        """The same person typed in twice keeps one reference, as the provider requires."""
        key = lookup_key(merchant_id, sender)
        row = await self._repository.find(merchant_id, key)
        if row is None:
            row = CustomerRow(
                merchant_id=merchant_id,
                reference=new_reference(),
                lookup_key=key,
                sender_type=sender_type_of(sender).value,
                email=email,
            )
            if isinstance(sender, NaturalPerson):
                row.first_name, row.last_name = sender.first_name, sender.last_name
                row.date_of_birth = sender.date_of_birth
            else:
                row.legal_name, row.country_alpha3 = sender.legal_name, sender.country_alpha3
            row = await self._repository.add_or_get(row)
        if email and row.email != email:
            await self._repository.update_contact(row.id or 0, email)
            row.email = email
        return to_customer(row)

    async def touch(self, customer_id: int) -> None:
        await self._repository.update_contact(customer_id, None)
