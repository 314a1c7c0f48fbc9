# syntax=docker/dockerfile:1
# Build stage: resolve and install the dependencies into a virtualenv.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY storage ./storage
# Install the project to pull its pinned-by-range dependencies, then drop the project itself:
# the runtime stage runs the source tree from /app, next to locales/.
RUN /opt/venv/bin/pip install . && /opt/venv/bin/pip uninstall --yes crypto-invoice-bot

# Runtime stage: no compilers, no tests, no secrets, not root.
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    DATABASE_URL=sqlite+aiosqlite:////data/bot.sqlite3
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin bot \
    && mkdir -p /data /app && chown bot /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY bot ./bot
COPY storage ./storage
COPY bot/locales ./bot/locales
USER bot
# Payment callbacks, /healthz and (in webhook mode) Telegram updates arrive on this port.
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"
# The SQLite database (invoice log, customers' references, drafts) lives here: keep it.
VOLUME ["/data"]
# Settings come from the environment (docker run --env-file .env); none are baked in.
CMD ["python", "-m", "bot"]
