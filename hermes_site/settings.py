"""Settings for hermes_site, read from the environment (12-factor).

Variables not in the process environment are taken from ``.env`` beside manage.py when there is
one (the README's Run command writes ``DJANGO_DEBUG=1`` there, so that every later command works
in a new shell); the process environment wins over the file. ``DJANGO_ENV_FILE`` names another
file, or none when it is empty (the test suite, CI). Production has no ``.env``.

Environment:
    DJANGO_ENV_FILE       file of further variables (default: ``.env`` beside manage.py, if any)
    DATABASE_URL          database to use; default: SQLite file ``db.sqlite3`` beside manage.py
    DJANGO_SECRET_KEY     required unless DJANGO_DEBUG is on
    DJANGO_DEBUG          "1"/"true"/"yes"/"on" to enable debug mode (default: off)
    DJANGO_ALLOWED_HOSTS  comma-separated host names (default: localhost names in debug only)
    DJANGO_CONN_MAX_AGE   seconds a database connection is kept open (default 0: per request)
    DJANGO_LOG_LEVEL      root log level: DEBUG, INFO, WARNING (default), ERROR or CRITICAL
    DJANGO_SECURE_HSTS_SECONDS  HSTS max-age when DJANGO_DEBUG is off (default one year)
    HERMES_MAX_CONTENT_CHARS   largest message content accepted by the save path (default 4 Mi)
    HERMES_TRACK_ABANDONED_AGENTS          count agents that end without a message (default on)
    HERMES_ABANDONED_TALLY_RETENTION_DAYS  days of that tally kept by prune_empty_sessions (400)
    HERMES_SQLITE_SYNCHRONOUS  SQLite durability: NORMAL (default) or FULL
    HERMES_METRICS_TOKEN       bearer token for GET /metrics (default: none, staff login only)
    HERMES_METRICS_MAX_MODELS  model names exposed by /metrics, the rest as "other" (default 50)
    HERMES_METRICS_MAX_SOURCES, HERMES_METRICS_MAX_PROFILES, HERMES_METRICS_MAX_END_REASONS
                               the same for sources, profiles and end reasons (default 20 each)
    HERMES_OPEN_GRACE          how long an open empty session may still speak (24h; 30m, 7d, seconds)

A bad value stops start-up with one ImproperlyConfigured line naming the variable and what it
accepts (``manage.py`` prints just that line).
"""

import os
import re
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from agents_app import conf as _hermes_conf
from hermes_site.envfile import read_env_file

BASE_DIR = Path(__file__).resolve().parent.parent

# First, so that everything below reads the file's values as if they had been exported; a name
# already in the process environment keeps its value there.
_env_file = os.environ.get("DJANGO_ENV_FILE", str(BASE_DIR / ".env"))
if _env_file and ("DJANGO_ENV_FILE" in os.environ or Path(_env_file).exists()):
    for _name, _value in read_env_file(Path(_env_file)).items():
        os.environ.setdefault(_name, _value)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    value = value.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no, on/off), got {value!r}.")


def env_int(name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    """An integer setting from the environment: ``default`` when unset or blank, else a whole
    number (decimal digits) from ``minimum`` to ``maximum``."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    text = value.strip()
    number = int(text) if re.fullmatch(r"[+-]?[0-9]{1,18}", text) else None
    if number is None or number < minimum or (maximum is not None and number > maximum):
        accepted = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
        raise ImproperlyConfigured(f"{name} must be a whole number {accepted}, got {value!r}.")
    return number


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def env_log_level(name: str, default: str) -> str:
    """A log level from the environment: ``default`` when unset, else one of ``LOG_LEVELS`` in any
    case. Set but blank is an error too: logging cannot start without a level."""
    value = os.environ.get(name)
    if value is None:
        return default
    if value.strip().upper() not in LOG_LEVELS:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(LOG_LEVELS)} (any case), got {value!r}.")
    return value.strip().upper()


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG")

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it to a long random string in production "
            "(python -c 'import secrets; print(secrets.token_urlsafe(50))'), "
            "or set DJANGO_DEBUG=1 for local development."
        )
    # Debug only: a per-process key is fine, sessions just do not survive restarts.
    SECRET_KEY = "django-insecure-" + os.urandom(32).hex()
try:
    SECRET_KEY.encode()  # signing encodes it on every request: bytes that are not UTF-8 would fail each one
except UnicodeEncodeError:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be text (it holds bytes that are not UTF-8).") from None

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])

INSTALLED_APPS = [
    # django.contrib.admin, with every changelist of admin.site hardened (sessions_app.admin_site).
    "sessions_app.admin_site.HermesAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_extensions",
    "agents_app",
    "sessions_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "sessions_app.middleware.RejectNulMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "hermes_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "hermes_site.wsgi.application"
ASGI_APPLICATION = "hermes_site.asgi.application"


def database_config(url: str) -> dict:
    """Parse DATABASE_URL and add the per-backend options the save path relies on."""
    conn_max_age = env_int("DJANGO_CONN_MAX_AGE", 0)
    try:
        config = dj_database_url.parse(url, conn_max_age=conn_max_age)
    except Exception as exc:  # dj_database_url raises plain ValueError/KeyError on bad URLs
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from exc
    engine = config["ENGINE"]
    options = config.setdefault("OPTIONS", {})
    if engine == "django.db.backends.sqlite3":
        # WAL lets readers (the admin) work while an agent writes. IMMEDIATE transactions take
        # the write lock at BEGIN, so a second writer waits for the busy timeout instead of
        # failing at once with "database is locked" when a deferred transaction upgrades.
        # synchronous=NORMAL in WAL mode never corrupts the database; a power cut (not a process
        # crash) may lose the last few committed transactions. Set HERMES_SQLITE_SYNCHRONOUS=FULL
        # for full durability at some cost in write speed.
        synchronous = os.environ.get("HERMES_SQLITE_SYNCHRONOUS", "NORMAL").upper()
        if synchronous not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ImproperlyConfigured("HERMES_SQLITE_SYNCHRONOUS must be OFF, NORMAL, FULL or EXTRA.")
        options.setdefault("transaction_mode", "IMMEDIATE")
        options.setdefault("timeout", 20)
        options.setdefault(
            "init_command",
            f"PRAGMA journal_mode=WAL; PRAGMA synchronous={synchronous}; PRAGMA foreign_keys=ON;",
        )
        # A file-based test database, so that concurrency tests can open it from other processes.
        config["TEST"] = {"NAME": str(BASE_DIR / ".test-db.sqlite3")}
    elif engine == "django.db.backends.mysql":
        # utf8mb4 for emoji in conversations; strict mode so bad data errors instead of being
        # truncated. Django's default READ COMMITTED isolation is kept: get_or_create's retry
        # after an IntegrityError needs to see the row the other writer committed.
        options.setdefault("charset", "utf8mb4")
        options.setdefault("init_command", "SET sql_mode='STRICT_TRANS_TABLES'")
        options.setdefault("isolation_level", "read committed")
        config["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
    return config


DATABASES = {
    "default": database_config(os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# ISO 8601 dates and times (UTC) throughout the admin, instead of "Jan. 5, 2026, 3:04 p.m.".
FORMAT_MODULE_PATH = ["hermes_site.formats"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# The apps' own settings (agents_app.conf: HERMES_MAX_CONTENT_CHARS, HERMES_OPEN_GRACE, ...) have
# their defaults in the apps; here only the environment variables of the same names are mapped to
# them, each checked as the apps check it (a bad value stops start-up with one line).
for _name in _hermes_conf.SETTINGS:
    if os.environ.get(_name, "").strip():
        globals()[_name] = _hermes_conf.value_from_environment(_name, os.environ[_name])

# Production hardening, active when DEBUG is off. The app is meant to run behind a TLS proxy
# that sets X-Forwarded-Proto; see the README's deployment section.
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        # Preloading is a commitment for the whole registrable domain (often an operator's
        # internal one), so it is opt-in; W021 only says it is not on.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
    CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

# The debug error page hides DATABASE_URL-like settings and META entries and URL passwords too.
DEFAULT_EXCEPTION_REPORTER_FILTER = "hermes_site.middleware.SecretsHidingReporterFilter"

# Everything goes to the root logger's console handler, once. Django's default logging gives the
# "django" logger a console handler of its own in debug mode, which also propagates to the root:
# each warning under runserver printed twice. So "django" gets no handler of its own here (INFO
# in debug, as Django shows it); configuring it resets its children, so runserver's request log
# ("django.server") is declared again as Django declares it.
LOG_LEVEL = env_log_level("DJANGO_LOG_LEVEL", "WARNING")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "django.server": {"()": "django.utils.log.ServerFormatter", "format": "[{server_time}] {message}", "style": "{"}
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler"},
        "django.server": {"class": "logging.StreamHandler", "formatter": "django.server", "level": "INFO"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": [], "level": "INFO" if DEBUG else LOG_LEVEL, "propagate": True},
        "django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False},
    },
}
