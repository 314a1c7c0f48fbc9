"""Persistence on SQLite (the default) or PostgreSQL (asyncpg): models, engine, migrations,
repositories."""
