# syntax=docker/dockerfile:1
# Both stages use the same base image, so the virtualenv built in the first one finds the
# same interpreter (/usr/local/bin/python3.11) in the second.
ARG PYTHON_IMAGE=python:3.11-slim

# Build stage: install the project and its dependencies into a virtualenv, as a user would.
# The locales and the database migrations are package data, so the venv is all the bot needs.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY storage ./storage
RUN /opt/venv/bin/pip install .

# Runtime stage: only the virtualenv (no source tree, no compilers, no tests), no secrets,
# not root.
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    DATABASE_URL=sqlite+aiosqlite:////data/bot.sqlite3
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin bot \
    && mkdir -p /data /app && chown bot /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
USER bot
# Payment callbacks, /healthz and (in webhook mode) Telegram updates arrive on this port.
EXPOSE 8080
# /healthz answers 200 while the bot and its database are up, 503 otherwise.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${HTTP_PORT:-8080}/healthz', timeout=4)"
# The SQLite database (invoice log, customers' references, drafts) and, without DATA_KEY, the
# key that seals personal data live here: keep it. With PostgreSQL it stays empty.
VOLUME ["/data"]
# Settings come from the environment (docker run --env-file .env); none are baked in.
CMD ["crypto-invoice-bot"]
