"""SQLite serves one bot process: a second one on the same database file is refused at start."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from bot.domain import StartupRefused


class AnotherProcessRunning(StartupRefused):
    pass


class ProcessLock:
    """An exclusive lock on `<database>.lock`; the OS drops it when the process dies, so a
    restart after a crash is never refused."""

    def __init__(self, database: Path) -> None:
        self._path = database.with_name(database.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AnotherProcessRunning(
                f"another bot process is already using {self._path.with_suffix('')}: SQLite "
                "serves one process. Stop the other one, or use PostgreSQL "
                "(DATABASE_URL=postgresql+asyncpg://...) to run several"
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
