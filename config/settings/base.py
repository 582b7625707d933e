"""Settings shared by every environment; values come from the environment (12-factor)."""

from __future__ import annotations

from pathlib import Path

import environ

from core.logging import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env("SECRET_KEY", default="dev-only-insecure-key-change-me")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "core",
    "accounts",
    "prompts",
    "routing",
    "spend",
    "gateway",
    "playground",
    "evals",
    "simulator",
]

MIDDLEWARE = [
    "core.middleware.RequestContextMiddleware",  # outermost: request id, size limit, access log
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

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
                "core.context_processors.site",
            ],
            "builtins": ["template_partials.templatetags.partials", "core.templatetags.money"],
        },
    }
]


def database_config(url: str) -> dict:
    """SQLite gets WAL and IMMEDIATE transactions; PostgreSQL gets a psycopg 3 connection pool."""
    config = env.db_url_config(url)
    if config["ENGINE"] == "django.db.backends.sqlite3":
        config["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    elif config["ENGINE"] == "django.db.backends.postgresql":
        config["CONN_MAX_AGE"] = 0  # the pool keeps connections; Django refuses both at once
        # The pool hands out only live connections: after a database restart or a dropped
        # connection, requests get a new one instead of an error.
        config["CONN_HEALTH_CHECKS"] = True
        config["OPTIONS"] = {
            "pool": {
                "min_size": env.int("DB_POOL_MIN", default=2),
                "max_size": env.int("DB_POOL_MAX", default=20),
                "timeout": env.int("DB_POOL_TIMEOUT", default=10),
            }
        }
    return config


DATABASE_URL = env("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
DATABASES = {"default": database_config(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            # Django's RedisCache, but a Redis outage reads as an empty cache (core/cache.py).
            "BACKEND": "core.cache.ResilientRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="sb"),
            "OPTIONS": {
                "socket_connect_timeout": env.float("CACHE_TIMEOUT", default=0.5),
                "socket_timeout": env.float("CACHE_TIMEOUT", default=0.5),
            },
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

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Celery: Redis when REDIS_URL is set (its database, 0 when it names none), otherwise a
# filesystem broker that needs no server.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default="")
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
CELERY_FS_DIR = Path(env("CELERY_FS_DIR", default=str(VAR_DIR / "celery")))
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_FS_DIR / "queue"),
        "data_folder_out": str(CELERY_FS_DIR / "queue"),
        "processed_folder": str(CELERY_FS_DIR / "processed"),
        "store_processed": False,
        "control_folder": str(CELERY_FS_DIR / "control"),
    }
    for _folder in ("queue", "processed", "control"):
        (CELERY_FS_DIR / _folder).mkdir(parents=True, exist_ok=True)
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_QUEUE", default="celery")
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_TIME_LIMIT = 60 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 55 * 60
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE: dict = {
    "heartbeat": {"task": "core.tasks.heartbeat", "schedule": 60.0, "args": ["beat"]},
    "idempotency-purge": {"task": "core.tasks.idempotency_purge", "schedule": 3600.0},
    "shutdown-alerts": {"task": "spend.tasks.send_shutdown_alerts", "schedule": 6 * 60 * 60.0},
    "budget-reservations-sweep": {
        "task": "spend.tasks.budget_reservations_sweep_task",
        "schedule": 60.0,
    },
    "spend-rollup": {"task": "spend.tasks.usage_rollup", "schedule": 300.0},
    "spend-alerts": {"task": "spend.tasks.alerts_check", "schedule": 60.0},
    "spend-content-purge": {"task": "spend.tasks.content_purge", "schedule": 3600.0},
}
# A budget reservation not renewed for this long is taken for a crashed process's and
# released. Keep it well above the longest request (timeouts x attempts).
BUDGET_RESERVATION_TIMEOUT_SECONDS = env.int("BUDGET_RESERVATION_TIMEOUT_SECONDS", default=900)
# Budget leases (spend/budgets.py, docs/gateway.md): each server process holds a chunk of a
# budget in memory instead of a database round trip per request.
BUDGET_LEASES = env.bool("BUDGET_LEASES", default=True)
BUDGET_LEASE_FRACTION = env.float("BUDGET_LEASE_FRACTION", default=0.05)  # of the headroom, ≤ 0.5
BUDGET_LEASE_REQUESTS = env.int("BUDGET_LEASE_REQUESTS", default=10)  # times a request's worst case
BUDGET_LEASE_IDLE_SECONDS = env.float("BUDGET_LEASE_IDLE_SECONDS", default=10.0)
# How often each process asks whether keys, prompts, routing, prices or budgets changed
# (core.hot): a write anywhere is seen by every process within about this long.
HOT_CHECK_SECONDS = env.float("HOT_CHECK_SECONDS", default=0.5)

# Gateway (gateway/): retries, timeouts, caches. See docs/gateway.md.
# Retries of the same model on 429/5xx/timeout/connection errors, before its fallbacks.
GATEWAY_RETRIES = env.int("GATEWAY_RETRIES", default=1)
# Backoff before retry n (0-based): base * 2**n, minus up to 25 % jitter, at most MAX.
GATEWAY_BACKOFF_SECONDS = env.float("GATEWAY_BACKOFF_SECONDS", default=0.2)
GATEWAY_BACKOFF_MAX_SECONDS = env.float("GATEWAY_BACKOFF_MAX_SECONDS", default=2.0)
# A 429 asking to wait longer than this moves on to the next model at once.
GATEWAY_RETRY_AFTER_MAX_SECONDS = env.float("GATEWAY_RETRY_AFTER_MAX_SECONDS", default=1.0)
# Connect timeout for upstream calls (the read timeout is the model's timeout).
GATEWAY_CONNECT_TIMEOUT_SECONDS = env.float("GATEWAY_CONNECT_TIMEOUT_SECONDS", default=5.0)
# How long a classifier answer is reused for the same input text.
GATEWAY_CLASSIFIER_CACHE_SECONDS = env.int("GATEWAY_CLASSIFIER_CACHE_SECONDS", default=24 * 3600)
# Largest accepted request body on the gateway's paths.
GATEWAY_MAX_BODY_BYTES = env.int("GATEWAY_MAX_BODY_BYTES", default=20 * 1024 * 1024)
# Largest file on /v1/files (its bytes are kept in the database).
GATEWAY_FILE_MAX_BYTES = env.int("GATEWAY_FILE_MAX_BYTES", default=100 * 1024 * 1024)
# Most request lines in one batch input file (OpenAI's limit).
GATEWAY_BATCH_MAX_LINES = env.int("GATEWAY_BATCH_MAX_LINES", default=50_000)
# Seconds between two polls of a running batch's upstream batches.
GATEWAY_BATCH_POLL_SECONDS = env.float("GATEWAY_BATCH_POLL_SECONDS", default=30.0)
# The usage writer and its spool (spend/usage.py, docs/production.md): how long it waits for
# more finished requests before a transaction; where each server process spools its ledgers
# (a local disk, one directory per host); how many ledgers it keeps in memory before the
# rest wait in the spool only; how old the oldest unwritten ledger may be before /readyz
# answers 503; how long written ledger keys are kept against a second write.
USAGE_FLUSH_SECONDS = env.float("USAGE_FLUSH_SECONDS", default=0.05)
USAGE_SPOOL_DIR = env("USAGE_SPOOL_DIR", default=str(VAR_DIR / "spool"))
USAGE_QUEUE_MAX = env.int("USAGE_QUEUE_MAX", default=20_000)
USAGE_BACKLOG_MAX_SECONDS = env.float("USAGE_BACKLOG_MAX_SECONDS", default=60.0)
USAGE_LEDGER_KEEP_DAYS = env.int("USAGE_LEDGER_KEEP_DAYS", default=7)
# A refusal while the request would fit if no request held any of the budget is checked
# once more after this long: requests that just ended in other processes are settled by then
# (their usage writers batch every USAGE_FLUSH_SECONDS).
BUDGET_REFUSAL_RECHECK_SECONDS = env.float("BUDGET_REFUSAL_RECHECK_SECONDS", default=0.15)

# Playground: batch jobs (compare and /api/v1/jobs), datasets, recommendations.
PLAYGROUND_BATCH_CONCURRENCY = env.int("PLAYGROUND_BATCH_CONCURRENCY", default=8)
PLAYGROUND_JOB_LEASE_SECONDS = env.float("PLAYGROUND_JOB_LEASE_SECONDS", default=60)
PLAYGROUND_JOB_MAX_ITEMS = env.int("PLAYGROUND_JOB_MAX_ITEMS", default=20_000)
# A job that can wait (deadline 24h) with fewer items runs them as flex calls, not a batch.
PLAYGROUND_JOB_BATCH_MIN_ITEMS = env.int("PLAYGROUND_JOB_BATCH_MIN_ITEMS", default=10)
PLAYGROUND_DATASET_MAX_BYTES = env.int("PLAYGROUND_DATASET_MAX_BYTES", default=10 * 1024 * 1024)
PLAYGROUND_DATASET_MAX_ROWS = env.int("PLAYGROUND_DATASET_MAX_ROWS", default=5_000)
PLAYGROUND_RECOMMEND_MIN_CASES = env.int("PLAYGROUND_RECOMMEND_MIN_CASES", default=20)
PLAYGROUND_RECOMMEND_MIN_MATCH_RATE = env.float("PLAYGROUND_RECOMMEND_MIN_MATCH_RATE", default=0.9)
CELERY_BEAT_SCHEDULE["playground-jobs-resume"] = {
    "task": "playground.tasks.jobs_resume_stale",
    "schedule": 30.0,
}
CELERY_BEAT_SCHEDULE["gateway-batches-poll-stale"] = {
    "task": "gateway.tasks.batches_poll_stale",
    "schedule": 60.0,
}
CELERY_BEAT_SCHEDULE["playground-content-purge"] = {
    "task": "playground.tasks.content_purge",
    "schedule": 3600.0,
}

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "core.jsonlimits.LimitedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "core.errors.api_exception_handler",
    # JSON only: /api answers never HTML (no browsable API through `?format=api`).
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "core.negotiation.FormatIfRendered",
    "COERCE_DECIMAL_TO_STRING": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Switchboard API",
    "DESCRIPTION": "Prompts, routing, budgets and usage. Team keys: `Authorization: Bearer sb_...`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from static files (drf-spectacular-sidecar), not a CDN
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Spend alerts: the webhook signing secret lives in the environment variable named here.
SPEND_ALERT_WEBHOOK_SECRET_ENV = "SWITCHBOARD_WEBHOOK_SECRET"
SPEND_ERROR_SPIKE = {"window_minutes": 15, "min_requests": 20, "rate": "0.2"}

# Upstreams. The simulator is the default upstream until OPENAI_API_KEY is set.
OPENAI_API_KEY = env("OPENAI_API_KEY", default="")
SIMULATOR_URL = env("SIMULATOR_URL", default="http://127.0.0.1:8100/v1")

# Mail (alerts): EMAIL_URL as django-environ reads it, e.g. smtp+tls://user:pass@host:587,
# smtps://..., consolemail:// (print to the process's output), dummymail:// (drop).
# Production defaults to a local SMTP server; dev (`make run`) to the console.
vars().update(env.email_url("EMAIL_URL", default="smtp://localhost:25"))
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="switchboard@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)

# Alerts (lifecycle, budgets): email to admins/finance users, and this webhook if set.
ALERT_WEBHOOK_URL = env("ALERT_WEBHOOK_URL", default="")

LOGGING = logging_config(
    level=env("LOG_LEVEL", default="INFO"), fmt=env("LOG_FORMAT", default="json")
)
ACCESS_LOG = env.bool("ACCESS_LOG", default=True)

# Operations (core/): limits, rate limiting, idempotency, metrics, CSP. See docs/production.md.
# 20 MiB: as the gateway (GATEWAY_MAX_BODY_BYTES); long contexts and images are large.
MAX_REQUEST_BYTES = env.int("MAX_REQUEST_BYTES", default=20 * 1024 * 1024)
JSON_MAX_DEPTH = env.int("JSON_MAX_DEPTH", default=64)
JSON_MAX_ITEMS = env.int("JSON_MAX_ITEMS", default=100_000)
# Django reads form bodies (pages) up to this; the same one limit as /v1 and REST.
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES

# Prompt rendering (docs/production.md, "Limits"): each render ends in a 422 past these.
PROMPT_RENDER_SECONDS = env.float("PROMPT_RENDER_SECONDS", default=1.0)
PROMPT_RENDER_MAX_CHARS = env.int("PROMPT_RENDER_MAX_CHARS", default=1_000_000)
PROMPT_RENDER_MAX_ITERATIONS = env.int("PROMPT_RENDER_MAX_ITERATIONS", default=100_000)
PROMPT_RENDER_MAX_DEPTH = env.int("PROMPT_RENDER_MAX_DEPTH", default=40)
# Templates that can loop render in worker processes, this many per server process, each
# with this much memory on top of what it starts with.
PROMPT_RENDER_WORKERS = env.int("PROMPT_RENDER_WORKERS", default=2)
PROMPT_RENDER_WORKER_MEMORY_MB = env.int("PROMPT_RENDER_WORKER_MEMORY_MB", default=512)
# A plain template renders inline while (variable references x characters of variables)
# stays under this; past it, in a worker.
PROMPT_RENDER_INLINE_WORK = env.int("PROMPT_RENDER_INLINE_WORK", default=8_000_000)
# Editor previews per user per minute (each compiles and renders a draft).
PROMPT_PREVIEW_PER_MINUTE = env.int("PROMPT_PREVIEW_PER_MINUTE", default=120)
# Templates longer than this (in characters) compile and render in a worker.
PROMPT_RENDER_INLINE_SOURCE_CHARS = env.int("PROMPT_RENDER_INLINE_SOURCE_CHARS", default=65_536)
# Compiled templates kept per process, counted in characters of their source (a compiled
# template holds about 30 bytes per character).
PROMPT_TEMPLATE_CACHE_CHARS = env.int("PROMPT_TEMPLATE_CACHE_CHARS", default=2_000_000)
RATE_LIMIT_FAIL_OPEN = env.bool("RATE_LIMIT_FAIL_OPEN", default=True)
RATE_LIMIT_REDIS_URL = env("RATE_LIMIT_REDIS_URL", default="")  # default: REDIS_URL
RATE_LIMIT_REDIS_TIMEOUT = env.float("RATE_LIMIT_REDIS_TIMEOUT", default=0.5)
RATE_LIMIT_REDIS_RETRY_SECONDS = env.float("RATE_LIMIT_REDIS_RETRY_SECONDS", default=5.0)
IDEMPOTENCY_TTL_SECONDS = env.int("IDEMPOTENCY_TTL_SECONDS", default=24 * 60 * 60)
IDEMPOTENCY_LOCK_SECONDS = env.int("IDEMPOTENCY_LOCK_SECONDS", default=5 * 60)
METRICS_TOKEN = env("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=["127.0.0.1", "::1"])
CONTENT_SECURITY_POLICY = env(
    "CONTENT_SECURITY_POLICY",
    default=(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
)
CONTENT_SECURITY_POLICY_REPORT_ONLY = env.bool("CONTENT_SECURITY_POLICY_REPORT_ONLY", default=False)
