"""Small HTTP servers that stand in for Telegram and the payment providers in tests."""
