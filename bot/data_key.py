"""The DATA_KEY in use: the operator's, or one generated on first start beside the database."""

from __future__ import annotations

import logging

from bot.config import Settings
from storage.sealing import generate_key, key_file_for, read_key_file, write_key_file

logger = logging.getLogger(__name__)


def resolve_data_key(settings: Settings) -> str:
    """DATA_KEY if set; else the key file beside the SQLite database, created if missing.

    Settings refuse a PostgreSQL database without DATA_KEY: processes on several machines
    must share the key, and a file on one of them would not be shared.
    """
    if settings.data_key is not None:
        return settings.data_key.get_secret_value()
    path = key_file_for(settings.database_url)
    existing = read_key_file(path)
    if existing is not None:
        return existing
    key = generate_key()
    try:
        write_key_file(path, key)
    except FileExistsError:  # another start won the race: use its key
        return read_key_file(path) or key
    logger.warning(
        "Generated a data key in %s: it seals your customers' sender data. Back it up with "
        "the database (without it that data cannot be read), or move it into DATA_KEY.",
        path,
    )
    return key
