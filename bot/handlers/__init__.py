"""Telegram layer: read updates, call services, render replies. No HTTP or SQL here."""
