"""The merchant's use cases. No Telegram and no HTTP here: providers and storage are injected."""
