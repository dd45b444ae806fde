"""Settings of the connector, read from the environment with safe defaults.

The embedded default needs no environment at all: SQLite in WAL mode under
``var/``, the in-memory channel layer and the worker in the web process.
Setting ``DATABASE_URL`` and ``REDIS_URL`` moves the same code to PostgreSQL
and Redis. Every variable is documented in ``docs/configuration.md``.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import zoneinfo
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from connector import private_files

# First, before any file is made: what the process creates is private unless
# CONNECTOR_UMASK says otherwise (connector.private_files). Every entry point
# (manage.py, daphne connector.asgi, runworker, the tests) reads these settings.
try:
    CONNECTOR_UMASK = private_files.apply_umask()
except ValueError as _problem:
    raise ImproperlyConfigured(str(_problem)) from None

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = private_files.private_dir(
    Path(os.environ.get("CONNECTOR_VAR_DIR", BASE_DIR / "var")).resolve()
)


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


def env_url(name: str, *, schemes: set[str]) -> str:
    """A URL variable ('' if unset) whose scheme must be one of ``schemes``."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return ""
    scheme, sep, rest = raw.partition("://")
    if not sep or not rest or scheme.lower() not in schemes:
        raise ImproperlyConfigured(
            f"{name} must be a URL starting with {' or '.join(sorted(s + '://' for s in schemes))}"
            # The scheme only: the rest may hold a password.
            f", not {(scheme + '://...') if sep else raw!r}"
        )
    return raw


def env_choice(name: str, default: str, choices: set[str]) -> str:
    """A variable that must be one of ``choices`` (compared in lower case)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if raw.lower() not in choices:
        raise ImproperlyConfigured(
            f"{name} must be one of {', '.join(sorted(choices))}, not {raw!r}"
        )
    return raw.lower()


def _secret_key() -> str:
    """The SECRET_KEY variable, or a key made once and kept under var/."""
    if key := os.environ.get("SECRET_KEY"):
        return key
    path = VAR_DIR / "secret_key"
    private_files.tighten(path)  # one an older version made
    return private_files.write_private_once(path, secrets.token_urlsafe(50)).strip()


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
    # The sign-in throttle of every credential path (dashboard.signin).
    "axes",
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
    # Turns a throttled sign-in anywhere (the admin's too) into its refusal page.
    "axes.middleware.AxesMiddleware",
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
        # Only the two databases the queue is written for (see connector.queue).
        env_url("DATABASE_URL", schemes={"sqlite", "postgres", "postgresql", "pgsql"})
        or f"sqlite:///{VAR_DIR / 'connector.sqlite3'}",
        # Under ASGI each request runs in a thread of its own, so a kept
        # connection would be kept by nobody: open one per request.
        conn_max_age=int(env_number("DATABASE_CONN_MAX_AGE", 0)),
    )
}
#: SQLite only: FULL syncs the WAL at every commit, so a token the endpoint
#: returned survives a power loss; NORMAL syncs only at checkpoints and may lose
#: the last commits (never corrupts). FULL by default: its cost is in
#: bench/README.md ("Durability"), docs/deployment.md says what each promises.
CONNECTOR_SQLITE_SYNCHRONOUS = env_choice(
    "CONNECTOR_SQLITE_SYNCHRONOUS", "full", {"full", "normal"}
).upper()
_SQLITE = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
if _SQLITE:
    # The threads of this process queue for SQLite's write lock in Python
    # instead of in its sleeping busy handler (connector/sqlite/base.py).
    DATABASES["default"]["ENGINE"] = "connector.sqlite"
    # WAL lets readers run beside the one writer; IMMEDIATE takes the write
    # lock at BEGIN, so a transaction never fails half-way on a lock upgrade.
    # Worker processes checkpoint the WAL every second off the request path
    # (connector.worker.checkpointer); the higher threshold keeps SQLite's own
    # checkpoint, inside some unlucky commit, for processes without one.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": (
            f"PRAGMA journal_mode=WAL; PRAGMA synchronous={CONNECTOR_SQLITE_SYNCHRONOUS};"
            " PRAGMA wal_autocheckpoint=10000"
        ),
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # Created 0600 before SQLite opens it: its -wal and -shm files take its mode.
    if (
        (_db := str(DATABASES["default"]["NAME"]))
        and _db != ":memory:"
        and "mode=memory" not in _db
    ):
        private_files.create_private_file(Path(_db))
        for _suffix in ("", "-wal", "-shm"):
            private_files.tighten(Path(_db + _suffix))  # files an older version made
    # A file, so threads in tests share it; one per test run, so runs don't collide.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-connector-{os.getpid()}.sqlite3")}
else:
    # One test database per test run here too, so two runs on one server don't collide.
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if REDIS_URL := env_url("REDIS_URL", schemes={"redis", "rediss", "unix"}):
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

# The cache holds the sign-in throttle's and the ACI rate limit's counters: per
# process by default, shared by every process through Redis when REDIS_URL is
# set (redis-py comes with channels-redis).
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "connector",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

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
#: collectstatic's folder, for a proxy to serve. Outside var/ when a proxy serves
#: it (var/ is private to the service user); its files are the public pages'
#: assets, so they are made readable by all whatever the umask.
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", "") or VAR_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage",
        "OPTIONS": {"file_permissions_mode": 0o644, "directory_permissions_mode": 0o755},
    },
}

# Request bodies: large enough for InsertXML with content; the ACI endpoint
# answers larger ones with an ACI error.
DATA_UPLOAD_MAX_MEMORY_SIZE = int(env_number("CONNECTOR_MAX_REQUEST_BYTES", 16 * 1024 * 1024))
DATA_UPLOAD_MAX_NUMBER_FIELDS = int(env_number("CONNECTOR_MAX_PARAMETERS", 1000, minimum=1))
# File parts of one multipart body (each is a parameter too).
DATA_UPLOAD_MAX_NUMBER_FILES = int(env_number("CONNECTOR_MAX_FILES", 100, minimum=1))
#: The longest request line (method, path and query string) the server reads;
#: a longer one is answered 414 (connector.intake). Parameters beyond it go in a body.
CONNECTOR_MAX_REQUEST_LINE_BYTES = int(
    env_number("CONNECTOR_MAX_REQUEST_LINE_BYTES", 64 * 1024, minimum=1024)
)
#: A request must arrive whole (request line, headers, body) within this many
#: seconds of its first byte, or it is answered 408 and its connection closed.
CONNECTOR_REQUEST_READ_SECONDS = env_number("CONNECTOR_REQUEST_READ_SECONDS", 30, minimum=0.1)

#: plain: lines for people; json: one JSON object a line for log collectors.
#: Both carry the token of the action a line is about (connector.logs).
LOG_FORMAT = env_choice("LOG_FORMAT", "plain", {"plain", "json"})
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"action": {"()": "connector.logs.ActionContextFilter"}},
    "formatters": {
        "plain": {"()": "connector.logs.PlainFormatter"},
        "json": {"()": "connector.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["action"],
        }
    },
    "root": {
        "handlers": ["console"],
        "level": env_choice(
            "LOG_LEVEL", "INFO", {"debug", "info", "warning", "error", "critical"}
        ).upper(),
    },
    "loggers": {"daphne": {"level": "WARNING"}, "django.channels": {"level": "WARNING"}},
}

# --- The connector -----------------------------------------------------------

#: Queues and how many of their actions one worker process runs at once.
CONNECTOR_QUEUES = {
    "fetch": {"MaximumThreads": int(env_number("CONNECTOR_FETCH_THREADS", 4, minimum=1))},
}
#: Processes that read, hash and format a large Synchronize's files beside the
#: worker (connector/ingest/readers.py); 0 reads in the worker itself. By
#: default one per core the worker leaves free: on 2 cores one reader read as
#: fast as two, for a fifth less CPU (bench/README.md, "Synchronize").
CONNECTOR_SYNCHRONIZE_READERS = int(
    env_number("CONNECTOR_SYNCHRONIZE_READERS", min(4, (os.cpu_count() or 1) - 1))
)
#: Address space of each extraction child (connector/ingest/extract.py), MiB:
#: a document whose parser wants more fails (EXTRACTFAILED), the run goes on.
CONNECTOR_EXTRACT_MEMORY_MIB = int(env_number("CONNECTOR_EXTRACT_MEMORY_MIB", 2048, minimum=256))
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

# --- Dashboard hardening (issue 6 item 3; docs/configuration.md "Sign-in, roles and security") ---

#: Browsers reach the connector over HTTPS (through a TLS proxy): secure cookies,
#: HSTS and a redirect to https. Off by default: the embedded default is plain
#: http on 127.0.0.1, where secure cookies would never come back.
CONNECTOR_HTTPS = env_bool("CONNECTOR_HTTPS", False)
if CONNECTOR_HTTPS and not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("CONNECTOR_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(env_number("CONNECTOR_HSTS_SECONDS", 365 * 24 * 3600))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("CONNECTOR_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("CONNECTOR_HSTS_PRELOAD", True)
    # The TLS proxy says which scheme the browser used; it must set (not pass on) it.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
#: A sign-in lasts this long (default: a working day), then the user signs in again.
SESSION_COOKIE_AGE = int(env_number("CONNECTOR_SESSION_SECONDS", 8 * 3600, minimum=60))
SESSION_COOKIE_SAMESITE = "Lax"
# Pages carry the CSRF token themselves (hx-headers, forms): scripts never read the cookie.
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
#: Content-Security-Policy of every response (connector.csp; empty: its default).
CONNECTOR_CONTENT_SECURITY_POLICY = os.environ.get("CONNECTOR_CONTENT_SECURITY_POLICY", "")
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "connector.csp.ContentSecurityPolicyMiddleware",
)
#: Sign-in throttling (dashboard.signin), on every credential path: this many
#: failures per identity and client address within the window, then refused
#: until the window ends; and this many per client address whatever the names.
CONNECTOR_LOGIN_FAILURES = int(env_number("CONNECTOR_LOGIN_FAILURES", 5, minimum=1))
CONNECTOR_LOGIN_CLIENT_FAILURES = int(env_number("CONNECTOR_LOGIN_CLIENT_FAILURES", 20, minimum=1))
CONNECTOR_LOGIN_WINDOW_SECONDS = env_number("CONNECTOR_LOGIN_WINDOW_SECONDS", 15 * 60, minimum=1)
# django-axes runs the throttle: its backend first refuses a throttled attempt
# before any password is checked, whatever view called authenticate().
AUTHENTICATION_BACKENDS = [
    "dashboard.signin.SignInBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "dashboard.signin.SignInThrottle"
AXES_USERNAME_CALLABLE = "dashboard.signin.identity"
AXES_CLIENT_IP_CALLABLE = "dashboard.signin.client"
AXES_FAILURE_LIMIT = "dashboard.signin.failure_limit"
AXES_COOLOFF_TIME = "dashboard.signin.cool_off"
AXES_LOCKOUT_CALLABLE = "dashboard.signin.locked_out_response"
# What SignInThrottle counts (it keys the cache itself, with per-key limits);
# axes reads this only in its checks and reports.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
# A refused attempt is not counted: the window ends when it was due to.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# The counts live in the cache (dashboard.signin); axes's tables and admin pages stay empty.
AXES_ENABLE_ADMIN = False
AXES_VERBOSE = False

#: Password-reset pages exist only when mail can be sent (EMAIL_HOST set):
#: without it they would offer a reset that tries SMTP on localhost:25.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "").strip()
CONNECTOR_PASSWORD_RESET = bool(EMAIL_HOST)
if EMAIL_HOST:
    EMAIL_PORT = int(env_number("EMAIL_PORT", 25, minimum=1))
    EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
    DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "webmaster@localhost")

# --- Access and limits of the ACI endpoint (issue 6) ---------------------------
# docs/configuration.md "Access and limits"; connector/aci/access.py, limits.py.
import json  # noqa: E402

from connector.aci.access import parse_roles  # noqa: E402
from connector.addresses import parse_networks  # noqa: E402

#: Proxies whose X-Forwarded-For is believed (IPs, CIDR ranges); none by default.
CONNECTOR_TRUSTED_PROXIES = env_list("CONNECTOR_TRUSTED_PROXIES", [])
parse_networks(CONNECTOR_TRUSTED_PROXIES, setting="CONNECTOR_TRUSTED_PROXIES")

_LOOPBACK = ["127.0.0.1", "::1"]


def _aci_roles() -> dict[str, dict[str, object]]:
    """CONNECTOR_ACI_ROLES (JSON), else an admin role and a status role from simpler variables."""
    if raw := os.environ.get("CONNECTOR_ACI_ROLES", "").strip():
        try:
            roles = json.loads(raw)
        except ValueError as error:
            raise ImproperlyConfigured(f"CONNECTOR_ACI_ROLES is not valid JSON: {error}") from None
    else:
        roles = {
            "admin": {
                "actions": ["change", "status", "view"],
                "clients": env_list("CONNECTOR_ACI_ADMIN_CLIENTS", _LOOPBACK),
                "api_key": os.environ.get("CONNECTOR_ACI_ADMIN_API_KEY", ""),
            },
            "status": {
                "actions": ["status"],
                "clients": env_list("CONNECTOR_ACI_STATUS_CLIENTS", _LOOPBACK),
            },
        }
    parse_roles(roles)  # ImproperlyConfigured at start rather than at the first request
    return dict(roles)


#: Roles of the ACI endpoint: name -> {"actions": [...], "clients": [...], "api_key": "..."}.
CONNECTOR_ACI_ROLES = _aci_roles()
#: Items in one Identifiers or ParentIdentifiers list.
CONNECTOR_MAX_IDENTIFIERS = int(env_number("CONNECTOR_MAX_IDENTIFIERS", 10_000, minimum=1))
#: Queued actions one queue may hold (0: no limit).
CONNECTOR_MAX_QUEUED_ACTIONS = int(env_number("CONNECTOR_MAX_QUEUED_ACTIONS", 10_000))
#: Submissions (Fetch, Duplicate) one client may send per window (0: no limit).
CONNECTOR_ACI_SUBMISSIONS_PER_WINDOW = int(env_number("CONNECTOR_ACI_SUBMISSIONS_PER_WINDOW", 600))
CONNECTOR_ACI_RATE_WINDOW_SECONDS = env_number("CONNECTOR_ACI_RATE_WINDOW_SECONDS", 60, minimum=1)


# --- Operations: start-up checks, metrics, retention ---------------------------
# (issue 5; every variable is in docs/configuration.md, the deployment in
# docs/deployment.md). A bad value stops the start with one line naming it.

if os.environ.get("SECRET_KEY") is not None and len(SECRET_KEY.strip()) < 32:
    # A short key makes sessions and CSRF tokens guessable.
    raise ImproperlyConfigured(
        "SECRET_KEY must be at least 32 characters; leave it unset to have one generated"
    )
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must name at least one host")
#: Origins (scheme://host[:port]) that may post forms, as the browser sends them:
#: behind a proxy that ends HTTPS, https://connector.example.com.
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
for _origin in CSRF_TRUSTED_ORIGINS:
    if not _origin.startswith(("http://", "https://")) or _origin.count("/") != 2:
        raise ImproperlyConfigured(
            "CSRF_TRUSTED_ORIGINS must list origins such as https://connector.example.com,"
            f" not {_origin!r}"
        )
try:
    zoneinfo.ZoneInfo(TIME_ZONE)
except (zoneinfo.ZoneInfoNotFoundError, ValueError):
    raise ImproperlyConfigured(
        f"TIME_ZONE must be an IANA time zone such as UTC or Europe/Paris, not {TIME_ZONE!r}"
    ) from None
if CONNECTOR_HEARTBEAT_SECONDS >= CONNECTOR_LEASE_SECONDS:
    # Leases would run out between heartbeats: running actions would be
    # recovered (run twice) while their worker is alive.
    raise ImproperlyConfigured(
        f"CONNECTOR_HEARTBEAT_SECONDS ({CONNECTOR_HEARTBEAT_SECONDS:g}) must be less than"
        f" CONNECTOR_LEASE_SECONDS ({CONNECTOR_LEASE_SECONDS:g})"
    )

#: Who may read /metrics: addresses or networks (CIDR), or * for anyone.
#: Loopback by default: a Prometheus on the same host, or one reached through
#: a proxy rule of your own. /healthz and /readyz are open to all.
CONNECTOR_METRICS_ALLOWED_IPS = env_list("CONNECTOR_METRICS_ALLOWED_IPS", ["127.0.0.1", "::1"])
for _network in CONNECTOR_METRICS_ALLOWED_IPS:
    if _network != "*":
        try:
            ipaddress.ip_network(_network, strict=False)
        except ValueError:
            raise ImproperlyConfigured(
                "CONNECTOR_METRICS_ALLOWED_IPS must list IP addresses or networks"
                f" (e.g. 10.0.0.0/8) or *, not {_network!r}"
            ) from None
#: The run, wait and stop-latency histograms of /metrics describe the actions
#: queued this long ago at most (and at most CONNECTOR_METRICS_MAX_ROWS of them).
CONNECTOR_METRICS_WINDOW_SECONDS = env_number("CONNECTOR_METRICS_WINDOW_SECONDS", 3600, minimum=1)
CONNECTOR_METRICS_MAX_ROWS = int(env_number("CONNECTOR_METRICS_MAX_ROWS", 10000, minimum=1))

#: On SIGTERM, how long a web request in flight gets to send its answer
#: (connector.ops.drain); 0: cancelled at once, as daphne alone does.
CONNECTOR_HTTP_DRAIN_SECONDS = env_number("CONNECTOR_HTTP_DRAIN_SECONDS", 10)

#: Final actions (Finished, Error, Cancelled, Stopped) older than this many days
#: are deleted with their logs by the workers; 0 keeps them for ever.
CONNECTOR_RETENTION_DAYS = env_number("CONNECTOR_RETENTION_DAYS", 30)
#: How often each worker looks for actions to delete.
CONNECTOR_RETENTION_INTERVAL_SECONDS = env_number(
    "CONNECTOR_RETENTION_INTERVAL_SECONDS", 3600, minimum=1
)
#: Actions deleted per transaction: each batch holds its locks only briefly.
#: SQLite has one writer at a time, so its batches are smaller (bench/README.md).
CONNECTOR_RETENTION_BATCH_SIZE = int(
    env_number(
        "CONNECTOR_RETENTION_BATCH_SIZE",
        200 if _SQLITE else 1000,
        minimum=1,
    )
)
#: Threads that answer the action endpoint's requests (connector.aci.handler);
#: each keeps its database connection between requests. A request waiting for
#: SQLite's write lock or streaming a large document holds one.
CONNECTOR_ACI_THREADS = int(env_number("CONNECTOR_ACI_THREADS", 4, minimum=1))
