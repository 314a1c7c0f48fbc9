"""Customers and their end_user_reference: random, persistent, never derived from personal data.

Sender data and email are kept sealed with DATA_KEY and opened only to send them to the
provider or to show them to the merchant who owns the customer (masked in shared places).
A customer is found again by a keyed HMAC of the normalised data, never by a name index.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from bot.domain import (
    Customer,
    LegalEntity,
    NaturalPerson,
    Sender,
    SenderType,
    StartupRefused,
    sender_type_of,
)
from storage.models import CustomerRow
from storage.repositories import CustomerRepository
from storage.sealing import Sealer, SealError, customer_lookup_key, key_id_of


class DataKeyMismatch(StartupRefused):
    """The database holds personal data sealed with another DATA_KEY than the one configured."""


@dataclass(frozen=True, slots=True)
class CustomerEntry:
    """A line of /customers: the sender is None once erased."""

    id: int
    merchant_id: int
    sender: Sender | None
    invoices: int
    last_used_at: dt.datetime
    erased_at: dt.datetime | None


def new_reference() -> str:
    return secrets.token_hex(16)


def lookup_key(sealer: Sealer, merchant_id: int, sender: Sender) -> str:
    """Keyed digest of the normalised sender data, to recognise a customer typed in again."""
    if isinstance(sender, NaturalPerson):
        parts = [sender.first_name, sender.last_name, sender.date_of_birth.isoformat()]
        return customer_lookup_key(sealer, merchant_id, SenderType.NATURAL.value, parts)
    parts = [sender.legal_name, sender.country_alpha3]
    return customer_lookup_key(sealer, merchant_id, SenderType.LEGAL.value, parts)


def _sealed_fields(sender: Sender, email: str | None) -> dict[str, Any]:
    fields: dict[str, Any]
    if isinstance(sender, NaturalPerson):
        fields = {
            "first_name": sender.first_name,
            "last_name": sender.last_name,
            "date_of_birth": sender.date_of_birth.isoformat(),
        }
    else:
        fields = {"legal_name": sender.legal_name, "country_alpha3": sender.country_alpha3}
    if email:
        fields["email"] = email
    return fields


class CustomerService:
    def __init__(self, repository: CustomerRepository, sealer: Sealer) -> None:
        self._repository = repository
        self._sealer = sealer

    def _open(self, row: CustomerRow) -> tuple[Sender, str | None] | None:
        """The row's sender and email; None once erased."""
        if row.sealed is None or row.erased_at is not None:
            return None
        data = self._sealer.open(row.sealed, f"customer:{row.reference}")
        sender: Sender
        if row.sender_type == SenderType.NATURAL:
            sender = NaturalPerson(
                data["first_name"], data["last_name"], dt.date.fromisoformat(data["date_of_birth"])
            )
        else:
            sender = LegalEntity(data["legal_name"], data["country_alpha3"])
        return sender, data.get("email")

    def _to_customer(self, row: CustomerRow) -> Customer | None:
        opened = self._open(row)
        if opened is None or row.id is None:
            return None
        sender, email = opened
        return Customer(id=row.id, reference=row.reference, sender=sender, email=email)

    async def check_key(self) -> None:
        """Refuse to start with a DATA_KEY that cannot open the data already stored."""
        sample = await self._repository.any_sealed()
        if sample is None:
            return
        key_id = key_id_of(sample.sealed or "")
        if key_id != self._sealer.key_id:
            raise DataKeyMismatch(
                f"DATA_KEY is not the key this database's personal data was sealed with (key "
                f"id {key_id}, configured {self._sealer.key_id}): set the original DATA_KEY, "
                "or restore its data.key file"
            )
        try:
            self._open(sample)
        except SealError as exc:
            raise DataKeyMismatch(f"the stored personal data does not open: {exc}") from None

    async def recent(self, merchant_id: int, limit: int = 6) -> list[Customer]:
        """The merchant's customers, last used first; erased ones are never offered."""
        rows = await self._repository.recent(merchant_id, limit)
        return [c for c in map(self._to_customer, rows) if c is not None]

    async def get(self, merchant_id: int, customer_id: int | None) -> Customer | None:
        """The merchant's customer, or None (also when erased or there is no id at all)."""
        if customer_id is None:
            return None
        row = await self._repository.get(merchant_id, customer_id)
        return self._to_customer(row) if row is not None else None

    async def find_or_create(self, merchant_id: int, sender: Sender, email: str | None) -> Customer:
        """The same person typed in twice keeps one reference, as the provider requires."""
        key = lookup_key(self._sealer, merchant_id, sender)
        row = await self._repository.find(merchant_id, key)
        if row is None:
            reference = new_reference()
            row = CustomerRow(
                merchant_id=merchant_id,
                reference=reference,
                lookup_key=key,
                sender_type=sender_type_of(sender).value,
                sealed=self._sealer.seal(_sealed_fields(sender, email), f"customer:{reference}"),
            )
            row = await self._repository.add_or_get(row)
        customer = self._to_customer(row)
        assert customer is not None, "a customer found by its lookup key is never erased"
        if email and customer.email != email:
            sealed = self._sealer.seal(_sealed_fields(sender, email), f"customer:{row.reference}")
            await self._repository.update_sealed(customer.id, sealed)
            customer = Customer(customer.id, customer.reference, customer.sender, email)
        return customer

    async def touch(self, customer_id: int) -> None:
        await self._repository.touch(customer_id)

    async def entries(
        self, merchant_id: int | None, *, offset: int = 0, limit: int = 20
    ) -> tuple[list[CustomerEntry], int]:
        """A page of customers (all merchants' when `merchant_id` is None) and the total."""
        rows, total = await self._repository.page(merchant_id, offset=offset, limit=limit)
        entries = []
        for row, invoices in rows:
            assert row.id is not None
            opened = self._open(row)
            entries.append(
                CustomerEntry(
                    id=row.id,
                    merchant_id=row.merchant_id,
                    sender=opened[0] if opened else None,
                    invoices=invoices,
                    last_used_at=row.last_used_at,
                    erased_at=row.erased_at,
                )
            )
        return entries, total

    async def entry(self, customer_id: int, merchant_id: int | None) -> CustomerEntry | None:
        """One customer of `merchant_id` (any merchant's when None), erased or not."""
        found = await self._repository.get_with_count(customer_id, merchant_id)
        if found is None:
            return None
        row, invoices = found
        opened = self._open(row)
        return CustomerEntry(
            id=customer_id,
            merchant_id=row.merchant_id,
            sender=opened[0] if opened else None,
            invoices=invoices,
            last_used_at=row.last_used_at,
            erased_at=row.erased_at,
        )

    async def erase(self, customer_id: int, merchant_id: int | None) -> bool:
        """Erase the sender data and email; the reference and the invoice log stay (the
        provider may still refer to them). False when there was nothing to erase."""
        return await self._repository.erase(customer_id, merchant_id)

    async def erase_unused_since(self, cutoff: dt.datetime) -> int:
        """The retention rule: erase customers with no invoice since `cutoff`. Returns how many."""
        erased = 0
        for customer_id in await self._repository.unused_since(cutoff):
            erased += await self._repository.erase(customer_id, None)
        return erased
