"""The test run's environment, then the one settings module (trial.settings).

Tests use the real PostgreSQL and Redis. Only what a test run needs differs: plain HTTP on the test
client, a fast password hasher, a Redis database of its own, e-mail kept in memory.
"""

import atexit
import os
import shutil
import tempfile

# Tests read no .env file: the same results on a developer's machine and in CI.
os.environ.setdefault("ENV_FILE", "")
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "test-only-key-" + "x" * 60)
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("SECURE_COOKIES", "false")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/sts_edc")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
# Cache keys of its own (rate limits, throttles): runs sharing this machine's Redis never count
# each other's requests. Worker and server processes a test starts inherit it.
os.environ.setdefault("CACHE_KEY_PREFIX", f"sts-edc-test-{os.getpid()}")
os.environ.setdefault("TIME_ZONE", "America/New_York")
os.environ.setdefault("STATIC_MANIFEST", "false")
os.environ.setdefault("EMAIL_URL", "memorymail://")


def _temporary_directory(name: str, prefix: str) -> None:
    """A directory of this run's own for `name`, removed when the run ends. Servers and workers a
    test starts inherit the variable, so they share it and leave the removal to this process."""
    if os.environ.get(name):
        return
    path = os.environ[name] = tempfile.mkdtemp(prefix=prefix)
    owner = os.getpid()
    atexit.register(lambda: os.getpid() == owner and shutil.rmtree(path, ignore_errors=True))


# Tests serve static files from the finders (no collectstatic); an empty root keeps whitenoise quiet.
_temporary_directory("STATIC_ROOT", "edc-static-")
_temporary_directory("MEDIA_ROOT", "edc-media-")

from trial.settings import *  # noqa: E402,F403

# One test database per test process (several runs may share this machine); TEST_DB_NAME pins one.
DATABASES["default"]["TEST"] = {"NAME": os.environ.get("TEST_DB_NAME") or f"test_sts_edc_{os.getpid()}"}  # noqa: F405

# Argon2 is deliberately slow; tests create many users.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
WHITENOISE_USE_FINDERS = True
