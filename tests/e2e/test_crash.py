"""The bot killed with SIGKILL at least 100 times while merchants work: nothing acknowledged is
lost, the database stays sound, no order becomes payable twice, conversations resume.

The harness lives in bench/crash.py (`make crash` prints the figures); this runs it with a
fixed seed and asserts its invariants. It takes about 2.5 minutes (3.5 on a loaded 2-core
machine); on failure the message holds the figures, and tmp_path keeps bot.log, the database,
report.txt (every violation) and transcript.txt (every step, reaction and kill, timed).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.crash import CrashConfig, run_crash_test

# Run by `make crash` (and `pytest -m crash`), not by `make test`: kill moments follow the
# machine's timing, and one failure class is still open (see README, "Known limits").
pytestmark = pytest.mark.crash

KILLS = 100
SEED = 20240611


async def test_bot_survives_a_hundred_kills(tmp_path: Path) -> None:
    report = await run_crash_test(
        CrashConfig(kills=KILLS, seed=SEED, workdir=tmp_path, max_seconds=300)
    )

    summary = report.text()
    assert report.kills >= KILLS, summary
    assert report.ok, summary
