"""The project as a user installs it: a built wheel, installed into a clean venv, runs the bot.

The wheel is built from a copy of exactly what the Dockerfile's build stage copies
(pyproject.toml, README.md, bot/, storage/), the way `pip install .` builds it (an isolated
build with the setuptools that pyproject.toml asks for). It is installed without dependencies
into a new venv that sees the dependencies through a .pth line pointing at this interpreter's
site-packages. A path line in a .pth file does not run the .pth files of the folder it names,
so the editable install of this checkout (a .pth import hook in .venv) is not active there:
the checkout's own sources cannot be imported, and every module, locale and migration must
come from the wheel. Every run happens in a folder outside the checkout.
"""

from __future__ import annotations

import asyncio
import json
import pkgutil
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

import bot
import storage
import storage.models  # registers the tables on SQLModel.metadata
from bot.i18n import LOCALES_DIR, Catalog
from storage.engine import MIGRATIONS_DIR, alembic_config
from tests.conftest import MERCHANT_ID, OTHER_MERCHANT_ID
from tests.e2e.test_startup import (
    CC_KEY,
    CC_SECRET,
    CC_SHOP,
    START_TIMEOUT,
    TOKEN,
    Result,
    _cloud,
    _env,
    _free_port,
    _only_the_bot_s_lines,
    _text,
    _wait,
)
from tests.fakes.cryptocloud_api import FakeCryptoCloud
from tests.fakes.telegram_api import FakeTelegram

ROOT = Path(__file__).resolve().parents[1]
# What the Dockerfile's build stage copies before `pip install .`; nothing else may be needed.
SOURCES = ("pyproject.toml", "README.md", "bot", "storage")
BUILD_TIMEOUT = 180.0  # an isolated build may fetch setuptools on a cold cache


def _run(args: list[str], cwd: Path, timeout: float = 60.0) -> str:
    result = subprocess.run(  # noqa: S603 - this interpreter, or the venv the test made
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )  # fmt: skip
    assert result.returncode == 0, f"{args[:4]}... failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _repo_files(package: Path, pattern: str) -> set[str]:
    """Paths (as in the wheel) of the checkout's files under `package` matching `pattern`."""
    return {path.relative_to(ROOT).as_posix() for path in package.glob(pattern)}


def _repo_modules() -> list[str]:
    """Every importable module of the checkout's bot and storage packages (not the migrations,
    which alembic loads as files)."""
    names = [bot.__name__, storage.__name__]
    for package in (bot, storage):
        names += [
            info.name
            for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + ".")
            if not info.name.startswith("storage.migrations")
        ]
    return sorted(names)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), "."],
        cwd=source,
        timeout=BUILD_TIMEOUT,
    )
    wheels = list(dist.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@dataclass(frozen=True)
class Installed:
    venv: Path
    site: Path  # where the wheel's packages went
    cwd: Path  # a folder outside the checkout to run from

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def script(self) -> Path:
        return self.venv / "bin" / "crypto-invoice-bot"


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    venv = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--clear", "--without-pip", str(venv)], cwd=venv)
    where = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(_run([str(venv / "bin" / "python"), "-c", where], cwd=venv).strip())  # fmt: skip
    # The wheel first, while the new venv sees nothing else: pip must not find (and try to
    # replace) the checkout's editable install through the dependencies' path.
    _run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "--no-deps", "--no-index", "--quiet", str(wheel)],
        cwd=venv,
    )  # fmt: skip
    dependencies = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site / "_test_dependencies.pth").write_text(
        "".join(f"{path}\n" for path in sorted(dependencies)), encoding="utf-8"
    )
    cwd = tmp_path_factory.mktemp("run")
    assert not cwd.resolve().is_relative_to(ROOT)
    return Installed(venv=venv, site=site, cwd=cwd)


# --------------------------------------------------------------------------- the wheel


def test_the_wheel_carries_the_locales_the_migrations_and_the_entry_point(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(
            archive.read(name).decode() for name in names if name.endswith("entry_points.txt")
        )
    locales = _repo_files(LOCALES_DIR, "*.toml")
    assert {"bot/locales/en.toml", "bot/locales/de.toml", "bot/locales/ru.toml"} <= locales
    migrations = _repo_files(MIGRATIONS_DIR, "versions/*.py") | {
        "storage/migrations/env.py",
        "storage/migrations/script.py.mako",
    }
    assert len(migrations) >= 7, migrations
    missing = sorted((locales | migrations) - names)
    assert not missing, f"not in the wheel: {missing}"
    # Only the bot's own packages: no tests, benchmarks or stray top-level modules.
    top_level = {
        name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")
    }
    assert top_level == {"bot", "storage"}, top_level
    assert "crypto-invoice-bot = bot.__main__:main" in entry_points


# --------------------------------------------------------------------------- the Dockerfile


def _stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), split at each FROM."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    stages: list[list[str]] = [[]]
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages[1:]


def test_the_image_installs_the_project_once_and_runs_only_the_venv() -> None:
    build, runtime = _stages()[-2:]
    copied = [line.split()[1:-1] for line in build if line.startswith("COPY ")]
    # The build stage copies what the wheel above was built from, and installs it once.
    assert sorted(name for names in copied for name in names) == sorted(SOURCES)
    assert any(re.search(r"pip install \.$", line) for line in build), build
    assert not [line for stage in _stages() for line in stage if "uninstall" in line]
    # The runtime stage takes only the venv: no source tree beside it.
    assert [line for line in runtime if line.startswith(("COPY ", "ADD "))] == [
        "COPY --from=build /opt/venv /opt/venv"
    ]
    user = [line.split()[1] for line in runtime if line.startswith("USER ")]
    assert user and user[-1] not in {"root", "0"}
    assert any(line.startswith("HEALTHCHECK ") and "/healthz" in line for line in runtime)
    assert "EXPOSE 8080" in runtime
    assert 'VOLUME ["/data"]' in runtime
    settings = " ".join(line for line in runtime if line.startswith(("ENV ", "ARG ")))
    baked = re.findall(r"(\w*(?:TOKEN|KEY|SECRET|PASSWORD)\w*)=", settings)
    assert not baked, f"secrets baked into the image: {baked}"


# --------------------------------------------------------------------------- the installed copy

_PROBE = """
import asyncio, importlib, json, sys

from sqlalchemy import inspect


async def migrate_fresh(url):
    from storage.engine import create_engine, migrate

    engine = create_engine(url)
    try:
        await migrate(engine)
        async with engine.connect() as connection:
            revision = (
                await connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            ).scalar_one()
            tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await engine.dispose()
    return revision, tables


modules = {name: importlib.import_module(name).__file__ for name in json.loads(sys.argv[1])}
from bot.i18n import LOCALES_DIR, Catalog
from storage.engine import MIGRATIONS_DIR

catalog = Catalog.load()
revision, tables = asyncio.run(migrate_fresh(sys.argv[2]))
print(json.dumps({
    "modules": modules,
    "sys_path": sys.path,
    "meta_path": [repr(finder) for finder in sys.meta_path],
    "locales": catalog.locales,
    "welcome": {locale: catalog.raw(locale, "welcome") for locale in catalog.locales},
    "locales_dir": str(LOCALES_DIR),
    "migrations_dir": str(MIGRATIONS_DIR),
    "revision": revision,
    "tables": tables,
}))
"""


def test_the_installed_copy_loads_every_locale_and_migrates_a_fresh_sqlite_file(
    installed: Installed,
) -> None:
    database = installed.cwd / "fresh.sqlite3"
    assert not database.exists()
    out = _run(
        [str(installed.python), "-c", _PROBE, json.dumps(_repo_modules()),
         f"sqlite+aiosqlite:///{database}"],
        cwd=installed.cwd,
    )  # fmt: skip
    found = json.loads(out.strip().splitlines()[-1])

    # Every module of the checkout was imported, and each one from the installed copy.
    elsewhere = {
        name: path
        for name, path in found["modules"].items()
        if not Path(path).resolve().is_relative_to(installed.site.resolve())
    }
    assert not elsewhere, f"imported from outside the installed copy: {elsewhere}"
    assert set(found["modules"]) == set(_repo_modules())
    # ...and the checkout could not have supplied one: not on the path (only the
    # dependencies in its .venv are), no editable-install hook.
    on_path = [Path(entry or installed.cwd).resolve() for entry in found["sys_path"]]
    from_checkout = [
        path for path in on_path
        if path.is_relative_to(ROOT) and not path.is_relative_to(ROOT / ".venv")
    ]  # fmt: skip
    assert not from_checkout, from_checkout
    assert not [finder for finder in found["meta_path"] if "editable" in finder.lower()]

    assert found["locales"] == ["de", "en", "ru"]
    assert Path(found["locales_dir"]).is_relative_to(installed.site)
    repo_catalog = Catalog.load()
    for locale in ("de", "en", "ru"):
        assert found["welcome"][locale] == repo_catalog.raw(locale, "welcome")
    assert found["welcome"]["de"] != found["welcome"]["en"] != found["welcome"]["ru"]

    assert Path(found["migrations_dir"]).is_relative_to(installed.site)
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert found["revision"] == head
    assert set(found["tables"]) == set(SQLModel.metadata.tables) | {"alembic_version"}
    assert database.exists()


def test_the_installed_console_script_runs_the_bot_s_main(installed: Installed) -> None:
    # A setting the bot refuses: main() reports it in one line and exits with code 2.
    result = subprocess.run(  # noqa: S603 - the script the wheel installed
        [str(installed.script)], cwd=installed.cwd, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "TELEGRAM_BOT_TOKEN": TOKEN, "PROVIDER": "paypal"},
        check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "PROVIDER: must be 'cryptoprocessing' or 'cryptocloud'" in result.stderr
    assert "Traceback" not in result.stderr and TOKEN not in result.stderr


# --------------------------------------------------------------------------- the installed bot


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as fake:
        yield fake


@pytest.fixture
async def cryptocloud() -> AsyncIterator[FakeCryptoCloud]:
    async with FakeCryptoCloud(api_key=CC_KEY, shop_id=CC_SHOP, secret_key=CC_SECRET) as fake:
        yield fake


async def test_the_installed_bot_starts_answers_in_each_language_and_stops(
    installed: Installed, telegram: FakeTelegram, cryptocloud: FakeCryptoCloud
) -> None:
    port = _free_port()
    database = installed.cwd / "live" / "bot.sqlite3"
    env = _env(installed.cwd, telegram, **_cloud(cryptocloud)) | {
        "HTTP_PORT": str(port),
        "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "MERCHANT_IDS": f"{MERCHANT_ID},{OTHER_MERCHANT_ID}",
    }
    del env["PYTHONPATH"]  # the venv has the bot installed; nothing points at the checkout
    log = installed.cwd / "live.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            str(installed.python), "-m", "bot", cwd=installed.cwd, env=env, stdout=sink, stderr=sink
        )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                if process.returncode is not None:
                    pytest.fail(f"the bot exited with {process.returncode}:\n{_text(log)}")
                try:
                    health = await client.get(f"http://127.0.0.1:{port}/healthz")
                    if health.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if loop.time() > deadline:
                    pytest.fail(f"/healthz did not answer 200 in time:\n{_text(log)}")
                await asyncio.sleep(0.1)
        assert health.json()["database"] is True, health.text

        # The running process answers from the installed locales, in the user's language.
        catalog = Catalog.load()
        for user_id, language in ((MERCHANT_ID, "de"), (OTHER_MERCHANT_ID, "ru")):
            reply = await telegram.user(user_id, language_code=language).reply("/start", 15.0)
            first_line = catalog.raw(language, "welcome").splitlines()[0]
            assert first_line in reply.text, (language, reply.text)
        menus = {call.as_str("language_code") for call in telegram.calls_to("setMyCommands")}
        assert {"de", "ru"} <= menus, menus
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    code = await _wait(process, log, 30.0)
    result = Result(code, _text(log))
    result.check_clean()
    assert result.code == 0, result.out
    _only_the_bot_s_lines(result)
    assert "Telegram accepted the token: this is @invoice_test_bot" in result.out
    assert database.exists()
