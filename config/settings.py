"""One settings module for every profile, driven by the environment.

Embedded profile (nothing set): SQLite under var/, eager Celery, in-process periodic runner,
in-memory cache and channel layer. Services profile (DATABASE_URL and REDIS_URL set):
PostgreSQL, and Redis for cache, Celery broker and channel layer.
"""

from pathlib import Path
from typing import Any

import environ
from celery.schedules import crontab
from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
env.read_env(BASE_DIR / ".env", overwrite=False)

VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("DJANGO_DEBUG", default=True)
# Django's technical error pages (tracebacks, settings) instead of the product's own 404/500
# pages; only with DEBUG on, and only when a developer asks for them.
DEBUG_PAGES = DEBUG and env.bool("DJANGO_DEBUG_PAGES", default=False)
SECRET_KEY = env.str(
    "DJANGO_SECRET_KEY",
    default="insecure-development-key-do-not-use-in-production" if DEBUG else environ.Env.NOTSET,
)
ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")
PRODUCT_NAME = "TrustGate"

EMBEDDED = not env.str("DATABASE_URL", default="")
REDIS_URL = env.str("REDIS_URL", default="")

INSTALLED_APPS = [
    "config.admin.OpsAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_htmx",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "csp",
    "djstripe",
    "accounts",
    "sending",
    "warming",
    "reputation",
    "leaderboard",
    "billing",
    "campaigns",
    "inbox",
    "tracking",
    "webhooks",
]

MIDDLEWARE = [
    # First: customers' tracking hostnames are accepted for the tracking paths before anything
    # reads the Host.
    "tracking.middleware.TrackingHostMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "accounts.middleware.CurrentWorkspaceMiddleware",
    # Last: process_exception runs bottom-up, so a refusal becomes a message before the error
    # pages see it.
    "config.middleware.ErrorPagesMiddleware",
    "config.middleware.ApplicationErrorMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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
                "accounts.context_processors.workspace",
                "csp.context_processors.nonce",
            ],
        },
    },
]

# --- Data stores -------------------------------------------------------------------------------
if EMBEDDED:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    }
else:
    DATABASES = {"default": env.db_url("DATABASE_URL")}
    # No persistent connections by default. Under ASGI each request runs in its own async
    # context, so a connection kept for reuse is never reused: it lingers, idle, until the
    # garbage collector closes it, and a busy web process exhausts PostgreSQL's max_connections
    # ("too many clients already"). Pool connections in PgBouncer instead (README, "Scaling
    # past one machine"); a WSGI or worker-only deployment may still set a positive age.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
    # A connection that went bad (database restarted, PgBouncer recycled it) is replaced before
    # a request uses it rather than failing that request.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # With PgBouncer in transaction pooling mode a server-side cursor (.iterator()) may outlive
    # the transaction's server connection: turn them off there.
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env.bool(
        "DATABASE_DISABLE_SERVER_SIDE_CURSORS", default=False
    )
    # A database that accepts connections but never answers must not hold requests forever:
    # connecting gives up after this many seconds and the request fails fast (the MTA's log
    # hook answers 503 so the MTA retries). Statement timeouts are set per request where a
    # bound matters (the hook: KUMO_WEBHOOK_STATEMENT_TIMEOUT_SECONDS), not for every
    # connection: migrations and batch tasks share these settings.
    url_options = DATABASES["default"].get("OPTIONS")
    DATABASES["default"]["OPTIONS"] = {
        "connect_timeout": env.int("DATABASE_CONNECT_TIMEOUT", default=5),
        **(url_options if isinstance(url_options, dict) else {}),  # options in the URL win
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="tg"),
            # A Redis that stalls must not stall requests. Errors are not ignored here
            # (IGNORE_EXCEPTIONS): login rate limits and TOTP replay marks live in this cache
            # and must not silently switch off; the API's throttles degrade on their own
            # (config/throttling.py).
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": env.float("CACHE_TIMEOUT_SECONDS", default=2.0),
                "SOCKET_TIMEOUT": env.float("CACHE_TIMEOUT_SECONDS", default=2.0),
            },
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # channels-redis waits for messages with a 5 s blocking read, and redis-py's
                # default socket timeout is also 5 s: every idle socket then failed at 5.0 s.
                # Reads get three times the wait; keepalive and health checks find dead links.
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": 15,
                        "socket_connect_timeout": 5,
                        "socket_keepalive": True,
                        "health_check_interval": 30,
                    }
                ],
                "prefix": env.str("CHANNELS_PREFIX", default="tg:asgi"),
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Celery --------------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str(
    "CELERY_BROKER_URL", default=REDIS_URL or "memory://localhost/"
)  # embedded: tasks run eagerly; a named host keeps kombu from warning
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Broker outages (README, "Broker outages"): the worker waits for Redis at start and reconnects
# for as long as it is gone; kombu's Redis transport is wrapped so that losing the connection
# while tasks are unacknowledged does not stop the worker (config/celery.py).
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT = "config.celery:RedisTransport"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None  # never give up
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # A Redis that stalls (or a dead network path) must not hold a publish, and so the MTA's
    # log hook, forever: the records are stored already and the periodic tick queues them.
    "socket_timeout": env.float("CELERY_BROKER_SOCKET_TIMEOUT", default=5.0),
    "socket_connect_timeout": env.float("CELERY_BROKER_SOCKET_TIMEOUT", default=5.0),
    # Half-open consumer connections are noticed and replaced within about 20 s.
    "health_check_interval": 10,
}
# A task running when the broker drops keeps running: its results go to PostgreSQL, not to
# the broker, and every task is safe to run twice should its message be delivered again.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# A task stuck on a connection that never answers is killed, not left to block its worker
# process forever; its transaction rolls back and the periodic tick retries the work.
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=1800)
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# The periodic schedule, declared once in code. django-celery-beat's database scheduler syncs it
# in the services profile; the in-process runner executes it in the embedded profile.
CELERY_BEAT_SCHEDULE = {
    "heartbeat": {"task": "accounts.tasks.heartbeat", "schedule": 60.0},
    "domains-tick": {"task": "sending.tasks.domains_tick", "schedule": 300.0},
    # Retries and scheduled sends, and hand-overs a dead worker left half done.
    "outbound-tick": {"task": "sending.tasks.outbound_tick", "schedule": 30.0},
    # Safety net: records whose processing task was never queued (broker down) are picked up.
    "reputation-intake": {"task": "reputation.tasks.records_process", "schedule": 30.0},
    # Window ageing: every domain's score recomputed from its window (set-based).
    "reputation-recompute": {"task": "reputation.tasks.scores_recompute_all", "schedule": 3600.0},
    "pool-map-export": {"task": "reputation.tasks.pool_map_export", "schedule": 600.0},
    "blocklists": {"task": "reputation.tasks.blocklists_check", "schedule": crontab(minute=20)},
    "bad-apples": {"task": "reputation.tasks.bad_apples_isolate", "schedule": 300.0},
    "mailbox-limits-restore": {
        "task": "reputation.tasks.mailbox_limits_restore",
        "schedule": crontab(minute=15, hour=0),
    },
    # Each day is planned once, a day ahead (so every send time is still to come).
    "warming-plan": {"task": "warming.tasks.warming_tick", "schedule": crontab(minute=35)},
    # The engagement agent: warm-up messages whose time has come are found, read and answered.
    "warming-engage": {"task": "warming.tasks.warming_engage_tick", "schedule": 60.0},
    # Campaign steps whose time has come: claimed, gated and reserved (docs/campaign-rules.md).
    "campaigns-dispatch": {"task": "campaigns.tasks.campaigns_dispatch_tick", "schedule": 60.0},
    "imports-tidy": {"task": "campaigns.tasks.imports_tidy_tick", "schedule": 600.0},
    # Replies in the sending mailboxes (each mailbox claimed by one poll at a time).
    "replies-poll": {"task": "inbox.tasks.replies_poll_tick", "schedule": 60.0},
    "tracking-domains": {
        "task": "tracking.tasks.tracking_domains_recheck_tick",
        "schedule": 3600.0,
    },
    # Outgoing webhooks: due deliveries and retries (docs/webhooks.md).
    "webhooks-deliver": {"task": "webhooks.tasks.webhooks_deliver_tick", "schedule": 30.0},
    # The leaderboard rebuilt from PostgreSQL (also restores a flushed Redis; docs/leaderboard.md).
    "leaderboard-rebuild": {"task": "leaderboard.tasks.leaderboard_rebuild", "schedule": 300.0},
    # Idempotent per day: hourly, so a worker that was down at midnight still grants today's.
    "credits-grant": {"task": "billing.tasks.credits_grant_daily", "schedule": crontab(minute=5)},
    "invitation-expiry": {
        "task": "accounts.tasks.invitations_expire",
        "schedule": crontab(minute=7),
    },
}
EMBEDDED_SCHEDULER = env.bool("EMBEDDED_SCHEDULER", default=CELERY_TASK_ALWAYS_EAGER)

# --- Auth ----------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "app_home"
ACCOUNT_LOGOUT_REDIRECT_URL = "landing"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = False
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = f"[{PRODUCT_NAME}] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "http" if DEBUG else "https"
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
ACCOUNT_FORMS = {"signup": "accounts.forms.SignupForm"}
# A reset request for an address nobody signed up with sends nothing (no mail to strangers).
ACCOUNT_EMAIL_UNKNOWN_ACCOUNTS = False
# Failed sign-ins are counted per client address first: one address gets 5 tries per 5 minutes,
# so guessing from one place stops there, and a stranger's guesses cannot lock the owner out
# from elsewhere. The per-account limit is higher (spread-out guessing from many addresses);
# when it trips, the message offers the password reset, which lets the owner in and clears it.
ACCOUNT_RATE_LIMITS = {"login_failed": "5/5m/ip,20/1h/key"}

# --- Client addresses ----------------------------------------------------------------------------
# How many reverse proxies of ours sit in front of the app, each appending to X-Forwarded-For.
# 0 (the default): the header is ignored and the connecting address is the client's, so a client
# cannot choose the address that rate limits and throttles count against.
TRUSTED_PROXY_COUNT = env.int("DJANGO_TRUSTED_PROXY_COUNT", default=0)
ALLAUTH_TRUSTED_PROXY_COUNT = TRUSTED_PROXY_COUNT
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = PRODUCT_NAME
MFA_TOTP_TOLERANCE = 1  # accept the neighbouring 30 s step (clock skew)
MFA_ADAPTER = "accounts.adapters.MFAAdapter"

# --- Email ---------------------------------------------------------------------------------------
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default=f"{PRODUCT_NAME} <no-reply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# The embedded profile prints mail to the console unless EMAIL_HOST is set; the services
# profile always sends through SMTP.
if env.str("EMAIL_HOST", default="") or not EMBEDDED:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
    EMAIL_PORT = env.int("EMAIL_PORT", default=587)
    EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
    EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
    EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=EMAIL_PORT == 587)
    EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=EMAIL_PORT == 465)
    EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

# --- API -----------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.api.permissions.PlanIncludesApi"],
    "DEFAULT_PAGINATION_CLASS": "accounts.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": [
        # DRF's anonymous and per-user throttles, letting requests through (and logging) when
        # the cache is down instead of answering 500.
        "config.throttling.AnonRateThrottle",
        "config.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("API_THROTTLE_ANON", default="60/min"),
        "user": env.str("API_THROTTLE_USER", default="1200/min"),
        "leaderboard": env.str("API_THROTTLE_LEADERBOARD", default="60/min"),
    },
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "EXCEPTION_HANDLER": "accounts.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
}
SPECTACULAR_SETTINGS = {
    "TITLE": f"{PRODUCT_NAME} API",
    "DESCRIPTION": "Sending domains, mailboxes, warming, reputation and campaigns. "
    "Authenticate with `Authorization: Bearer <token>`; a token is bound to one workspace.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "TlsModeEnum": "sending.models.TlsMode",
        "LeadStatusEnum": "campaigns.models.LeadStatus",
        "CampaignStatusEnum": "campaigns.models.CampaignStatus",
        "ProviderEnum": "sending.models.Provider",
        "OAuthProviderEnum": "sending.models.OAuthProvider",
        "GrantStatusEnum": "sending.models.GrantStatus",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "accounts.api.schema.error_responses",
    ],
}

# --- Replies, tracking, webhooks -----------------------------------------------------------------
TRACKING_TOKEN_DAYS = env.int("TRACKING_TOKEN_DAYS", default=180)
TRACKING_HITS_PER_MINUTE = env.int("TRACKING_HITS_PER_MINUTE", default=300)
TRACKING_DOMAIN_SCHEME = env.str("TRACKING_DOMAIN_SCHEME", default="https")
# Endpoints on private or loopback addresses are refused unless this is on (tests, DEBUG).
WEBHOOKS_ALLOW_PRIVATE_HOSTS = env.bool("WEBHOOKS_ALLOW_PRIVATE_HOSTS", default=False)
WEBHOOKS_TIMEOUT_SECONDS = env.float("WEBHOOKS_TIMEOUT_SECONDS", default=10.0)
WEBHOOKS_CA_FILE = env.str("WEBHOOKS_CA_FILE", default="")

# --- Secrets at rest -----------------------------------------------------------------------------
# Comma-separated Fernet keys; the first encrypts, all decrypt (rotation without downtime).
SECRET_ENCRYPTION_KEYS = env.list(
    "SECRET_ENCRYPTION_KEYS",
    default=["dHJ1c3RnYXRlLWRldmVsb3BtZW50LWtleS0zMmJ5dGU="] if DEBUG else environ.Env.NOTSET,
)

# --- Static files, i18n --------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
# Uploaded CSV files (lead and suppression imports): private, never served by URL; the web and
# worker processes must share this directory (one volume) when they run on different machines.
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Security (production switch: DJANGO_DEBUG=false) --------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Scripts and stylesheets come only from our own static files (inline <script>/<style> only
# with the per-response nonce, as on the API docs page). Style *attributes* stay allowed: pages
# draw meters and chart ticks with server-computed widths, and they cannot run code.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "style-src-attr": [UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
    }
}
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
    SILENCED_SYSTEM_CHECKS = env.list("DJANGO_SILENCED_SYSTEM_CHECKS", default=[])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # One line per task run drowns everything else out in the embedded profile.
    "loggers": {
        "celery.app.trace": {"level": env.str("CELERY_TRACE_LOG_LEVEL", default="WARNING")}
    },
}

# --- Product settings ----------------------------------------------------------------------------
INVITATION_TTL_DAYS = env.int("INVITATION_TTL_DAYS", default=7)
API_TOKENS_PER_USER = env.int("API_TOKENS_PER_USER", default=20)
SIGNUP_OPEN = env.bool("SIGNUP_OPEN", default=True)
# Staff must enrol TOTP before the operations console opens (off in debug for the demo).
STAFF_MFA_REQUIRED = env.bool("STAFF_MFA_REQUIRED", default=not DEBUG)

# --- Sending domains and mailboxes ---------------------------------------------------------------
# Resolvers for DNS checks, "host:port" each; the system's resolvers when empty.
DNS_NAMESERVERS = env.list("DNS_NAMESERVERS", default=[])
DNS_TIMEOUT_SECONDS = env.float("DNS_TIMEOUT_SECONDS", default=3.0)
PLATFORM_SPF_INCLUDE = env.str("PLATFORM_SPF_INCLUDE", default="_spf.trustgate.email")
PLATFORM_DMARC_RUA = env.str("PLATFORM_DMARC_RUA", default="dmarc-reports@trustgate.email")
PLATFORM_OWNERSHIP_PREFIX = env.str("PLATFORM_OWNERSHIP_PREFIX", default="_trustgate")
PLATFORM_TRACKING_HOST = env.str("PLATFORM_TRACKING_HOST", default="track.trustgate.email")
PLATFORM_INBOUND_MX = env.str("PLATFORM_INBOUND_MX", default="mx.trustgate.email")
DOMAIN_CLAIM_TTL_DAYS = env.int("DOMAIN_CLAIM_TTL_DAYS", default=7)
DKIM_RETIRE_AFTER_DAYS = env.int("DKIM_RETIRE_AFTER_DAYS", default=7)
MAILBOX_CONNECT_TIMEOUT_SECONDS = env.float("MAILBOX_CONNECT_TIMEOUT_SECONDS", default=10.0)
# Extra CA bundle for customers' mail servers with private CAs (added to the system CAs).
MAILBOX_TLS_CA_FILE = env.str("MAILBOX_TLS_CA_FILE", default="")
# Test connections to private, loopback or link-local addresses are refused (SSRF) unless set.
MAILBOX_ALLOW_PRIVATE_HOSTS = env.bool("MAILBOX_ALLOW_PRIVATE_HOSTS", default=False)
MAILBOX_DAILY_LIMIT_MAX = env.int("MAILBOX_DAILY_LIMIT_MAX", default=500)
# The most rows one CSV import of mailboxes takes (each row is created and tested in turn).
MAILBOX_IMPORT_MAX_ROWS = env.int("MAILBOX_IMPORT_MAX_ROWS", default=500)

# --- OAuth mailboxes: "Connect with Google / Microsoft" (README) ---------------------------------
# One redirect URL serves both providers; register it exactly at each.
OAUTH_REDIRECT_URL = env.str(
    "OAUTH_REDIRECT_URL", default=SITE_URL.rstrip("/") + "/oauth/mailbox/callback/"
)
# An access token is refreshed when it has less than this left.
OAUTH_REFRESH_AHEAD_SECONDS = env.int("OAUTH_REFRESH_AHEAD_SECONDS", default=300)
OAUTH_HTTP_TIMEOUT_SECONDS = env.float("OAUTH_HTTP_TIMEOUT_SECONDS", default=10.0)
# A started consent is good for this long (its state and PKCE verifier live in the session).
OAUTH_CONSENT_MAX_AGE_SECONDS = env.int("OAUTH_CONSENT_MAX_AGE_SECONDS", default=900)
MICROSOFT_OAUTH_AUTHORITY = env.str(
    "MICROSOFT_OAUTH_AUTHORITY", default="https://login.microsoftonline.com"
).rstrip("/")
# "organizations" (work accounts in any tenant), "common", or one tenant's id or domain.
MICROSOFT_OAUTH_TENANT = env.str("MICROSOFT_OAUTH_TENANT", default="organizations")
# A provider is offered on the add-mailbox page once its client id and secret are set.
OAUTH_PROVIDERS: dict[str, dict[str, Any]] = {
    "google": {
        "client_id": env.str("GOOGLE_OAUTH_CLIENT_ID", default=""),
        "client_secret": env.str("GOOGLE_OAUTH_CLIENT_SECRET", default=""),
        "authorize_url": "https://accounts.google.com/o/oauth2/v2/auth",
        "token_url": "https://oauth2.googleapis.com/token",
        "userinfo_url": "https://openidconnect.googleapis.com/v1/userinfo",
        "smtp": ("smtp.gmail.com", 465, "ssl"),
        "imap": ("imap.gmail.com", 993, "ssl"),
    },
    "microsoft": {
        "client_id": env.str("MICROSOFT_OAUTH_CLIENT_ID", default=""),
        "client_secret": env.str("MICROSOFT_OAUTH_CLIENT_SECRET", default=""),
        "authorize_url": (
            f"{MICROSOFT_OAUTH_AUTHORITY}/{MICROSOFT_OAUTH_TENANT}/oauth2/v2.0/authorize"
        ),
        "token_url": f"{MICROSOFT_OAUTH_AUTHORITY}/{MICROSOFT_OAUTH_TENANT}/oauth2/v2.0/token",
        "userinfo_url": "",  # the ID token names the mailbox
        "smtp": ("smtp.office365.com", 587, "starttls"),
        "imap": ("outlook.office365.com", 993, "ssl"),
    },
}

# --- Where platform mailboxes receive (README) ---------------------------------------------------
# The Dovecot that stores platform mailboxes' mail (MX -> MTA -> LMTP). The engagement agent logs
# in to a mailbox as Dovecot's master user: "<address><separator><master user>" with the master
# password. No host: no inbound store (the embedded profile starts its own under var/mail/).
INBOUND_IMAP_HOST = env.str("INBOUND_IMAP_HOST", default="")
INBOUND_IMAP_PORT = env.int("INBOUND_IMAP_PORT", default=993)
INBOUND_IMAP_SECURITY = env.str("INBOUND_IMAP_SECURITY", default="ssl")  # ssl | starttls | none
if INBOUND_IMAP_SECURITY not in ("ssl", "starttls", "none"):
    raise environ.ImproperlyConfigured("INBOUND_IMAP_SECURITY must be ssl, starttls or none.")
INBOUND_IMAP_MASTER_USER = env.str("INBOUND_IMAP_MASTER_USER", default="")
INBOUND_IMAP_MASTER_PASSWORD = env.str("INBOUND_IMAP_MASTER_PASSWORD", default="")
# Dovecot's auth_master_user_separator.
INBOUND_IMAP_MASTER_SEPARATOR = env.str("INBOUND_IMAP_MASTER_SEPARATOR", default="*")
# Extra CA bundle for the store's certificate (added to the system CAs).
INBOUND_IMAP_CA_FILE = env.str("INBOUND_IMAP_CA_FILE", default="")

# --- Outbound path (docs/outbound.md) ------------------------------------------------------------
# How platform mailboxes hand mail over: "kumo_http" (KumoMTA's /api/inject/v1) or "smtp_relay"
# (SMTP submission to KumoMTA or any relay). External mailboxes always use their own server.
OUTBOUND_TRANSPORT = env.str("OUTBOUND_TRANSPORT", default="kumo_http")
# KumoMTA's HTTP listener, e.g. http://kumo.internal:8000 (Basic auth checked by the node's
# http_server_validate_auth_basic). Empty in the embedded profile: an in-process stand-in runs.
KUMO_INJECT_URL = env.str("KUMO_INJECT_URL", default="")
KUMO_INJECT_USERNAME = env.str("KUMO_INJECT_USERNAME", default="")
KUMO_INJECT_PASSWORD = env.str("KUMO_INJECT_PASSWORD", default="")
KUMO_INJECT_TIMEOUT_SECONDS = env.float("KUMO_INJECT_TIMEOUT_SECONDS", default=30.0)
# Recipients per injection request (each with its own rendered message).
KUMO_INJECT_BATCH_SIZE = env.int("KUMO_INJECT_BATCH_SIZE", default=500)
# Bytes per injection request, under the node's request_body_limit (KumoMTA's default: 2 MiB).
KUMO_INJECT_MAX_REQUEST_BYTES = env.int("KUMO_INJECT_MAX_REQUEST_BYTES", default=1536 * 1024)
SMTP_RELAY_HOST = env.str("SMTP_RELAY_HOST", default="127.0.0.1")
SMTP_RELAY_PORT = env.int("SMTP_RELAY_PORT", default=25)
SMTP_RELAY_SECURITY = env.str("SMTP_RELAY_SECURITY", default="none")  # ssl | starttls | none
SMTP_RELAY_USERNAME = env.str("SMTP_RELAY_USERNAME", default="")
SMTP_RELAY_PASSWORD = env.str("SMTP_RELAY_PASSWORD", default="")
# True when the relay is our KumoMTA (it reads X-Tenant and drops a Message-ID it already
# has); false for Postfix, SES, Mailgun: no routing headers, no re-send after a lost answer.
SMTP_RELAY_IS_KUMOMTA = env.bool("SMTP_RELAY_IS_KUMOMTA", default=True)
OUTBOUND_SMTP_TIMEOUT_SECONDS = env.float("OUTBOUND_SMTP_TIMEOUT_SECONDS", default=30.0)
OUTBOUND_MAX_ATTEMPTS = env.int("OUTBOUND_MAX_ATTEMPTS", default=8)
# A hand-over claimed longer ago than this was interrupted (the worker died): reconcile it.
OUTBOUND_HANDOVER_LEASE_SECONDS = env.int("OUTBOUND_HANDOVER_LEASE_SECONDS", default=900)
# Messages one hand-over run claims.
OUTBOUND_BATCH_SIZE = env.int("OUTBOUND_BATCH_SIZE", default=1000)
# The Traffic Shaping Automation daemon (kumo-tsa-daemon), read for the console; empty = none.
KUMO_TSA_URL = env.str("KUMO_TSA_URL", default="")

# --- Reputation ----------------------------------------------------------------------------------
# The MTA's log hook authenticates with this token (Bearer, or Basic with it as the password).
KUMO_WEBHOOK_TOKEN = env.str(
    "KUMO_WEBHOOK_TOKEN", default="dev-kumo-webhook-token" if DEBUG else environ.Env.NOTSET
)
KUMO_WEBHOOK_MAX_BYTES = env.int("KUMO_WEBHOOK_MAX_BYTES", default=8 * 1024 * 1024)
# Storing one posted batch may take this long at most (PostgreSQL statement_timeout, set for the
# hook's transaction only); past it the hook answers 503 and the MTA retries.
KUMO_WEBHOOK_STATEMENT_TIMEOUT_SECONDS = env.float(
    "KUMO_WEBHOOK_STATEMENT_TIMEOUT_SECONDS", default=15.0
)
INTAKE_BATCH_SIZE = env.int("INTAKE_BATCH_SIZE", default=10000)
REPUTATION_WINDOW_DAYS = env.int("REPUTATION_WINDOW_DAYS", default=30)
REPUTATION_PROMOTION_HYSTERESIS = env.float("REPUTATION_PROMOTION_HYSTERESIS", default=2.0)
# Rate-based automatic actions wait for this many sent messages in the window.
REPUTATION_ACTION_MIN_SENT = env.int("REPUTATION_ACTION_MIN_SENT", default=20)
REPUTATION_COOLDOWN_DAYS = env.int("REPUTATION_COOLDOWN_DAYS", default=14)
# Spam blocks from this many distinct receiving domains (within the last 24 hours) start a
# cool-down; fewer only raise a warning (docs/tiers-and-actions.md#cool-down).
REPUTATION_SPAM_BLOCK_MIN_DOMAINS = env.int("REPUTATION_SPAM_BLOCK_MIN_DOMAINS", default=3)
# The warming network's typical engagement, for the rehabilitation target (docs/rehabilitation.md).
REHAB_REPLY_RATE = env.float("REHAB_REPLY_RATE", default=0.25)
REHAB_OPEN_RATE = env.float("REHAB_OPEN_RATE", default=0.60)
REHAB_MAX_MESSAGES = env.int("REHAB_MAX_MESSAGES", default=50000)
# The engagement agent (docs/warming.md#the-engagement-agent): minutes between a warm-up
# message's send time and the recipient's first look, seconds of reading before it acts, hours a
# rehabilitation message waits on the Warming tasks page for the customer before the agent acts.
# The embedded profile (a demo on one machine) is quicker, so that its warm-up visibly moves.
WARMUP_ENGAGE_DELAY_MINUTES = env.list(
    "WARMUP_ENGAGE_DELAY_MINUTES", cast=int, default=[1, 5] if EMBEDDED else [5, 90]
)
WARMUP_DWELL_SECONDS = env.list(
    "WARMUP_DWELL_SECONDS", cast=int, default=[5, 30] if EMBEDDED else [20, 240]
)
WARMUP_TASK_HOLD_HOURS = env.int("WARMUP_TASK_HOLD_HOURS", default=6)
WARMUP_AGENT_BATCH = env.int("WARMUP_AGENT_BATCH", default=500)
# Campaigns (docs/campaign-rules.md#mailbox-rotation): caps per inbox, per sending domain and per
# sending mailboxes' host provider, per day; and how many due steps one dispatch run takes.
CAMPAIGN_MAILBOX_CEILING = env.int("CAMPAIGN_MAILBOX_CEILING", default=250)
CAMPAIGN_DOMAIN_DAILY_CAP = env.int("CAMPAIGN_DOMAIN_DAILY_CAP", default=1600)
CAMPAIGN_PROVIDER_DAILY_CAPS = {
    "google": env.int("CAMPAIGN_GOOGLE_DAILY_CAP", default=1600),
    "microsoft": env.int("CAMPAIGN_MICROSOFT_DAILY_CAP", default=3200),
}
CAMPAIGN_DISPATCH_BATCH = env.int("CAMPAIGN_DISPATCH_BATCH", default=2000)
# Staff alerts: always the operations console (audit log); optionally these channels too.
STAFF_ALERT_EMAILS = env.list("STAFF_ALERT_EMAILS", default=[])
STAFF_ALERT_WEBHOOK_URL = env.str("STAFF_ALERT_WEBHOOK_URL", default="")
STAFF_ALERT_TELEGRAM_BOT_TOKEN = env.str("STAFF_ALERT_TELEGRAM_BOT_TOKEN", default="")
STAFF_ALERT_TELEGRAM_CHAT_ID = env.str("STAFF_ALERT_TELEGRAM_CHAT_ID", default="")
TELEGRAM_API_URL = env.str("TELEGRAM_API_URL", default="https://api.telegram.org")

# --- KumoMTA pool map (docs/pool-map.md) ---------------------------------------------------------
# The MTA nodes read the tenant->pool map from this Redis; with none set (embedded profile) an
# in-process stand-in (fakeredis) holds it.
KUMO_REDIS_URL = env.str("KUMO_REDIS_URL", default=REDIS_URL)
# The leaderboard's sorted set (a process-local stand-in without Redis: the embedded profile).
LEADERBOARD_REDIS_URL = env.str("LEADERBOARD_REDIS_URL", default=REDIS_URL)
LEADERBOARD_REDIS_PREFIX = env.str("LEADERBOARD_REDIS_PREFIX", default="tg:leaderboard:")
KUMO_REDIS_PREFIX = env.str("KUMO_REDIS_PREFIX", default="kumo:")
# Admin API base URLs of the MTA nodes, called with bump-config-epoch after every change published
# (full export or one tenant's pool), so that the nodes read the map again at once.
KUMO_NODES = env.list("KUMO_NODES", default=[])
# How long a node caches each lookup. Known before a node can read Redis, so it is a node setting
# (TRUSTGATE_MEMOIZE_TTL, whose default equals this; a test checks), not exported.
KUMO_MEMOIZE_TTL = env.str("KUMO_MEMOIZE_TTL", default="5 seconds")
# Log records per hook request: likewise the nodes' TRUSTGATE_HOOK_BATCH_SIZE.
KUMO_HOOK_BATCH_SIZE = env.int("KUMO_HOOK_BATCH_SIZE", default=500)
KUMO_POOL_TTL = env.str("KUMO_POOL_TTL", default="1 minute")
# The log hook endpoint, for the embedded stand-in MTA. Real nodes take theirs from their own
# TRUSTGATE_HOOK_URL only (never from Redis, or whoever can write it could redirect the token).
KUMO_HOOK_URL = env.str("KUMO_HOOK_URL", default=SITE_URL.rstrip("/") + "/hooks/kumomta/")
# How long the MTA remembers an accepted Message-ID, dropping a re-send of it (7 days).
KUMO_ACCEPTED_TTL_SECONDS = env.int("KUMO_ACCEPTED_TTL_SECONDS", default=7 * 24 * 3600)
# Conservative per-provider shaping the policy applies (connections, messages per hour per source
# IP and provider site), keyed by KumoMTA's stock provider names; `default` is everything else.
KUMO_SHAPING = env.json(
    "KUMO_SHAPING",
    default={
        "google": {"max_connections": 3, "messages_per_hour": 300},
        "yahoo": {"max_connections": 2, "messages_per_hour": 200},
        "outlook": {"max_connections": 2, "messages_per_hour": 250},
        "office365": {"max_connections": 2, "messages_per_hour": 250},
        "default": {"max_connections": 5, "messages_per_hour": 1000},
    },
)
# How the policy recognises each provider: suffixes of its MX hosts (matched against the site
# name). Must equal the provider rules of kumomta/policy/shaping.toml (a test checks).
KUMO_PROVIDER_MX_SUFFIXES = {
    "google": [".google.com", ".googlemail.com"],
    "yahoo": [".yahoodns.net"],
    "outlook": [".olc.protection.outlook.com"],
    "office365": [".mail.protection.outlook.com"],
}
# DNS blocklists checked for every active source IP (reversed octets) and verified domain.
DNSBL_IP_ZONES = env.list(
    "DNSBL_IP_ZONES", default=["zen.spamhaus.org", "b.barracudacentral.org", "bl.spamcop.net"]
)
DNSBL_DOMAIN_ZONES = env.list("DNSBL_DOMAIN_ZONES", default=["dbl.spamhaus.org", "multi.surbl.org"])
# Pool-level rates over the last hour above which the worst tenants are quarantined
# (docs/tiers-and-actions.md#bad-apple-isolation).
BAD_APPLE_MIN_SENT = env.int("BAD_APPLE_MIN_SENT", default=200)

# --- Billing (docs/billing.md) -------------------------------------------------------------------
# Stripe through dj-stripe. With no secret key set, billing is off: every workspace stays on the
# evaluation level (or a plan granted by support) and the billing page says so.
STRIPE_LIVE_MODE = env.bool("STRIPE_LIVE_MODE", default=False)
STRIPE_TEST_SECRET_KEY = env.str("STRIPE_TEST_SECRET_KEY", default="")
STRIPE_LIVE_SECRET_KEY = env.str("STRIPE_LIVE_SECRET_KEY", default="")
BILLING_ENABLED = bool(STRIPE_LIVE_SECRET_KEY if STRIPE_LIVE_MODE else STRIPE_TEST_SECRET_KEY)
# Only for a local Stripe (tests, localstripe); never set in production.
if env.str("STRIPE_API_BASE", default=""):
    STRIPE_API_HOST = env.str("STRIPE_API_BASE")
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_SUBSCRIBER_MODEL = "accounts.Workspace"
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
DJSTRIPE_SUBSCRIBER_CUSTOMER_KEY = "trustgate_workspace"
# The plan of a workspace that pays for none: "evaluation" (warming only) where plans are sold;
# an installation that hosts only its own company and sells nothing sets "pro".
BILLING_UNPAID_PLAN = env.str("BILLING_UNPAID_PLAN", default="evaluation")
# What one paying workspace costs to serve per month (servers, IPs, storage), in cents, for the
# console's unit economics.
BILLING_INFRA_CENTS_PER_WORKSPACE_MONTH = env.int(
    "BILLING_INFRA_CENTS_PER_WORKSPACE_MONTH", default=25
)
