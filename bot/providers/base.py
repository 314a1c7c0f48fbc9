"""The one interface both payment providers implement, and the errors they raise."""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import ClassVar

from bot.domain import (
    CreatedInvoice,
    Currency,
    InvoiceRequest,
    ProviderRequirements,
    StatusReport,
)


class ProviderError(Exception):
    """A failed provider call, classified so the service knows whether a retry is safe.

    `definite` is True when the provider certainly created nothing (it refused the request,
    or the request never left); False when it may have (timeout after sending, 5xx, an
    unreadable reply). Messages never carry secrets, signatures or request bodies.
    """

    code: ClassVar[str] = "error"
    definite: ClassVar[bool] = True
    # True when the provider answered (5xx, 429, an unreadable body): whatever it did is done,
    # so an indefinite outcome can be settled at once. False for a timeout or a dropped
    # connection, where the request may still be running at the provider.
    answered: ClassVar[bool] = True

    def __init__(self, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


class ProviderValidationError(ProviderError):
    code = "validation"

    def __init__(
        self, message: str, *, fields: dict[str, str] | None = None, http_status: int | None = None
    ) -> None:
        super().__init__(message, http_status=http_status)
        self.fields = fields or {}


class ProviderAuthError(ProviderError):
    code = "auth"


class ProviderUnreachable(ProviderError):
    """The request never reached the provider (DNS, refused connection, connect timeout)."""

    code = "unreachable"


class ProviderUnavailable(ProviderError):
    """5xx or 429: the provider may or may not have acted on the request."""

    code = "unavailable"
    definite = False


class ProviderTimeout(ProviderError):
    code = "timeout"
    definite = False
    answered = False


class ProviderConnectionLost(ProviderError):
    """The connection broke after the request left: the provider may still be acting on it."""

    code = "interrupted"
    definite = False
    answered = False


class ProviderNotConfigured(ProviderError):
    """The invoice was made with a provider whose keys are no longer configured."""

    code = "not_configured"


class ProviderBadResponse(ProviderError):
    code = "bad_response"
    definite = False


class ProviderStateRefused(ProviderError):
    """The provider refused to change an invoice in its current state (it may be paid)."""

    code = "state"


class CallbackRejected(Exception):
    """An inbound callback that must change nothing; `status_code` is what the sender gets."""

    def __init__(self, status_code: int, reason: str) -> None:
        super().__init__(reason)
        self.status_code = status_code
        self.reason = reason


class PaymentProvider(ABC):
    """A payment provider as the services see it: no Telegram, no storage."""

    name: ClassVar[str]
    requirements: ClassVar[ProviderRequirements]

    @abstractmethod
    async def currencies(self) -> list[Currency]:
        """Currencies an invoice may be issued in, with their decimal places."""

    @abstractmethod
    async def create_invoice(self, request: InvoiceRequest) -> CreatedInvoice:
        """Create exactly one invoice for `request.foreign_id`; never retried internally."""

    @abstractmethod
    async def resolve_unknown(
        self, foreign_id: str, created_at: dt.datetime
    ) -> CreatedInvoice | None:
        """Settle an attempt whose answer was lost.

        Returns the invoice if the provider has it and it can be reused, or None once the
        provider certainly holds no payable invoice for `foreign_id`. Raises ProviderError
        when that cannot be established yet.
        """

    # Whether fetch_statuses works: CryptoProcessing has no read endpoint for invoices.
    supports_status_query: ClassVar[bool] = False

    @abstractmethod
    async def parse_callback(self, headers: Mapping[str, str], body: bytes) -> list[StatusReport]:
        """Verify a callback on its raw bytes, then map it; CallbackRejected if not ours."""

    async def fetch_statuses(self, provider_invoice_ids: Sequence[str]) -> list[StatusReport]:
        """Read invoices' current statuses (only where `supports_status_query`)."""
        raise NotImplementedError(f"{self.name} cannot be asked for an invoice's status")

    @abstractmethod
    async def cancel(self, provider_invoice_id: str, foreign_id: str) -> None:
        """Cancel an unpaid invoice; ProviderValidationError when its state does not allow it."""

    @abstractmethod
    async def check_credentials(self) -> None:
        """A harmless authenticated read: ProviderAuthError if the keys are refused."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release the HTTP client."""
