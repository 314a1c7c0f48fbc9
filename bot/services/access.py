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


def commands_for(role: Role, *, refresh: bool = True) -> tuple[str, ...]:
    """The role's commands; without `refresh` when no configured provider answers a status
    query (CryptoProcessing alone), so nobody is offered a command that always says no."""
    names = ADMIN_COMMANDS if role is Role.ADMIN else MERCHANT_COMMANDS
    return names if refresh else tuple(name for name in names if name != "refresh")
