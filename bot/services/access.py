"""Who may use the bot: configured merchants, and admins who also see everyone's invoices."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    MERCHANT = "merchant"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    admin_ids: frozenset[int]
    merchant_ids: frozenset[int]

    def role(self, user_id: int | None) -> Role | None:
        if user_id is None:
            return None
        if user_id in self.admin_ids:
            return Role.ADMIN
        if user_id in self.merchant_ids:
            return Role.MERCHANT
        return None
