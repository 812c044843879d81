"""Settings, read from environment variables only (see the table in README.md).

With no variable set, the service runs embedded: SQLite in WAL mode, a file-system Celery
broker and a file cache under ``var/``. ``DATABASE_URL``, ``CELERY_BROKER_URL`` and
``CACHE_URL`` switch to PostgreSQL, Redis or RabbitMQ with no code change.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from pathlib import Path

from kombu import Queue

from config.env import (
    SettingError,
    env_bool,
    env_cache,
    env_db,
    env_int,
    env_list,
    env_rate,
    env_rates,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once per install (embedded setup)."""
    configured = env_str("SECRET_KEY", "")
    if configured:
        return configured
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(64))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Behind TLS-terminating proxies: set these to true in production (check --deploy asks for them).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^api/health"]  # load balancers probe over plain HTTP
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",  # its models module defines a concrete APIKey; ours is accounts.APIKey
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_prometheus",
    "accounts",
    "predictions",
    "history",
    "scheduling",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "config.api.middleware.CorrelationIdMiddleware",
    "config.api.middleware.ErrorBodyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "config.api.middleware.RequestBodyLimitMiddleware",
    "config.api.middleware.RateLimitHeadersMiddleware",
    "accounts.throttling.ClientIPRateLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.admin.AdminUnreadableAddressMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"
APPEND_SLASH = False  # both /path and /path/ are routed explicitly; no redirects on POST

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

# --- Database -------------------------------------------------------------------------------
DATABASES = {"default": env_db("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["OPTIONS"] = {
        # WAL lets the web server, the worker and beat read while one of them writes;
        # IMMEDIATE takes the write lock up front so writers queue instead of failing.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file, not memory, so that the test suite's servers and workers share the test database.
    _db["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
else:
    _db["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
    _db["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (rate limits and anything else shared between processes) ---------------------------
# Never per-process memory: every web and worker process must see the same counters.
CACHES = {"default": env_cache("CACHE_URL", f"filecache://{VAR_DIR / 'cache'}")}
if CACHES["default"]["BACKEND"].endswith("LocMemCache"):
    raise SettingError("Environment variable CACHE_URL must name a shared cache, not locmem://")
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.filebased.FileBasedCache":
    CACHES["default"].update(
        BACKEND="config.cache.LockingFileBasedCache",  # atomic counters across processes
        TIMEOUT=86400,  # >= the longest rate-limit window; see config/cache.py
        OPTIONS={"MAX_ENTRIES": 20_000, **CACHES["default"].get("OPTIONS", {})},
    )
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    CACHES["default"]["BACKEND"] = "config.cache.ReusingRedisCache"  # one client per process; see config/cache.py

# --- Auth -----------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/admin/login/"
CSRF_FAILURE_VIEW = "config.api.errors.csrf_failure"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the apps' static folders when collectstatic has not run (tests, a fresh
# checkout); `make run` collects them anyway so compressed copies are served.
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
ARTIFACT_ROOT = Path(env_str("ARTIFACT_ROOT", str(VAR_DIR / "artifacts")))

# --- Request bodies -------------------------------------------------------------------------
# JSON and form bodies are parsed in memory; uploads stream to disk and may be larger.
MAX_REQUEST_BODY_BYTES = env_int("MAX_REQUEST_BODY_BYTES", 20 * 1024 * 1024, minimum=1024)
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 512 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# --- API ------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.APIKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.IsViewer"],
    # The per-IP limit is accounts.throttling.ClientIPRateLimitMiddleware.
    "DEFAULT_THROTTLE_CLASSES": ["accounts.throttling.KeyTierRateThrottle"],
    # JSON only; the dataset upload view adds multipart for itself.
    "DEFAULT_PARSER_CLASSES": ["config.api.parsers.SafeJSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "config.api.renderers.FastJSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "config.api.schema.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "config.api.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "config.api.errors.exception_handler",
    # Client IP = the address the last trusted proxy saw; earlier X-Forwarded-For entries are
    # client-controlled and ignored, so a forged header cannot buy a fresh rate-limit budget.
    "NUM_PROXIES": env_int("TRUSTED_PROXY_COUNT", 0, minimum=0),
    "STRICT_JSON": True,
}

# Synchronous batches answer within the request; larger inputs go to bulk jobs.
PREDICTION_BATCH_MAX_ROWS = env_int("PREDICTION_BATCH_MAX_ROWS", 10_000, minimum=1)
RATE_LIMIT_TIERS = env_rates("RATE_LIMIT_TIERS", "basic=60/min,standard=600/min,premium=6000/min,unlimited=none")
RATE_LIMIT_PER_IP = env_rate("RATE_LIMIT_PER_IP", "6000/min")
# Session (browser) users have no key; they are counted per user at this tier.
RATE_LIMIT_SESSION_TIER = env_str("RATE_LIMIT_SESSION_TIER", "standard")
if RATE_LIMIT_SESSION_TIER not in RATE_LIMIT_TIERS:
    raise SettingError("Environment variable RATE_LIMIT_SESSION_TIER must name a RATE_LIMIT_TIERS tier")

SPECTACULAR_SETTINGS = {
    "TITLE": "Model operations service",
    "DESCRIPTION": (
        "Predictions, model versions, scheduled runs and prediction history for seven business "
        "models. Authenticate with `X-API-Key: <key>` (or `Authorization: Api-Key <key>`). "
        "Every error has the shape `{error, message, status_code, correlation_id[, details]}`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SECURITY": [{"ApiKeyAuth": []}],
    "ENUM_NAME_OVERRIDES": {"RoleEnum": "accounts.roles.Role", "BulkJobStatusEnum": "predictions.models.BulkJobStatus"},
    "PREPROCESSING_HOOKS": ["config.api.schema.document_paths_without_trailing_slash"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",  # the default, kept
        "predictions.api.serializers.document_prediction_request_limits",
    ],
}

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
_broker_dir = VAR_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's file-system transport: no server, one folder shared by producers and consumers.
    for sub in ("queue", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # Files are polled; 0.1 s keeps a task's pick-up delay low at a few syscalls per poll.
        "polling_interval": 0.1,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {}


def _default_result_backend(broker_url: str) -> str:
    """Results must reach the web process from any worker machine: use the broker's own store."""
    if broker_url.startswith(("redis", "rediss")):
        return broker_url
    if broker_url.startswith(("amqp", "pyamqp")):
        return "rpc://"  # replies travel back over RabbitMQ
    return f"file://{VAR_DIR / 'celery-results'}"  # embedded: one machine, one folder


CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", _default_result_backend(CELERY_BROKER_URL))
if CELERY_RESULT_BACKEND.startswith("file://"):
    Path(CELERY_RESULT_BACKEND.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_TASK_DEFAULT_QUEUE = "default"
# Each queue bound by its own routing key (a bare Queue(name) binds the default key "default"
# for all of them), so that routing never depends on how a transport treats that ambiguity.
# Scheduled runs have a queue of their own: behind the chunks of a large bulk job on
# "predictions" their ticks would wait for minutes and their slots be missed. A worker that
# takes both queues alternates between them, one message each in turn (README: More Celery
# workers on more machines).
CELERY_TASK_QUEUES = tuple(
    Queue(name, routing_key=name) for name in ("default", "scheduling", "predictions", "training")
)
CELERY_TASK_ROUTES = {
    "predictions.*": {"queue": "predictions"},
    "scheduling.*": {"queue": "scheduling"},
    "retraining.*": {"queue": "training"},
    "training.*": {"queue": "training"},
    "history.*": {"queue": "default"},
}
# Hard limit per task unless a task sets its own. No global soft limit: a task that needs to
# clean up sets soft_time_limit next to its own time_limit.
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 30 * 60, minimum=10)
# Training runs long; its tasks get this limit (see config/celery.py for the start-up check).
CELERY_TRAINING_TIME_LIMIT = env_int("CELERY_TRAINING_TIME_LIMIT", 2 * 3600, minimum=60)
# Redis redelivers an unacknowledged task after this many seconds: it must exceed every time
# limit, or a long task still running would be handed to a second worker.
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 3 * 3600, minimum=60)
if CELERY_BROKER_URL.startswith(("redis", "rediss", "sqs")):
    CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] = CELERY_VISIBILITY_TIMEOUT
CELERY_TASK_ACKS_LATE = False  # turned on per task, once that task is safe to run twice
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # keep the JSON log format in workers
CELERY_WORKER_SEND_TASK_EVENTS = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# django-celery-beat's DatabaseScheduler, tuned to send thousands of due entries in a second
# (scheduling/beat.py explains what changes and why).
CELERY_BEAT_SCHEDULER = "scheduling.beat:DatabaseScheduler"

# --- Scheduled runs (scheduling/services.py) ----------------------------------------------------
# A slot that starts later than this after its time is missed, and the run's misfire policy
# applies. At least 60 s: the sweeper re-sends a lost tick 20-35 s after its slot.
SCHEDULING_MISFIRE_GRACE_SECONDS = env_int("SCHEDULING_MISFIRE_GRACE_SECONDS", 60, minimum=60)
# An execution whose worker gave no sign of life for this long is failed by the reaper. Workers
# report after every 10,000 rows, which takes a few seconds.
SCHEDULING_EXECUTION_LEASE_SECONDS = env_int("SCHEDULING_EXECUTION_LEASE_SECONDS", 600, minimum=60)
# Disable a run after this many failed executions in a row; 0 never does.
SCHEDULING_AUTO_DISABLE_AFTER_FAILURES = env_int("SCHEDULING_AUTO_DISABLE_AFTER_FAILURES", 0, minimum=0)
# Of several beat processes, the one holding the beat lease sends the schedule; the others stand
# by and take over within 1.25 times this long of it dying (scheduling/leases.py). 0: every beat
# sends. At most 20: the slots whose ticks a failover lost are re-sent when the standby takes
# over (or by the periodic sweep, 20-35 s after them) and must start within the 60 s grace.
SCHEDULING_BEAT_LEASE_SECONDS = env_int("SCHEDULING_BEAT_LEASE_SECONDS", 10, minimum=0, maximum=20)
CELERY_TASK_ALWAYS_EAGER = False

# --- Logging: one JSON object per line, each carrying the request's correlation id ------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise SettingError(f"Environment variable LOG_LEVEL must be a logging level, got {LOG_LEVEL!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"correlation_id": {"()": "config.logging.CorrelationIdFilter"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(correlation_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["correlation_id"],
        }
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        # Request lines come from our own middleware, with the correlation id and duration.
        "django.server": {"level": "WARNING"},
        "gunicorn.access": {"level": "WARNING"},
    },
}

# --- History: roll-ups, retention, listings, outcomes ------------------------------------------
# Raw records older than this are deleted (after their hours are rolled up) until an admin sets
# another age through PUT /api/history/retention, which is stored in the database and wins.
HISTORY_RETENTION_DAYS = env_int("HISTORY_RETENTION_DAYS", 365, minimum=1)
# Record ids per DELETE, each batch its own short transaction, and the pause between two.
# PostgreSQL deletes never block inserts: batches there only bound the transaction, and the
# pause leaves the disk to the predictions written meanwhile. SQLite's writers wait for the
# whole database while a batch runs, polling with growing sleeps (1, 2, 5, 10, 15 ms...): small
# batches and a pause longer than those sleeps let them in between.
_sqlite = _db["ENGINE"].endswith("sqlite3")
HISTORY_RETENTION_BATCH_ROWS = env_int("HISTORY_RETENTION_BATCH_ROWS", 200 if _sqlite else 5_000, minimum=100)
HISTORY_RETENTION_PAUSE_MS = env_int("HISTORY_RETENTION_PAUSE_MS", 50 if _sqlite else 20, minimum=0)
# An hour is rolled up this long after it ends: records are stamped when a request starts and
# committed when it ends, so a large batch may land a little after its hour closed.
HISTORY_ROLLUP_DELAY_SECONDS = env_int("HISTORY_ROLLUP_DELAY_SECONDS", 600, minimum=0)
HISTORY_PAGE_SIZE_MAX = env_int("HISTORY_PAGE_SIZE_MAX", 1_000, minimum=1)
HISTORY_EXPORT_MAX_ROWS = env_int("HISTORY_EXPORT_MAX_ROWS", 1_000_000, minimum=1)
# Scores drawn from each side for the Kolmogorov-Smirnov test of a comparison.
HISTORY_COMPARE_SAMPLE_SIZE = env_int("HISTORY_COMPARE_SAMPLE_SIZE", 10_000, minimum=100)
HISTORY_OUTCOMES_MAX_ITEMS = env_int("HISTORY_OUTCOMES_MAX_ITEMS", 10_000, minimum=1)

# --- Bulk prediction jobs (predictions/bulk.py) ---------------------------------------------------
# Rows per chunk: one Celery task, one transaction, one result part. 10,000 rows take well under
# a second to predict and record, so a cancelled job stops quickly and a redelivered chunk
# repeats little work, while the per-task overhead (~3 ms) stays below 1 % of a chunk.
BULK_CHUNK_ROWS = env_int("BULK_CHUNK_ROWS", 10_000, minimum=1)
# Larger inputs are refused at submission: chunk rows and a job's files must stay manageable.
BULK_MAX_ROWS = env_int("BULK_MAX_ROWS", 20_000_000, minimum=1)
# A chunk claimed longer ago than this is presumed abandoned (its worker died) and may be taken
# over by another delivery. Far above a chunk's running time, below the job lease.
BULK_CHUNK_LEASE_SECONDS = env_int("BULK_CHUNK_LEASE_SECONDS", 300, minimum=1)
# A running job with no chunk finished for this long is failed by the reaper, with the reason.
BULK_JOB_LEASE_SECONDS = env_int("BULK_JOB_LEASE_SECONDS", 1800, minimum=2)
if BULK_JOB_LEASE_SECONDS <= BULK_CHUNK_LEASE_SECONDS:
    raise SettingError("Environment variable BULK_JOB_LEASE_SECONDS must exceed BULK_CHUNK_LEASE_SECONDS")
# Attempts at one chunk (failures and dead workers alike) before the job fails: a chunk that
# kills its worker every time must not be redelivered forever.
BULK_CHUNK_MAX_ATTEMPTS = env_int("BULK_CHUNK_MAX_ATTEMPTS", 5, minimum=1)
# Inputs and results are deleted this many days after the job finished (the job row stays).
BULK_RETENTION_DAYS = env_int("BULK_RETENTION_DAYS", 7, minimum=1)
# Callback URLs may point at private, loopback, link-local or reserved addresses only when
# their host name, address or network (CIDR) is listed here. Closed by default.
BULK_CALLBACK_ALLOWED_HOSTS = env_list("BULK_CALLBACK_ALLOWED_HOSTS", [])
for _entry in BULK_CALLBACK_ALLOWED_HOSTS:
    if not re.fullmatch(r"[A-Za-z0-9.:\-]+(/\d{1,3})?", _entry):
        raise SettingError(
            f"Environment variable BULK_CALLBACK_ALLOWED_HOSTS: {_entry!r} is not a host, address or CIDR"
        )
    if "/" in _entry:
        try:
            ipaddress.ip_network(_entry, strict=False)
        except ValueError:
            raise SettingError(f"Environment variable BULK_CALLBACK_ALLOWED_HOSTS: {_entry!r} is not a CIDR") from None
# Attempts per callback, the first retry's delay (doubled each time) and each attempt's timeout:
# 6 attempts 30 s apart at first reach a receiver that is down for up to ~15 minutes.
BULK_CALLBACK_MAX_ATTEMPTS = env_int("BULK_CALLBACK_MAX_ATTEMPTS", 6, minimum=1)
BULK_CALLBACK_BACKOFF_SECONDS = env_int("BULK_CALLBACK_BACKOFF_SECONDS", 30, minimum=1)
BULK_CALLBACK_TIMEOUT_SECONDS = env_int("BULK_CALLBACK_TIMEOUT_SECONDS", 10, minimum=1)
