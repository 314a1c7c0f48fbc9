"""compose.yaml, the high-availability set-up: PostgreSQL and two bot processes.

No Docker engine runs here, so nothing is started: the file's structure is checked as data,
and where a Compose CLI is installed (`docker compose`, or the older `docker-compose`), its
own `config` validates and resolves the file (that needs no engine).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose.yaml"
BOTS = ("bot-1", "bot-2")
HEALTHZ = "http://127.0.0.1:8080/healthz"
_VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def _load() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _services() -> dict[str, dict[str, Any]]:
    services = _load()["services"]
    assert isinstance(services, dict)
    return services


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `${NAME:-default}` substitution, for the forms this file uses."""
    return _VARIABLE.sub(lambda match: env.get(match[1]) or (match[2] or ""), value)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):  # the `- NAME=value` form
        environment = dict(item.partition("=")[::2] for item in environment)
    return {str(key): str(value) for key, value in environment.items()}


def _healthcheck(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else str(test)


def test_two_bot_processes_built_from_the_dockerfile() -> None:
    services = _services()
    built = sorted(name for name, service in services.items() if "build" in service)
    assert built == list(BOTS)
    for name in BOTS:
        build = services[name]["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        assert (ROOT / context / "Dockerfile").is_file(), name
        assert services[name]["env_file"] in (".env", [".env"]), name
        assert services[name]["restart"] == "unless-stopped", name


def test_postgres_has_a_named_volume_a_health_check_and_a_password_from_env() -> None:
    data = _load()
    postgres = data["services"]["postgres"]
    assert postgres["image"].startswith("postgres:16")
    assert "pg_isready" in _healthcheck(postgres)
    named = {entry.split(":")[0] for entry in postgres["volumes"]}
    assert named & set(data["volumes"]), "the database must live in a named volume"
    assert any(entry.endswith(":/var/lib/postgresql/data") for entry in postgres["volumes"])
    password = _environment(postgres)["POSTGRES_PASSWORD"]
    assert _VARIABLE.fullmatch(password), "the password must come from the environment"
    assert _interpolate(password, {}), "with a default for local use"
    assert _interpolate(password, {"POSTGRES_PASSWORD": "operator-set"}) == "operator-set"


@pytest.mark.parametrize("name", BOTS)
def test_each_bot_waits_for_a_healthy_postgres_and_checks_its_own_health(name: str) -> None:
    bot = _services()[name]
    assert bot["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert HEALTHZ in _healthcheck(bot)
    assert _environment(bot)["HTTP_PORT"] == "8080"  # the port the health check asks


@pytest.mark.parametrize("env", [{}, {"POSTGRES_PASSWORD": "s3cret-pw", "POSTGRES_DB": "shop"}])
@pytest.mark.parametrize("name", BOTS)
def test_each_bot_s_database_url_is_the_compose_postgres_through_asyncpg(
    name: str, env: dict[str, str]
) -> None:
    services = _services()
    url = make_url(_interpolate(_environment(services[name])["DATABASE_URL"], env))
    postgres = {key: _interpolate(value, env) for key, value in
                _environment(services["postgres"]).items()}  # fmt: skip
    assert url.drivername == "postgresql+asyncpg"
    assert (url.host, url.port) == ("postgres", 5432)
    assert url.username == postgres["POSTGRES_USER"]
    assert url.password == postgres["POSTGRES_PASSWORD"]
    assert url.database == postgres["POSTGRES_DB"]


def test_one_bot_publishes_its_port_on_loopback_and_the_header_explains_the_set_up() -> None:
    services = _services()
    published = [port for name in BOTS for port in services[name].get("ports", [])]
    assert "127.0.0.1:8080:8080" in published
    header = COMPOSE.read_text(encoding="utf-8").split("\nx-bot:")[0].lower()
    for words in ("share", "polling", "stands by", "webhook", "load balancer", "data_key"):
        assert words in header, words


def _compose_cli() -> list[str] | None:
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None:
            continue
        try:
            answer = subprocess.run(  # noqa: S603 - a fixed command found on PATH
                [*command, "version"], capture_output=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if answer.returncode == 0:
            return command
    return None


def test_the_compose_cli_validates_and_resolves_the_file(tmp_path: Path) -> None:
    command = _compose_cli()
    if command is None:
        pytest.skip("no Compose CLI here (`docker compose` nor `docker-compose`)")
    shutil.copy2(COMPOSE, tmp_path / "compose.yaml")
    shutil.copy2(ROOT / "Dockerfile", tmp_path / "Dockerfile")
    # As an operator's .env: the SQLite default must not win over the compose DATABASE_URL.
    (tmp_path / ".env").write_text(
        "TELEGRAM_BOT_TOKEN=1234:dummy\nDATA_KEY=dummy-data-key-0123456789abcdef\n"
        "DATABASE_URL=sqlite+aiosqlite:///./data/bot.sqlite3\nHTTP_PORT=9999\n",
        encoding="utf-8",
    )
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    base = [*command, "-f", "compose.yaml", "--project-directory", str(tmp_path)]

    quiet = subprocess.run(  # noqa: S603 - the Compose CLI found above
        [*base, "config", "--quiet"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert quiet.returncode == 0, quiet.stderr
    resolved = subprocess.run(  # noqa: S603 - the Compose CLI found above
        [*base, "config"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert resolved.returncode == 0, resolved.stderr
    services = yaml.safe_load(resolved.stdout)["services"]
    for name in BOTS:
        environment = _environment(services[name])
        assert (
            environment["DATABASE_URL"]
            == "postgresql+asyncpg://bot:bot-local-only@postgres:5432/bot"
        )
        assert environment["HTTP_PORT"] == "8080"
        assert environment["DATA_KEY"] == "dummy-data-key-0123456789abcdef"  # from .env

    # The same CLI refuses a broken file, so the check above can fail.
    broken = tmp_path / "compose.yaml"
    broken.write_text(
        broken.read_text(encoding="utf-8").replace("service_healthy", "service_happy"),
        encoding="utf-8",
    )
    refused = subprocess.run(  # noqa: S603 - the Compose CLI found above
        [*base, "config", "--quiet"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode != 0
