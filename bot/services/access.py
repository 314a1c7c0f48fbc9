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


# The commands each role may use, in menu order: /help lists exactly these and the command
# menu Telegram shows is set from them.
MERCHANT_COMMANDS = (
    "new", "cancel", "invoices", "invoice", "refresh", "cancel_invoice", "customers", "forget",
    "help",
)  # fmt: skip
ADMIN_COMMANDS = (*MERCHANT_COMMANDS, "unmatched", "callbacks")


def commands_for(role: Role) -> tuple[str, ...]:
    return ADMIN_COMMANDS if role is Role.ADMIN else MERCHANT_COMMANDS
