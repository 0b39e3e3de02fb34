"""Settings for the STS calcinosis EDC: one module, driven by environment variables.

Secure by default: DEBUG is off, cookies are Secure/HttpOnly, HTTPS is enforced. A development
machine opts out in its `.env` (written by `make run`). A malformed value stops start-up with an
ImproperlyConfigured error that names the variable (see `trial.config`).
"""

import os
from datetime import timedelta
from pathlib import Path

from trial.config import Config

BASE_DIR = Path(__file__).resolve().parent.parent
# ENV_FILE names another file of variables; empty reads none (the process environment only).
env = Config(Path(os.environ["ENV_FILE"]) if "ENV_FILE" in os.environ else BASE_DIR / ".env")

# --- Core -----------------------------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.secret_key("SECRET_KEY", debug=DEBUG)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.url("SITE_URL", default="http://127.0.0.1:8000")
STUDY_NAME = env.str("STUDY_NAME", default="STS Calcinosis Study")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "crispy_forms",
    "crispy_bootstrap5",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "pgtrigger",
    "pghistory",
    "django_celery_beat",
    "trial",
    "participants",
    "lesions",
    "pro_measures",
    # The read side's own models (ARCHITECTURE.md): after every domain app they read.
    "trial.reports",
    "trial.exports",
    "trial.signatures",
    "trial.data_management",
]

MIDDLEWARE = [
    # First: collects the work a request leaves until its response is sent (trial.after_response).
    "trial.after_response.AfterResponseMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy on every response (CONTENT_SECURITY_POLICY below).
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Patient questionnaire pages run as anonymous whatever staff session the browser holds.
    "trial.accounts.patient_pages.PatientPagesMiddleware",
    # Every page needs a signed-in user unless its view is marked @login_not_required.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "trial.accounts.sessions.SessionLimitsMiddleware",
    "trial.accounts.two_factor.RequireTwoFactorMiddleware",
    "trial.sites.CurrentSiteMiddleware",
    "trial.audit.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Writes of locked data (refused by PostgreSQL) answer 409 with a page that says so.
    "trial.locks.LockedDataMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a lockout into the lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "trial.urls"
WSGI_APPLICATION = "trial.wsgi.application"
AUTH_USER_MODEL = "trial.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
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
                "trial.navigation.navigation",
            ],
        },
    },
]

# --- Database and cache ---------------------------------------------------------------------
DATABASES = {
    "default": env.database_url("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/sts_edc")
}
# Persistent connections: a new connection per request costs ~4x on a list page (STACK.md).
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.redis_url("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="sts-edc"),
    }
}
# Patients' questionnaire links (pro_measures.views): unknown links from one address are counted
# in the cache; past half the limit each is answered DELAY late, at the limit the address gets
# "too many attempts" until WINDOW after its first unknown link.
QUESTIONNAIRE_BAD_TOKEN_LIMIT = env.int("QUESTIONNAIRE_BAD_TOKEN_LIMIT", default=10)
QUESTIONNAIRE_BAD_TOKEN_WINDOW = timedelta(
    minutes=env.int("QUESTIONNAIRE_BAD_TOKEN_WINDOW_MINUTES", default=10)
)
QUESTIONNAIRE_BAD_TOKEN_DELAY = timedelta(
    milliseconds=env.int("QUESTIONNAIRE_BAD_TOKEN_DELAY_MS", default=1000)
)

# --- Celery -----------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Every periodic schedule of the EDC is declared here, and only here.
CELERY_BEAT_SCHEDULE: dict = {
    "reminders-tick": {"task": "pro_measures.tasks.reminders_tick", "schedule": 60.0},
    "reminders-plan": {"task": "pro_measures.tasks.reminders_plan", "schedule": 3600.0},
    # New report versions for changed visits; signatures of changed records voided.
    "reports-refresh": {"task": "reports.tasks.reports_refresh", "schedule": 60.0},
    # Automatic data checks (out-of-window visits, implausible changes, missing measurements).
    "auto-queries": {"task": "data_management.tasks.auto_queries_raise", "schedule": 3600.0},
    # DICOM uploads whose processing task was lost (worker killed, broker flushed) are retried.
    "dicom-requeue-stuck": {"task": "lesions.tasks.dicom_files_requeue_stuck", "schedule": 300.0},
}

# --- Authentication -----------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # Django's ModelBackend, reading the signed-in user's permissions with the user.
    "trial.accounts.backends.UserWithPermissionsBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Lockout (django-axes): after AXES_FAILURE_LIMIT failed logins for one e-mail address the
# account is locked until an administrator unlocks it or the cool-off passes.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=30))
# An account locks after the limit from anywhere; one browser at one address also locks after
# the limit across accounts (credential stuffing), without locking a whole hospital's NAT address.
AXES_LOCKOUT_PARAMETERS = ["username", ["ip_address", "user_agent"]]
AXES_RESET_ON_SUCCESS = True
# Attempts while locked are refused without counting, so the lock ends AXES_COOLOFF_TIME after it
# began (what the lockout page says) instead of starting again with every retry.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "trial.accounts.lockout.lockout_response"
# The client's address behind the TLS proxy too (trial/network.py): otherwise every client would
# share the proxy's address and one attacker could lock out everyone with the same browser.
AXES_CLIENT_IP_CALLABLE = "trial.network.client_address"
# At most this many lockout e-mails to the administrators per hour; past it, one e-mail says so
# (the access log keeps every lockout): many locked addresses cannot flood their mailboxes.
LOCKOUT_EMAILS_PER_HOUR = env.int("LOCKOUT_EMAILS_PER_HOUR", default=10)
AXES_USERNAME_FORM_FIELD = "username"
AXES_VERBOSE = False

# Two-factor (django-otp): every staff role needs a confirmed TOTP device.
OTP_TOTP_ISSUER = STUDY_NAME

# E-signatures (trial.signatures): signing asks for the password again, and for a TOTP code when
# the session last passed the second factor longer ago than this; signing locks for
# AXES_COOLOFF_TIME after this many refused attempts.
SIGNATURE_SECOND_FACTOR_MAX_AGE = timedelta(minutes=env.int("SIGNATURE_SECOND_FACTOR_MINUTES", default=15))
SIGNATURE_FAILURE_LIMIT = env.int("SIGNATURE_FAILURE_LIMIT", default=5)

# Sessions: idle timeout and an absolute limit, enforced by trial.accounts.sessions.
SESSION_IDLE_TIMEOUT = timedelta(minutes=env.int("SESSION_IDLE_TIMEOUT_MINUTES", default=30))
SESSION_ABSOLUTE_TIMEOUT = timedelta(hours=env.int("SESSION_ABSOLUTE_TIMEOUT_HOURS", default=12))
SESSION_COOKIE_AGE = int(SESSION_ABSOLUTE_TIMEOUT.total_seconds())
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_FAILURE_VIEW = "trial.views.csrf_failure"

# --- Transport security -----------------------------------------------------------------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^healthz(/web)?$"]
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_PROXY", default=False) else None
)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# A strict policy (django-csp; Django's own arrives in 6.0): nothing inline, nothing from another
# origin. Scripts and styles are files under static/; charts are SVG images (data: URIs, in which
# no script runs); the patient pages are the same. PDFs rendered by WeasyPrint are not affected.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

# --- Internationalisation and time ------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English")]
USE_I18N = True
USE_TZ = True  # stored in UTC; shown in the site's zone (trial.sites.CurrentSiteMiddleware)
TIME_ZONE = env.time_zone("TIME_ZONE", default="UTC")

# --- Static files and uploads ---------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "var" / "static")
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # Front-end packages come from the npm registry at install time (package.json); never a CDN.
    ("vendor/bootstrap", BASE_DIR / "node_modules" / "bootstrap" / "dist"),
    ("vendor/bootstrap-icons", BASE_DIR / "node_modules" / "bootstrap-icons" / "font"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if env.bool("STATIC_MANIFEST", default=not DEBUG)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "var" / "media")
# Ultrasound DICOM uploads (lesions.dicom): the per-file limit is enforced while the upload
# streams in (lesions.dicom_views.DicomSizeLimitHandler), before the file is complete.
DICOM_MAX_UPLOAD_MB = env.int("DICOM_MAX_UPLOAD_MB", default=50)
# Keys the hash that replaces DICOM UIDs (PS3.15 Annex E); empty derives it from SECRET_KEY.
# Keep it stable for the life of the study, or the same UID maps to a new one after a change.
DICOM_UID_KEY = env.str("DICOM_UID_KEY", default="")

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# --- E-mail -------------------------------------------------------------------------------
vars().update(env.email_url("EMAIL_URL", default="smtp://127.0.0.1:25"))
EMAIL_FILE_PATH = env.path("EMAIL_FILE_PATH", default=BASE_DIR / "var" / "outbox")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="STS Calcinosis EDC <edc@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_TIMEOUT = 10

# --- Audit trail (django-pghistory), see trial.audit -------------------------------------
# The context (who, why, where) is copied into every event row, so an event can never be
# re-attributed by editing a shared context row.
import pghistory  # noqa: E402

PGHISTORY_CONTEXT_FIELD = pghistory.ContextJSONField()
PGHISTORY_APPEND_ONLY = True
PGHISTORY_MIDDLEWARE_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
PGHISTORY_ADMIN_ALL_EVENTS = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # WeasyPrint and fontTools narrate every render at INFO.
        "weasyprint": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
    },
}
