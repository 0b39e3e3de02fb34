"""The environment the benchmark's processes run in: production settings, plain HTTP on loopback.

Production values where they change speed (DEBUG off, manifest static files served by whitenoise,
persistent database connections, Argon2); only what loopback forces differs: no HTTPS redirect,
cookies without the Secure flag, no HSTS. Nothing here is a real secret: the databases are the
benchmark's own synthetic ones.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_DIR / "var" / "bench"
STATIC_ROOT = VAR_DIR / "static"
# Redis database 15 belongs to the test suite, 0 to `make run`.
REDIS_URL = "redis://127.0.0.1:6379/14"
POSTGRES = "127.0.0.1:5432"
OWNER = "postgres"
# The least-privilege role the site connects as (trial.database_roles), the benchmark's own.
RUNTIME_ROLE = "edc_bench"


def database_url(name: str, *, role: str = RUNTIME_ROLE) -> str:
    return f"postgres://{role}@{POSTGRES}/{name}"


def bench_environment(database_name: str, **overrides: str) -> dict[str, str]:
    """os.environ plus the settings of a benchmark process (web server, measuring), which connects
    as the runtime role, as the site does."""
    env = {
        **os.environ,
        "ENV_FILE": "",
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DEBUG": "false",
        "SECRET_KEY": "bench-only-key-" + "b" * 60,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "SECURE_COOKIES": "false",
        "SECURE_HSTS_SECONDS": "0",
        "DATABASE_URL": database_url(database_name),
        "CONN_MAX_AGE": "60",
        "REDIS_URL": REDIS_URL,
        "EMAIL_URL": "memorymail://",
        "STATIC_ROOT": str(STATIC_ROOT),
        "STATIC_MANIFEST": "true",
        "MEDIA_ROOT": str(VAR_DIR / f"media-{database_name}"),
        "LOG_LEVEL": "WARNING",
    }
    env.update(overrides)
    return env
