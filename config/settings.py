"""Settings, read from the environment and from a `.env` file.

`.env` at the project's root (or the file named by `ENV_FILE`; empty: none) is read
first; variables already in the environment win over it. With no variables set the
service runs on embedded defaults: a SQLite file under the project, Django's
local-memory cache, Celery tasks executed in-process and sandboxes as local
directories. See `.env.example` for every variable.
"""

import ipaddress
import logging
import math
import os
import re
import warnings
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent

ENV_FILE = os.environ.get("ENV_FILE", str(BASE_DIR / ".env"))
if ENV_FILE:
    load_dotenv(ENV_FILE, override=False)


# A value that cannot be used is refused at startup, naming the variable and what it
# accepts, rather than failing later (a traceback without the name, or an error on
# every request or task that reads it). The helpers record each problem and go on
# with the default, so one ImproperlyConfigured at the end of this module lists them
# all; every process (manage.py, uvicorn, the Celery worker and beat) loads these
# settings first, so none starts with a bad value.
_ERRORS: list[str] = []


def _refuse(message: str, default):
    _ERRORS.append(message)
    return default


TRUE_SPELLINGS = ("1", "true", "yes", "on")
FALSE_SPELLINGS = ("0", "false", "no", "off")


def env_bool(name: str, default: bool = False) -> bool:
    """1/true/yes/on or 0/false/no/off (any case); unset or empty: the default."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    spelled = value.strip().lower()
    if spelled in TRUE_SPELLINGS:
        return True
    if spelled in FALSE_SPELLINGS:
        return False
    return _refuse(f"{name} must be one of {', '.join(TRUE_SPELLINGS)} (on) or {', '.join(FALSE_SPELLINGS)} "
                   f"(off), got {value!r}", default)


def env_int(name: str, default: int, minimum: int = 0) -> int:
    """A whole number, at least `minimum`; unset or empty: the default."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value)
    except ValueError:
        return _refuse(f"{name} must be an integer, got {value!r}", default)
    if number < minimum:
        return _refuse(f"{name} must be at least {minimum}, got {value!r}", default)
    return number


def env_float(name: str, default: float, minimum: float = 0.0, *, positive: bool = False) -> float:
    """A finite number, at least `minimum` (above it with `positive`); unset or empty: the default."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = float(value)
    except ValueError:
        return _refuse(f"{name} must be a number, got {value!r}", default)
    if not math.isfinite(number):
        return _refuse(f"{name} must be a finite number, got {value!r}", default)
    if number < minimum or (positive and number <= minimum):
        return _refuse(f"{name} must be {'greater than' if positive else 'at least'} {minimum:g}, got {value!r}",
                       default)
    return number


def env_choice(name: str, default: str, choices: tuple[str, ...], *, lower: bool = True) -> str:
    """One of `choices` (case-insensitive unless `lower` is off); unset or empty: the default."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    spelled = value.strip().lower() if lower else value.strip()
    if spelled in choices:
        return spelled
    return _refuse(f"{name} must be one of {', '.join(choices)}, got {value!r}", default)


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_rate(name: str, default: str) -> str:
    """A throttle rate as Django REST framework reads it: `<requests>/<period>`, the
    period a second, minute, hour or day (`30/min`, `5/s`, `100/hour`, `1000/day`)."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour|d|day)s?\s*", value, re.IGNORECASE)
    if not match or int(match.group(1)) < 1:
        return _refuse(f"{name} must be a rate such as 30/min: at least 1 request per s, sec, second, m, min, "
                       f"minute, h, hour, d or day, got {value!r}", default)
    # REST framework reads the count and the period's first letter, as written here.
    return f"{int(match.group(1))}/{match.group(2).lower()}"


def env_networks(name: str, default: str) -> list[str]:
    """Comma-separated IP networks (`10.0.0.0/8`, `::1/128`) or addresses."""
    networks = env_list(name, default)
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as exc:
            _refuse(f"{name} must be comma-separated IP networks such as 10.0.0.0/8 or ::1/128; "
                    f"{network!r} is not one ({exc})", None)
    return networks


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
# With DEBUG off the key signs sessions, password resets and the API's tokens: it must
# be secret and strong. Refused: none, the placeholder of .env.example, and any key
# Django's check security.W009 calls weak (under 50 characters, under 5 distinct
# ones, or Django's `django-insecure-` prefix).
SECRET_KEY_PLACEHOLDERS = {"change-me", "changeme", "secret", "secret-key", "your-secret-key"}
_GENERATE_KEY = "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"
if not DEBUG:
    if not SECRET_KEY:
        _refuse(f"SECRET_KEY is required when DEBUG is off; {_GENERATE_KEY}", None)
    elif SECRET_KEY.strip().lower() in SECRET_KEY_PLACEHOLDERS:
        _refuse(f"SECRET_KEY is the placeholder {SECRET_KEY!r} (as in .env.example), refused when DEBUG is off; "
                f"{_GENERATE_KEY}", None)
    elif len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY.startswith("django-insecure-"):
        _refuse("SECRET_KEY is too weak for DEBUG off (Django's security.W009): it needs at least 50 characters, "
                f"5 of them distinct, and not the prefix 'django-insecure-'; {_GENERATE_KEY}", None)
elif not SECRET_KEY:
    SECRET_KEY = "insecure-development-key-only-for-debug-mode-0123456789"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")

INSTALLED_APPS = [
    "config.apps.AdminConfig",  # Django's admin, on the project's site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc assets served from the package (offline)
    "config.apps.ConfigAppConfig",
    "projects",
    "sandboxes",
    "agents",
    "threads",
    "receipts",
    "jobs",
]

MIDDLEWARE = [
    "config.observability.RequestIdMiddleware",
    "config.health.ProbeMiddleware",
    "config.observability.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "config.middleware.RejectNulMiddleware",
    "config.middleware.BodyLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "receipts.middleware.DeletionOriginMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
APPEND_SLASH = False

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

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

# --- Security -------------------------------------------------------------
# Production (DEBUG off) defaults pass `manage.py check --deploy` with no warning.
# Behind a TLS-terminating proxy, uvicorn trusts its X-Forwarded-Proto when the
# proxy's address is in FORWARDED_ALLOW_IPS (see docs/operations.md).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Probes and scrapers talk plain HTTP to the process itself.
SECURE_REDIRECT_EXEMPT = [r"^healthz/?$", r"^readyz/?$", r"^metrics/?$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
# Origins (scheme://host[:port]) allowed to post forms to the admin, e.g. https://tk.example.com
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# --- CORS (django-cors-headers) ----------------------------------------------
# Browser origins allowed to call the API; none by default.
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")
CORS_ALLOW_CREDENTIALS = env_bool("CORS_ALLOW_CREDENTIALS", False)
CORS_ALLOW_HEADERS = (
    "accept", "authorization", "content-type", "origin", "user-agent", "x-api-key", "x-request-id",
    "last-event-id",
)
CORS_EXPOSE_HEADERS = ["x-request-id", "content-location", "location"]

# --- Database -------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DB_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the dev server, tasks and tests share the file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL",
    }
    # Tests use a file too, not Django's shared-cache memory database: there a
    # writer meets "database table is locked" at once instead of waiting out the
    # busy timeout, and the live-server tests write from several threads.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "test-db.sqlite3")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and not env_bool("DB_JIT", False):
    # Short OLTP queries only: PostgreSQL's JIT compiler would spend tens of
    # milliseconds compiling a query that runs in one (a plan whose estimated cost
    # crosses jit_above_cost, e.g. the thread detail's sub-thread counts).
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c jit=off"
# The delete statements are prepared once per connection (config.prepared); off for
# PgBouncer in transaction pooling mode, where prepared statements do not follow a client.
DB_PREPARED_STATEMENTS = env_bool("DB_PREPARED_STATEMENTS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ----------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "tk"),
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 1,
                "SOCKET_TIMEOUT": 1,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "threadkeeper"}}

# --- Celery ---------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or REDIS_URL or "memory://"
# Without a broker, tasks run in-process (on commit, where they follow a write).
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", CELERY_BROKER_URL == "memory://")
# In-process (no broker): a run executes in a thread of the web process once its
# creation committed, so `POST .../runs` answers `pending` at once and a stream follows
# the run as it goes, as with a worker. Off: within the request that created it.
RUNS_IN_BACKGROUND = env_bool("RUNS_IN_BACKGROUND", True)
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"max_retries": 1, "socket_connect_timeout": 1}
CELERY_TIMEZONE = "UTC"
# A worker renews its lease every quarter of this many seconds (a heartbeat thread);
# a run whose worker's lease is older is ended `error` by the beat task
# `recover_lost_runs` (the worker was killed, scaled down, or lost its host).
WORKER_LEASE_SECONDS = env_int("WORKER_LEASE_SECONDS", 60, minimum=2)
# Periodic jobs (run `celery -A config beat`). Each app adds its entries here.
CELERY_BEAT_SCHEDULE = {
    # beat: sandboxes
    "reconcile-sandboxes": {
        "task": "sandboxes.tasks.reconcile_sandboxes",
        "schedule": env_int("SANDBOX_RECONCILE_INTERVAL", 300, minimum=1),  # seconds
    },
    # beat: agents
    "fire-due-agent-triggers": {"task": "agents.tasks.fire_due_triggers", "schedule": 60.0},
    # beat: threads ttl
    "sweep-expired-threads": {
        "task": "threads.tasks.sweep_expired_threads",
        "schedule": 60.0 * env_int("THREAD_TTL_SWEEP_INTERVAL_MINUTES", 5, minimum=1),
    },
    "requeue-pending-runs": {"task": "threads.tasks.requeue_pending_runs", "schedule": 60.0},
    # beat: runs of workers whose lease expired (at most half a lease late, a minute at most)
    "recover-lost-runs": {
        "task": "threads.tasks.recover_lost_runs", "schedule": min(60.0, WORKER_LEASE_SECONDS / 2),
    },
    "reindex-pending-messages": {"task": "threads.tasks.reindex_pending_messages", "schedule": 60.0},
    # beat: deletion receipts (the outbox of a deletion's outside cleanup)
    "reconcile-deletions": {
        "task": "receipts.tasks.reconcile_deletions",
        "schedule": env_int("DELETION_RECONCILE_INTERVAL", 300, minimum=1),  # seconds
    },
    "purge-deletion-receipts": {"task": "receipts.tasks.purge_receipts", "schedule": 24 * 3600.0},
    # beat: approvals
    "expire-approvals": {"task": "threads.tasks.expire_approvals", "schedule": 60.0},
    # beat: background jobs lost by the broker or by a worker that died
    "requeue-stalled-jobs": {"task": "jobs.tasks.requeue_stalled_jobs", "schedule": 60.0},
}

# --- Auth, API ------------------------------------------------------------
# Django's standard validators: used by create_account / add_member, the admin and
# password changes.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
     "OPTIONS": {"min_length": env_int("PASSWORD_MIN_LENGTH", 8)}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

REST_FRAMEWORK = {
    # No `?format=` override: a client asks for a media type with `Accept`.
    "URL_FORMAT_OVERRIDE": None,
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "config.schema.AutoSchema",
    # The API speaks JSON only (documented as such in the schema).
    "DEFAULT_PARSER_CLASSES": ["config.parsers.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_METADATA_CLASS": "config.metadata.Metadata",
    "DEFAULT_PAGINATION_CLASS": "config.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "config.errors.exception_handler",
    # Login throttling (config.auth), counted in the cache.
    "DEFAULT_THROTTLE_RATES": {
        "login": env_rate("LOGIN_RATE_PER_IP", "30/min"),
        "login_username": env_rate("LOGIN_RATE_PER_USERNAME", "10/min"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 60, minimum=1)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 7, minimum=1)),
    "AUTH_HEADER_TYPES": ("Bearer",),
    "SIGNING_KEY": SECRET_KEY,
    # Refresh tokens rotate and the used one is blacklisted; access tokens carry a hash
    # of the password, so a password change revokes them (config.auth).
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "CHECK_REVOKE_TOKEN": True,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Threadkeeper API",
    "DESCRIPTION": "AI-agent conversations and their lifecycle: threads, runs, checkpoints, agents, sandboxes.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema's own warnings belong to the test suite (schema tests), not to
    # `check --deploy`, which stays about the deployment's settings.
    "ENABLE_DJANGO_DEPLOY_CHECK": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "PARSER_WHITELIST": ["config.parsers.JSONParser"],
    # /api/docs/ and /api/redoc/ load their assets from our static files, never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "AgentToolEnum": "threads.tools.AVAILABLE_TOOLS", "ThreadStatusEnum": "threads.models.ThreadStatus",
        "RunStatusEnum": "threads.models.RunStatus", "RunsCancelStatusEnum": ["pending", "running", "all"],
        "DeletionKindEnum": "receipts.models.DeletionKind", "DeletionSourceEnum": "receipts.models.DeletionSource",
        "CleanupStateEnum": "receipts.models.CleanupState",
    },
}

# --- Runtimes: {name: dotted path of a threads.runtime.Runtime} ----------------
THREAD_RUNTIMES = {"echo": "threads.runtime.EchoRuntime"}
DEFAULT_RUNTIME = env_choice("DEFAULT_RUNTIME", "echo", tuple(THREAD_RUNTIMES), lower=False)
# The model of an assistant created through LangGraph's API that names none
# (`config.configurable.model` or `context.model`).
DEFAULT_ASSISTANT_MODEL = os.environ.get("DEFAULT_ASSISTANT_MODEL", "echo-1")
# A run still pending after this many seconds is sent to the worker again (beat).
RUN_REQUEUE_AFTER_SECONDS = env_int("RUN_REQUEUE_AFTER_SECONDS", 120)
# A run's `webhook`: seconds per POST, retries of a failed one, first backoff (doubling).
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 10, minimum=1)
WEBHOOK_MAX_RETRIES = env_int("WEBHOOK_MAX_RETRIES", 5)
WEBHOOK_RETRY_BACKOFF = env_int("WEBHOOK_RETRY_BACKOFF", 2)
# Whether a run's webhook may reach loopback, private and link-local addresses (a
# receiver on this machine or network); off in production, so that a webhook cannot
# be pointed at internal services.
WEBHOOK_ALLOW_PRIVATE = env_bool("WEBHOOK_ALLOW_PRIVATE", DEBUG)
# How many recent messages a runtime is given.
RUNTIME_HISTORY = env_int("RUNTIME_HISTORY", 50, minimum=1)
# Seconds between the echo runtime's streamed tokens.
ECHO_TOKEN_DELAY = env_float("ECHO_TOKEN_DELAY", 0.02)

# --- Run streams (the event bus: Redis with REDIS_URL, else in-process) ------------
# How long a run's events stay after its last one (resuming with Last-Event-ID, joining).
RUN_STREAM_RETENTION_SECONDS = env_int("RUN_STREAM_RETENTION_SECONDS", 3600, minimum=1)
RUN_STREAM_MAX_EVENTS = env_int("RUN_STREAM_MAX_EVENTS", 10_000, minimum=1)
# A stream with nothing to send says so (an SSE comment) this often, and then checks
# that its run still exists (a worker lost mid-run never publishes its `end`).
RUN_STREAM_HEARTBEAT_SECONDS = env_float("RUN_STREAM_HEARTBEAT_SECONDS", 5.0, positive=True)

# --- Thread time-to-live ---------------------------------------------------------
# A thread expires `ttl` minutes after its last activity (its own `ttl`, else
# default_ttl; None: threads without their own ttl never expire). The sweeper runs
# every sweep_interval_minutes and prunes at most sweep_limit threads per run with
# the strategy (`delete` or `keep_latest`).
# The prune strategies of threads.services.pruning.STRATEGIES (a test keeps them equal).
THREAD_TTL_STRATEGIES = ("delete", "keep_latest")
THREAD_TTL = {
    "strategy": env_choice("THREAD_TTL_STRATEGY", "delete", THREAD_TTL_STRATEGIES),
    "default_ttl": env_int("THREAD_TTL_DEFAULT_MINUTES", 0) or None,
    "sweep_interval_minutes": env_int("THREAD_TTL_SWEEP_INTERVAL_MINUTES", 5, minimum=1),
    "sweep_limit": env_int("THREAD_TTL_SWEEP_LIMIT", 1000, minimum=1),
}

# --- Models: context windows (tokens) for the agent-thread detail's contextWindow ---
MODEL_REGISTRY = {
    "echo-1": {"context_window": 8_192},
    "gpt-4o": {"context_window": 128_000},
    "gpt-4.1": {"context_window": 1_047_576},
    "claude-sonnet-4": {"context_window": 200_000},
    "claude-opus-4": {"context_window": 200_000},
}
DEFAULT_CONTEXT_WINDOW = env_int("DEFAULT_CONTEXT_WINDOW", 128_000, minimum=1)
# Minutes a pending approval waits before it times out (0: never).
APPROVAL_TIMEOUT_MINUTES = env_int("APPROVAL_TIMEOUT_MINUTES", 60)

# --- Background jobs --------------------------------------------------------------
# A destructive admin operation over more than `threshold` threads runs as a job
# (Celery, in batches of `batch_size` threads per transaction) with a progress page.
BACKGROUND_JOBS = {
    "threshold": env_int("BACKGROUND_JOB_THRESHOLD", 1000),
    "batch_size": env_int("BACKGROUND_JOB_BATCH_SIZE", 1000, minimum=1),
}

# --- Product limits -------------------------------------------------------
# Input limits of the API (413 / 422 beyond them; see config/parsers.py).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("API_MAX_BODY_BYTES", 2_621_440, minimum=1)  # bytes per request body
API_MAX_JSON_DEPTH = env_int("API_MAX_JSON_DEPTH", 32, minimum=1)  # nesting levels of a JSON body
DEFAULT_THREAD_LIMIT = env_int("DEFAULT_THREAD_LIMIT", 10_000)
DEFAULT_AGENT_LIMIT = env_int("DEFAULT_AGENT_LIMIT", 100)

# --- Sandboxes ------------------------------------------------------------
# The providers of sandboxes.providers.PROVIDERS (a test keeps them equal).
SANDBOX_PROVIDERS = ("local", "http")
SANDBOX_PROVIDER = env_choice("SANDBOX_PROVIDER", "local", SANDBOX_PROVIDERS)
SANDBOX_ROOT = os.environ.get("SANDBOX_ROOT") or str(BASE_DIR / "var" / "sandboxes")
SANDBOX_API_URL = os.environ.get("SANDBOX_API_URL", "")
SANDBOX_API_KEY = os.environ.get("SANDBOX_API_KEY", "")
SANDBOX_API_TIMEOUT = env_float("SANDBOX_API_TIMEOUT", 10.0, positive=True)
if SANDBOX_PROVIDER == "http" and not SANDBOX_API_URL.strip():
    _refuse("SANDBOX_PROVIDER=http needs SANDBOX_API_URL (the provider API's base URL)", None)
# Deletion outbox: task retries with exponential backoff (factor in whole seconds:
# 2, 4, 8, ...), then the reconciler retries rows whose last attempt is this old.
SANDBOX_DELETE_MAX_RETRIES = env_int("SANDBOX_DELETE_MAX_RETRIES", 6)
SANDBOX_RETRY_BACKOFF = env_int("SANDBOX_RETRY_BACKOFF", 2)
SANDBOX_RETRY_BACKOFF_MAX = env_int("SANDBOX_RETRY_BACKOFF_MAX", 600)
SANDBOX_RECONCILE_MIN_AGE = env_int("SANDBOX_RECONCILE_MIN_AGE", 120)

# --- Deletion receipts ---------------------------------------------------------
# Receipts older than this are purged (beat, daily; `manage.py purge_receipts`),
# except those whose outside cleanup is still pending.
DELETION_RECEIPT_RETENTION_DAYS = env_int("DELETION_RECEIPT_RETENTION_DAYS", 365)
# The reconciler retries a pending cleanup whose last attempt (or creation) is this old.
DELETION_RECONCILE_MIN_AGE = env_int("DELETION_RECONCILE_MIN_AGE", 120)
DELETION_CLEANUP_MAX_RETRIES = env_int("DELETION_CLEANUP_MAX_RETRIES", SANDBOX_DELETE_MAX_RETRIES)

# --- Vector store, account caches -------------------------------------------
# A dotted path to a subclass of threads.vectorstore.VectorStore; imported when the apps are
# ready (config.apps), where a path that does not name one stops the process.
VECTOR_STORE_BACKEND = os.environ.get("VECTOR_STORE_BACKEND", "").strip() or "threads.vectorstore.DatabaseVectorStore"
ACCOUNT_CACHE_TIMEOUT = env_int("ACCOUNT_CACHE_TIMEOUT", 3600)
# A message still waiting to be embedded this many seconds after it was written is
# indexed by the beat task `reindex_pending_messages` (its task was lost or failed).
EMBEDDING_REINDEX_MIN_AGE = env_int("EMBEDDING_REINDEX_MIN_AGE", 60)

# --- I18N, static ---------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or BASE_DIR / "var" / "static")
# `collectstatic` writes compressed (gzip, brotli), content-hashed copies that WhiteNoise
# serves with far-future cache headers. In DEBUG the files are served from the apps.
if DEBUG:  # no collectstatic in development: WhiteNoise serves from the apps
    warnings.filterwarnings("ignore", message="No directory at: ")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- Health, metrics ------------------------------------------------------------
# /readyz: seconds each dependency check may take.
READYZ_TIMEOUT = env_float("READYZ_TIMEOUT", 2.0, positive=True)
# /metrics: allowed from these networks, or from anywhere with `Authorization: Bearer <METRICS_TOKEN>`.
METRICS_ALLOWED_NETWORKS = env_networks("METRICS_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")

# --- Logging: one line per event, `plain` or `json` (LOG_FORMAT), a request id on each ----
LOG_LEVEL = env_choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error", "critical")).upper()
LOG_FORMAT = env_choice("LOG_FORMAT", "plain", ("plain", "json"))
# Celery and kombu log at LOG_LEVEL in a worker; with tasks in-process (the embedded
# defaults) only their errors, else their per-task lines (and kombu's warning about
# the in-memory broker) would break up a command's progress bar.
_CELERY_LOG_LEVEL = "ERROR" if CELERY_TASK_ALWAYS_EAGER else LOG_LEVEL
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Python warnings become log lines too (logger `py.warnings`), in the same format.
logging.captureWarnings(True)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "config.observability.RequestIdFilter"}},
    "formatters": {
        "plain": {"()": "config.observability.PlainFormatter"},
        "json": {"()": "config.observability.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own handlers are replaced: everything goes once through the root's.
        "django": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        # The request line of config.observability replaces these per-request lines;
        # server errors (5xx, with their traceback) stay.
        "django.request": {"handlers": [], "level": "ERROR", "propagate": True},
        "django.server": {"handlers": [], "level": "ERROR", "propagate": True},
        "django.db.backends": {"level": "WARNING"},
        "uvicorn": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        "uvicorn.error": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": True},
        "celery": {"handlers": [], "level": _CELERY_LOG_LEVEL, "propagate": True},
        "kombu": {"handlers": [], "level": _CELERY_LOG_LEVEL, "propagate": True},
        "amqp": {"handlers": [], "level": "WARNING", "propagate": True},
        "py.warnings": {"handlers": [], "propagate": True},
    },
}

# --- Refuse what cannot work (see the helpers at the top) ---------------------------
if _ERRORS:
    raise ImproperlyConfigured(
        "Invalid settings (from the environment or the .env file; see docs/operations.md#settings):\n  "
        + "\n  ".join(_ERRORS)
    )
