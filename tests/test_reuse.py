"""The apps as another project gets them (docs/reuse.md): the wheel ``pip wheel`` builds from this
checkout, installed with its declared dependencies into a fresh virtualenv, in a project made by
``django-admin startproject`` that only adds the two apps and their URLs.

The project runs from a temporary directory with a clean environment, so nothing of this checkout
is on its path: what it imports comes from the wheel. It migrates (SQLite, Django's defaults),
writes through ``Agent``, ``append_messages``, ``Message.objects.create`` and ``bulk_create``,
checks ``empty_sessions --format json`` against the numbers the writes imply, ``verify_sessions``
for the counters the ORM writes leave behind, and renders the analytics page logged in.

Needs PyPI (or the pip cache) for the build backend and the dependencies. Where it is unreachable
the test skips, and fails under ``HERMES_STRICT=1`` (CI).
"""

import ast
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parents[1]
APPS = ("agents_app", "sessions_app")
NOT_INSTALLED = ("hermes_site", "tests", "bench", "docs", "manage.py")
# What the analytics page and the admin need of the package data.
PACKAGE_DATA = (
    "sessions_app/templates/admin/sessions_app/session/empty_rates.html",
    "sessions_app/templates/admin/sessions_app/session/change_list.html",
    "sessions_app/static/sessions_app/empty_rates.css",
    "sessions_app/static/sessions_app/session_admin.css",
)
NETWORK_TROUBLE = (
    "NewConnectionError",
    "Network is unreachable",
    "Temporary failure in name resolution",
    "Name or service not known",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ProxyError",
)

# Run by the fresh project's ``manage.py shell``: the writes, each way another app may write.
WRITES = """
import datetime as dt
from django.contrib.auth.models import User
from agents_app.agent import Agent
from agents_app.models import LanguageModel
from sessions_app.models import Message, Session
from sessions_app.services import append_messages

with Agent("vendor/model-a", "cli") as agent:  # the save path through the facade: 1 session
    agent.add_message("user", "hi")
    agent.add_message("assistant", "hello")
Agent("vendor/model-a", "cli").end()  # never spoke: no session
append_messages(  # the save path itself: 1 session
    "s-append", [{"role": "user", "content": "x"}], model="vendor/model-b", source="telegram"
)
# Another app writing rows directly: the database keeps has_messages, not the counters.
started = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
model_b = LanguageModel.objects.get(name="vendor/model-b")
model_c = LanguageModel.objects.create(name="vendor/model-c")
Session.objects.create(id="s-orm", model=model_b, source="cli", started_at=started)
Message.objects.create(session_id="s-orm", role="user", content="by the ORM", timestamp=started)
Session.objects.create(id="s-empty", model=model_b, source="cli", started_at=started)
Session.objects.bulk_create(
    [Session(id=f"s-bulk-{n}", model=model_c, source="cron", started_at=started) for n in range(3)]
)
Message.objects.bulk_create(
    [Message(session_id="s-bulk-0", role="user", content=f"m{n}", timestamp=started) for n in range(2)]
)
User.objects.create_superuser("host-admin", "admin@example.com", "not-used")
"""
# Sessions and empty sessions per model, as the writes above make them.
EXPECTED = {
    "vendor/model-a": (1, 0),  # the agent that spoke
    "vendor/model-b": (3, 1),  # s-append, s-orm (a message by the ORM), s-empty
    "vendor/model-c": (3, 2),  # s-bulk-0 (two messages by bulk_create), s-bulk-1, s-bulk-2
}
# The sessions whose message_count the ORM writes left behind: s-orm and s-bulk-0.
COUNTERS_OFF = 2

PAGE = """
import importlib.util, json, pathlib, sys
import sessions_app
from django.contrib.auth.models import User
from django.contrib.staticfiles import finders
from django.test import Client

client = Client(SERVER_NAME="localhost")
client.force_login(User.objects.get(username="host-admin"))
page = client.get("/admin/sessions_app/session/empty-rates/")
print(json.dumps({
    "status": page.status_code,
    "html": page.content.decode(),
    "json": client.get("/admin/sessions_app/session/empty-rates/", {"format": "json"}).json(),
    "metrics": client.get("/metrics").status_code,
    "app_file": sessions_app.__file__,
    "css": finders.find("sessions_app/empty_rates.css"),
    "prefix": sys.prefix,
    "hermes_site": importlib.util.find_spec("hermes_site") is not None,
}))
"""


def run(args, *, cwd, env, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def pip_or_skip(result: subprocess.CompletedProcess, what: str) -> None:
    """Fail on any pip failure, except one that only says PyPI cannot be reached (a skip, or a
    failure under HERMES_STRICT=1)."""
    if result.returncode == 0:
        return
    output = result.stdout + result.stderr
    if any(sign in output for sign in NETWORK_TROUBLE):
        skip_or_fail(f"{what}: PyPI unreachable ({output.strip().splitlines()[-1]})")
    pytest.fail(f"{what} failed:\n{output}")


def clean_environment(**extra) -> dict[str, str]:
    """The environment of a shell on another machine: none of this project's variables, no path
    to this checkout; only what pip needs to find PyPI (home, proxies, certificates)."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE")
    env = {
        k: v
        for k, v in os.environ.items()
        if k in keep or k.lower().endswith("_proxy") or (k.startswith("PIP_") and k != "PIP_REQUIRE_VIRTUALENV")
    }
    env.update(extra)
    return env


def copy_checkout(target: Path) -> Path:
    """The checkout's files as a fresh clone has them (no virtualenv, database, build or cache)."""
    junk = shutil.ignore_patterns(
        ".git", ".venv", "__pycache__", "*.pyc", "*.sqlite3*", ".test-db*", ".env", "build", "dist",
        "*.egg-info", "staticfiles", "test-artifacts", ".pytest_cache", ".ruff_cache", ".hypothesis",
    )  # fmt: skip
    shutil.copytree(ROOT, target, ignore=junk)
    return target


def imports_of(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel`` of a copy of this checkout, as its [build-system] builds it."""
    work = tmp_path_factory.mktemp("reuse-build")
    source = copy_checkout(work / "src")
    built = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(work / "dist"), str(source)],
        cwd=work,
        env=clean_environment(),
    )
    pip_or_skip(built, "pip wheel .")
    (path,) = (work / "dist").glob("*.whl")
    return path


def test_the_wheel_holds_the_two_apps_and_nothing_of_the_project(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert tops == set(APPS)
    for app in APPS:
        sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / app).rglob("*.py") if "__pycache__" not in p.parts}
        assert sources <= set(names), sorted(sources - set(names))  # every module, every migration
    assert {"agents_app/migrations/0001_initial.py", "sessions_app/migrations/0004_session_has_messages.py"} <= set(
        names
    )
    assert set(PACKAGE_DATA) <= set(names)
    templates = {
        p.relative_to(ROOT).as_posix() for p in (ROOT / "sessions_app").rglob("*") if p.suffix in {".html", ".css"}
    }
    assert templates <= set(names), sorted(templates - set(names))
    assert not [name for name in names if name.split("/")[0] in NOT_INSTALLED]


def test_no_module_of_the_wheel_imports_or_names_the_project(wheel):
    archive = zipfile.ZipFile(wheel)
    for name in archive.namelist():
        if name.endswith((".py", ".html", ".css")):
            text = archive.read(name).decode()
            assert "hermes_site" not in text, name
            if name.endswith(".py"):
                assert not {imported.split(".")[0] for imported in imports_of(text)} & {"hermes_site", "tests"}, name


def test_the_wheel_declares_its_dependencies(wheel):
    archive = zipfile.ZipFile(wheel)
    (metadata,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
    requires = [
        line.split(":", 1)[1].strip()
        for line in archive.read(metadata).decode().splitlines()
        if line.startswith("Requires-Dist:")
    ]
    plain = {requirement.split(";")[0].replace(" ", "") for requirement in requires if "extra ==" not in requirement}
    assert plain == {"Django<6.0,>=5.2", "prometheus_client>=0.23.1"}
    assert any(r.startswith("psycopg[binary]") and 'extra == "postgres"' in r for r in requires)
    assert any(r.startswith("mysqlclient") and 'extra == "mysql"' in r for r in requires)


def test_a_startproject_project_with_the_two_apps(wheel, tmp_path):
    venv = tmp_path / "venv"
    created = run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path, env=clean_environment())
    assert created.returncode == 0, created.stderr
    python = venv / "bin" / "python"
    # This interpreter's pip installs into the fresh one (pip --python): no second pip to bootstrap.
    installed = run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", str(wheel)],
        cwd=tmp_path,
        env=clean_environment(),
    )
    pip_or_skip(installed, "pip install of the wheel")

    env = clean_environment(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    started = run([str(venv / "bin" / "django-admin"), "startproject", "host"], cwd=tmp_path, env=env)
    assert started.returncode == 0, started.stderr
    project = tmp_path / "host"
    settings = project / "host" / "settings.py"
    # The apps, and a primary-key default of the project's own that must not change their migrations.
    settings.write_text(
        settings.read_text()
        + '\nINSTALLED_APPS += ["agents_app", "sessions_app"]\nDEFAULT_AUTO_FIELD = "django.db.models.AutoField"\n'
        # The hardened admin site (docs/reuse.md), else check says hermes.W002 about auth's admins.
        + 'INSTALLED_APPS[INSTALLED_APPS.index("django.contrib.admin")] = "sessions_app.admin_site.HermesAdminConfig"\n'
    )
    urls = project / "host" / "urls.py"
    urls.write_text(
        urls.read_text()
        + '\nfrom django.urls import include\n\nurlpatterns += [path("", include("sessions_app.urls"))]\n'
    )

    def manage(*args) -> subprocess.CompletedProcess:
        return run([str(python), "manage.py", *args], cwd=project, env=env, timeout=300)

    for args in (
        ("check", "--fail-level", "WARNING"),
        ("makemigrations", "--check", "--dry-run"),
        ("migrate", "--verbosity", "0"),
        ("shell", "--verbosity", "0", "--command", WRITES),
    ):
        result = manage(*args)
        assert result.returncode == 0, f"manage.py {' '.join(args[:1])}: {result.stdout}{result.stderr}"

    # The report, exactly as the writes make it.
    reported = manage("empty_sessions", "--format", "json")
    assert reported.returncode == 0, reported.stderr
    report = json.loads(reported.stdout)
    assert {row["key"]: (row["sessions"], row["empty"]) for row in report["rows"]} == EXPECTED
    for row in report["rows"]:
        assert row["rate"] == row["empty"] / row["sessions"]
    sessions, empty = (sum(numbers) for numbers in zip(*EXPECTED.values(), strict=True))
    assert (report["total"]["sessions"], report["total"]["empty"]) == (sessions, empty) == (7, 3)
    assert report["total"]["rate"] == empty / sessions

    # has_messages was kept by the database; the counters of the ORM writes were not.
    found = manage("verify_sessions", "--json")
    assert found.returncode == 3, found.stderr
    drift = json.loads(found.stdout)["drift"]
    assert drift["rows_without_flag"]["sessions"] == drift["flag_without_rows"]["sessions"] == 0
    assert drift["message_count_off"]["sessions"] == COUNTERS_OFF
    assert manage("verify_sessions", "--repair").returncode == 3
    assert manage("verify_sessions").returncode == 0

    # The analytics page, logged in, with the app's template and static file from the wheel.
    rendered = manage("shell", "--verbosity", "0", "--command", PAGE)
    assert rendered.returncode == 0, rendered.stderr
    seen = json.loads(rendered.stdout)
    assert seen["status"] == 200
    assert all(model in seen["html"] for model in EXPECTED)
    assert "sessions_app/empty_rates.css" in seen["html"]
    assert seen["json"]["total"]["sessions"] == 7 and seen["json"]["total"]["empty"] == 3
    assert seen["metrics"] == 200  # /metrics through include("sessions_app.urls"), staff login
    site_packages = Path(seen["prefix"]).resolve()
    assert Path(seen["app_file"]).resolve().is_relative_to(site_packages), seen["app_file"]
    assert Path(seen["css"]).resolve().is_relative_to(site_packages), seen["css"]
    assert not seen["hermes_site"]
