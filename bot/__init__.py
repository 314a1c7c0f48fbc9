"""Telegram bot that issues crypto-payment invoices for merchants."""
