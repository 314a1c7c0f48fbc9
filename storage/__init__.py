"""SQLite (or any SQLAlchemy async URL) persistence: models, engine, migrations, repositories."""
