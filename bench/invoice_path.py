"""Benchmarks for the invoice path: prints figures and asserts nothing (targets live here).

Run with `make bench`. Measures input parsing, request signing, and whole invoice creations
through the real services, SQLite store and adapter against the fake CryptoProcessing server
on loopback.
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import tempfile
import time
import timeit
from decimal import Decimal
from pathlib import Path

from bot.config import Settings
from bot.domain import SenderType
from bot.providers import build_providers
from bot.providers.cryptoprocessing import sign
from bot.providers.wire import dump_json
from bot.services.customers import CustomerService
from bot.services.drafts import DraftCodec, DraftService
from bot.services.inputs import parse_amount
from bot.services.invoices import InvoiceService
from bot.services.payments import PaymentService
from storage.engine import create_engine, create_session_factory, migrate
from storage.repositories import (
    AlertRepository,
    CustomerRepository,
    DraftRepository,
    InvoiceRepository,
    PaymentRepository,
)
from storage.sealing import Sealer, generate_key
from tests.fakes.cryptoprocessing_api import FakeCryptoProcessing

INVOICES = 300
CONCURRENCY = 10


def micro() -> None:
    n = 20_000
    per_parse = timeit.timeit(lambda: parse_amount("1 234,56", max_amount=Decimal(10**9)), number=n)
    body = {"amount": Decimal("1234.56"), "title": "Order", "foreign_id": "0123456789abcdef"}
    per_sign = timeit.timeit(lambda: sign(b"secret", dump_json(body)), number=n)
    print(f"parse_amount          {per_parse / n * 1e6:8.1f} µs/op")
    print(f"serialise + sign      {per_sign / n * 1e6:8.1f} µs/op")


async def end_to_end(workdir: Path) -> None:
    async with FakeCryptoProcessing() as fake:
        settings = Settings(
            _env_file=None,
            telegram_bot_token="1:bench",
            provider="cryptoprocessing",
            cryptoprocessing_api_key=fake.api_key,
            cryptoprocessing_secret_key=fake.secret_key,
            cryptoprocessing_base_url=fake.base_url,
            invoice_url_success="https://shop.example.com/ok",
            invoice_url_failed="https://shop.example.com/no",
            merchant_ids="1",
            database_url=f"sqlite+aiosqlite:///{workdir / 'bench.sqlite3'}",
        )
        engine = create_engine(settings.database_url)
        await migrate(engine)
        sessions = create_session_factory(engine)
        providers = build_providers(settings)
        drafts_repo = DraftRepository(sessions)
        sealer = Sealer(generate_key())
        codec = DraftCodec(sealer)
        drafts = DraftService(drafts_repo, codec)
        customers = CustomerService(CustomerRepository(sessions), sealer)
        payments = PaymentService(providers=providers, payments=PaymentRepository(sessions))
        invoices = InvoiceService(
            providers=providers, invoices=InvoiceRepository(sessions), drafts=drafts_repo,
            codec=codec, customers=customers, payments=payments, alerts=AlertRepository(sessions),
        )  # fmt: skip
        latencies: list[float] = []
        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def one(i: int) -> None:
            async with semaphore:
                draft = await drafts.start(drafts.new(merchant_id=1, chat_id=10_000 + i))
                draft.amount, draft.currency, draft.title = Decimal("10.50"), "EUR", f"Bench {i}"
                draft.sender_type, draft.legal_name = SenderType.LEGAL, f"Company {i % 50}"
                draft.country_alpha3, draft.email = "DEU", "bench@example.org"
                await drafts.save(draft)
                started = time.perf_counter()
                await invoices.submit(draft.id, 1)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(INVOICES)))
        elapsed = time.perf_counter() - started
        await providers.aclose()
        await engine.dispose()
        latencies.sort()
        p95 = latencies[int(len(latencies) * 0.95) - 1]
        print(f"invoices created      {INVOICES:8d} ({CONCURRENCY} at a time)")
        print(f"throughput            {INVOICES / elapsed:8.1f} invoices/s")
        print(f"submit latency p50    {statistics.median(latencies) * 1000:8.1f} ms")
        print(f"submit latency p95    {p95 * 1000:8.1f} ms")
        print(f"provider invoices     {len(fake.invoices):8d} (must equal invoices created)")
        size_kib = (workdir / "bench.sqlite3").stat().st_size / 1024
        print(f"database size         {size_kib:8.0f} KiB")


def main() -> None:
    micro()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(end_to_end(Path(tmp)))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS              {peak_mib:8.1f} MiB")


if __name__ == "__main__":
    main()
