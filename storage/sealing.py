"""Personal data at rest: sealed with AES-256-GCM, found again by a keyed HMAC.

Both keys are derived (HKDF-SHA256) from one operator secret, `DATA_KEY`, so a copy of the
database alone reveals neither a name nor whether a given person is a customer. A sealed
value names the key it was sealed with (an 8-hex key id) and is bound to its row by the
associated data (e.g. `customer:<reference>`), so a value moved to another row does not open.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SEALED_PREFIX = "v1"
MIN_KEY_LENGTH = 32
KEY_FILE_NAME = "data.key"
_NONCE_BYTES = 12


class SealError(Exception):
    """A sealed value that cannot be opened: another key, another row, or tampered with."""


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"crypto-invoice-bot", info=purpose
    ).derive(secret.encode("utf-8"))


def generate_key() -> str:
    """A new DATA_KEY: 256 random bits, URL-safe text (43 characters)."""
    return secrets.token_urlsafe(32)


class Sealer:
    """Seals JSON-able values for one row and computes lookup digests, with one DATA_KEY."""

    def __init__(self, secret: str) -> None:
        if len(secret) < MIN_KEY_LENGTH:
            raise ValueError(f"a data key needs at least {MIN_KEY_LENGTH} characters")
        self._aead = AESGCM(_derive(secret, b"seal v1"))
        self._lookup = _derive(secret, b"lookup v1")
        self.key_id = hmac.new(_derive(secret, b"key id v1"), b"", hashlib.sha256).hexdigest()[:8]

    def digest(self, *parts: object) -> str:
        """A keyed digest (hex, 64 characters) of `parts`: equal inputs, equal digests."""
        data = json.dumps(list(parts), ensure_ascii=False, separators=(",", ":"))
        return hmac.new(self._lookup, data.encode("utf-8"), hashlib.sha256).hexdigest()

    def seal(self, value: Any, bound_to: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        plain = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        sealed = self._aead.encrypt(nonce, plain, bound_to.encode("utf-8"))
        token = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{SEALED_PREFIX}.{self.key_id}.{token}"

    def open(self, sealed: str, bound_to: str) -> Any:
        try:
            version, key_id, token = sealed.split(".", 2)
        except ValueError:
            raise SealError("not a sealed value") from None
        if version != SEALED_PREFIX:
            raise SealError(f"unknown seal version {version!r}")
        if key_id != self.key_id:
            raise SealError(f"sealed with another data key (key id {key_id})")
        raw = base64.urlsafe_b64decode(token.encode("ascii"))
        try:
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], bound_to.encode())
        except InvalidTag:
            raise SealError("the sealed value does not open (tampered with or moved)") from None
        return json.loads(plain)


def key_id_of(sealed: str) -> str | None:
    """The key id a sealed value names, without opening it."""
    parts = sealed.split(".", 2)
    return parts[1] if len(parts) == 3 and parts[0] == SEALED_PREFIX else None


def key_file_for(database_url: str) -> Path:
    """Where a generated key is kept: beside the SQLite file, else in ./data."""
    prefix = "sqlite+aiosqlite:///"
    if database_url.startswith(prefix):
        path = database_url[len(prefix) :].split("?", 1)[0]
        if path not in {"", ":memory:"}:
            return Path(path).parent / KEY_FILE_NAME
    return Path("data") / KEY_FILE_NAME


def read_key_file(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def write_key_file(path: Path, key: str) -> None:
    """Create the key file readable by its owner only; never overwrite an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")


def key_from_environment(database_url: str) -> str | None:
    """The operator's DATA_KEY, else the generated key file; None when neither exists."""
    return os.environ.get("DATA_KEY", "").strip() or read_key_file(key_file_for(database_url))


def customer_lookup_key(sealer: Sealer, merchant_id: int, kind: str, parts: list[str]) -> str:
    """The customer's lookup key: case and spacing do not make a new customer."""
    normalised = [" ".join(part.casefold().split()) for part in parts]
    return sealer.digest(merchant_id, kind, *normalised)
