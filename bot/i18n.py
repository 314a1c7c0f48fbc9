"""Texts from bot/locales/*.toml, chosen per user from Telegram's language code."""

from __future__ import annotations

import html
import string
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOCALES_DIR = Path(__file__).resolve().parent / "locales"


class Catalog:
    """All locales, loaded once; a missing key falls back to the default locale, then English."""

    def __init__(self, messages: dict[str, dict[str, str]], default: str) -> None:
        if "en" not in messages:
            raise ValueError("the English locale is required as the last fallback")
        self._messages = messages
        self.default = default if default in messages else "en"

    @classmethod
    def load(cls, directory: Path = LOCALES_DIR, default: str = "en") -> Catalog:
        messages: dict[str, dict[str, str]] = {}
        for path in sorted(directory.glob("*.toml")):
            with path.open("rb") as handle:
                data = tomllib.load(handle)
            messages[path.stem] = {str(key): str(value) for key, value in data.items()}
        return cls(messages, default)

    @property
    def locales(self) -> list[str]:
        return sorted(self._messages)

    def keys(self, locale: str) -> set[str]:
        return set(self._messages.get(locale, {}))

    def placeholders(self, locale: str, key: str) -> set[str]:
        text = self._messages[locale][key]
        return {name for _, name, _, _ in string.Formatter().parse(text) if name}

    def pick(self, language_code: str | None) -> str:
        code = (language_code or "").lower().replace("_", "-").split("-")[0]
        return code if code in self._messages else self.default

    def texts(self, language_code: str | None) -> Texts:
        return Texts(self, self.pick(language_code))

    def raw(self, locale: str, key: str) -> str:
        for candidate in (locale, self.default, "en"):
            text = self._messages.get(candidate, {}).get(key)
            if text is not None:
                return text
        raise KeyError(key)


class Html(str):
    """Text that already is Telegram HTML (a rendered template): placed as it is, not escaped."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Texts:
    """One user's locale. Values are HTML-escaped unless they are `Html` (a text rendered
    by a template), so one rendered text can be placed in another; templates hold HTML."""

    catalog: Catalog
    locale: str

    def __call__(self, key: str, **params: Any) -> Html:
        safe = {
            name: value if isinstance(value, Html) else html.escape(str(value), quote=False)
            for name, value in params.items()
        }
        return Html(self.catalog.raw(self.locale, key).format_map(safe))
