"""Benchmark: signed CryptoProcessing callbacks through the bot's HTTP server into SQLite.

Prints how fast callbacks are verified, stored and answered (providers retry when the answer
is slow), and checks that duplicates changed nothing. Run with `make bench`.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import httpx

from bot.app import HttpServer
from bot.providers import ProviderRegistry
from bot.providers.cryptoprocessing import CryptoProcessingProvider, sign
from bot.services.payments import PaymentService
from bot.web import build_web_app
from storage.engine import create_engine, create_session_factory, migrate
from storage.models import DraftRow, InvoiceRow
from storage.repositories import DraftRepository, InvoiceRepository, PaymentRepository

INVOICES = 200
CONCURRENCY = 10  # providers deliver callbacks a few at a time, not in one burst
KEY, SECRET = "bench-key", "bench-secret"


def _callback(invoice_id: int, status: str) -> bytes:
    return json.dumps(
        {"id": invoice_id, "foreign_id": f"f{invoice_id}", "type": "invoice", "status": status,
         "error": "", "currency_received": {"currency": "EUR", "amount": "10.00000000"},
         "transactions": [{"id": invoice_id}]}
    ).encode()  # fmt: skip


async def run(workdir: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{workdir / 'bench.sqlite3'}")
    await migrate(engine)
    sessions = create_session_factory(engine)
    invoices = InvoiceRepository(sessions)
    for i in range(INVOICES):
        await DraftRepository(sessions).start(DraftRow(id=f"{i:016x}", merchant_id=1, chat_id=i))
        await invoices.begin_attempt(
            InvoiceRow(public_id=f"f{i}", draft_id=f"{i:016x}", provider="cryptoprocessing",
                       amount=Decimal("10"), currency="EUR", title="t", merchant_id=1, chat_id=i,
                       outcome="created", status="created", provider_invoice_id=str(i))
        )  # fmt: skip
    provider = CryptoProcessingProvider(
        httpx.AsyncClient(), api_key=KEY, secret_key=SECRET,
        url_success="https://x.example", url_failed="https://x.example", timer=False,
    )  # fmt: skip
    providers = ProviderRegistry({provider.name: provider}, provider.name)
    payments = PaymentService(providers=providers, payments=PaymentRepository(sessions))
    app = build_web_app(payments=payments, max_body=65536, is_ready=lambda: True)
    server = HttpServer(app, "127.0.0.1", 0)  # the bot's own server wrapper
    await server.start()
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def post(body: bytes) -> None:
            async with gate:
                await _post(body)

        async def _post(body: bytes) -> None:
            started = time.perf_counter()
            headers = {
                "X-Processing-Key": KEY,
                "X-Processing-Signature": sign(SECRET.encode(), body),
                "Content-Type": "application/json",
            }
            response = await client.post(
                "/callbacks/cryptoprocessing", content=body, headers=headers
            )
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200

        started = time.perf_counter()
        for status in ("pending", "confirmed", "confirmed"):  # the last round is all duplicates
            await asyncio.gather(*(post(_callback(i, status)) for i in range(INVOICES)))
        elapsed = time.perf_counter() - started
    rows, _ = await invoices.recent(limit=INVOICES)
    await server.stop()
    await provider.aclose()
    await engine.dispose()
    latencies.sort()
    rounds = f"{INVOICES} invoices x 3 rounds, {CONCURRENCY} at a time"
    print(f"callbacks answered    {len(latencies):8d} ({rounds})")
    print(f"throughput            {len(latencies) / elapsed:8.1f} callbacks/s")
    print(f"answer latency p50    {statistics.median(latencies) * 1000:8.1f} ms")
    print(f"answer latency p95    {latencies[int(len(latencies) * 0.95) - 1] * 1000:8.1f} ms")
    print(f"invoices paid         {sum(r.status == 'paid' for r in rows):8d} of {len(rows)}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(Path(tmp)))


if __name__ == "__main__":
    main()
