"""Settings of the connector, read from the environment with safe defaults.

The embedded default needs no environment at all: SQLite in WAL mode under
``var/``, the in-memory channel layer and the worker in the web process.
Setting ``DATABASE_URL`` and ``REDIS_URL`` moves the same code to PostgreSQL
and Redis. Every variable is documented in ``docs/configuration.md``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CONNECTOR_VAR_DIR", BASE_DIR / "var")).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), not {raw!r}")


def env_number(name: str, default: float, *, minimum: float = 0) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {raw!r}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def _secret_key() -> str:
    """The SECRET_KEY variable, or a key made once and kept under var/."""
    if key := os.environ.get("SECRET_KEY"):
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])

INSTALLED_APPS = [
    # daphne first: its runserver replaces Django's.
    "daphne",
    # connector before channels: its runworker starts the fetch worker engine.
    "connector",
    "dashboard",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "template_partials",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last: keeps the chain above in one thread under ASGI (see its docstring).
    "connector.middleware.SyncMiddlewareChain",
]

ROOT_URLCONF = "connector.urls"
ASGI_APPLICATION = "connector.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'connector.sqlite3'}",
        # Under ASGI each request runs in a thread of its own, so a kept
        # connection would be kept by nobody: open one per request.
        conn_max_age=int(env_number("DATABASE_CONN_MAX_AGE", 0)),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the one writer; IMMEDIATE takes the write
    # lock at BEGIN, so a transaction never fails half-way on a lock upgrade.
    # Worker processes checkpoint the WAL every second off the request path
    # (connector.worker.checkpointer); the higher threshold keeps SQLite's own
    # checkpoint, inside some unlucky commit, for processes without one.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=10000"
        ),
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # A file, so threads in tests share it; one per test run, so runs don't collide.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-connector-{os.getpid()}.sqlite3")}
else:
    # One test database per test run here too, so two runs on one server don't collide.
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if REDIS_URL := os.environ.get("REDIS_URL"):
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        # redis-py 8 times reads out after 5 s by default, as long
                        # as channels_redis's blocking receive waits: every idle
                        # listener (a worker's, a dashboard socket's) would fail
                        # every 5 s (django/channels_redis#422). Longer than that
                        # wait, not infinite, so a dead connection is noticed; a
                        # socket_timeout in the URL wins.
                        "socket_timeout": 15,
                        # One immediate retry on a new connection: after a Redis
                        # restart the pooled ones are dead, and without it the
                        # first command on each fails (a socket's handshake, a
                        # broadcast). Redis really down still fails fast.
                        "retry": Retry(NoBackoff(), 1),
                    }
                ]
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"

# Request bodies: large enough for InsertXML with content; the ACI endpoint
# answers larger ones with an ACI error.
DATA_UPLOAD_MAX_MEMORY_SIZE = int(env_number("CONNECTOR_MAX_REQUEST_BYTES", 16 * 1024 * 1024))
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"daphne": {"level": "WARNING"}, "django.channels": {"level": "WARNING"}},
}

# --- The connector -----------------------------------------------------------

#: Queues and how many of their actions one worker process runs at once.
CONNECTOR_QUEUES = {
    "fetch": {"MaximumThreads": int(env_number("CONNECTOR_FETCH_THREADS", 4, minimum=1))},
}
#: A claimed action belongs to its worker for this long; heartbeats renew it.
CONNECTOR_LEASE_SECONDS = env_number("CONNECTOR_LEASE_SECONDS", 30, minimum=1)
CONNECTOR_HEARTBEAT_SECONDS = env_number(
    "CONNECTOR_HEARTBEAT_SECONDS", CONNECTOR_LEASE_SECONDS / 3, minimum=0.05
)
#: How often an idle worker looks at the database for work it was not woken for.
CONNECTOR_POLL_SECONDS = env_number("CONNECTOR_POLL_SECONDS", 2, minimum=0.05)
#: How many times an action may be claimed before a lost worker makes it an Error.
CONNECTOR_MAX_ATTEMPTS = int(env_number("CONNECTOR_MAX_ATTEMPTS", 2, minimum=1))
#: On SIGTERM, how long running actions get to finish before they are stopped.
CONNECTOR_SHUTDOWN_GRACE_SECONDS = env_number("CONNECTOR_SHUTDOWN_GRACE_SECONDS", 30)
#: Progress writes per action are at most this often.
CONNECTOR_PROGRESS_INTERVAL_SECONDS = env_number("CONNECTOR_PROGRESS_INTERVAL_SECONDS", 0.25)
#: The longest value one ACI parameter may have, in characters.
CONNECTOR_MAX_PARAMETER_LENGTH = int(env_number("CONNECTOR_MAX_PARAMETER_LENGTH", 512 * 1024))
#: INI file of fetch tasks that `serve` loads at start (IDOL style).
CONNECTOR_CONFIG = os.environ.get("CONNECTOR_CONFIG", "")
#: Where the embedded default puts its demo repository.
CONNECTOR_DEMO_DIR = Path(os.environ.get("CONNECTOR_DEMO_DIR", VAR_DIR / "demo"))
#: Modules whose import registers fetch actions (extra ones from the environment,
#: e.g. the benchmark's no-op actions).
CONNECTOR_FETCH_ACTION_MODULES = [
    "connector.fetch.identifiers",
    "connector.fetch.synchronize",
    "connector.fetch.collect",
    "connector.fetch.insert",
    "connector.fetch.update",
    "connector.fetch.delete",
    "connector.fetch.hold",
    *env_list("CONNECTOR_EXTRA_FETCH_ACTION_MODULES", []),
]
