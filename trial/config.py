"""Reading settings from the environment, with a clear message for every malformed value.

django-environ parses the values; this wrapper turns its assorted exceptions into one
`ImproperlyConfigured` that names the variable, shows the value and says what was expected, so a
site administrator can fix a typo in `.env` without reading a traceback.
"""

from __future__ import annotations

import zoneinfo
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import environ
from django.core.exceptions import ImproperlyConfigured

_UNSET = object()
# Django's own example key and other obvious placeholders are refused outside DEBUG.
_WEAK_KEYS = {"", "changeme", "secret", "django-insecure"}


class Config:
    def __init__(self, env_file: Path | None = None):
        self._env = environ.Env()
        if env_file is not None and env_file.name and Path(env_file).is_file():
            # Values already in the process environment win over the file.
            environ.Env.read_env(str(env_file), overwrite=False)

    def _read(self, name: str, parse, default: Any, expected: str):
        raw = self._env.str(name, default=None)
        if raw is None:
            if default is _UNSET:
                raise ImproperlyConfigured(f"Setting {name} is missing: expected {expected}.")
            return default
        try:
            return parse(name)
        except (ValueError, TypeError, KeyError, ImproperlyConfigured) as exc:
            raise ImproperlyConfigured(
                f"Setting {name}={raw!r} is malformed: expected {expected} ({exc})."
            ) from None

    def str(self, name: str, *, default: Any = _UNSET) -> str:
        return self._read(name, self._env.str, default, "text")

    def bool(self, name: str, *, default: Any = _UNSET) -> bool:
        def parse(n):
            raw = self._env.str(n).strip().lower()
            if raw in {"1", "true", "yes", "on"}:
                return True
            if raw in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError("not a yes/no value")

        return self._read(name, parse, default, "true or false")

    def int(self, name: str, *, default: Any = _UNSET) -> int:
        def parse(n):
            value = int(self._env.str(n).strip())
            if value < 0:
                raise ValueError("negative")
            return value

        return self._read(name, parse, default, "a whole number >= 0")

    def list(self, name: str, *, default: Any = _UNSET) -> list:
        return self._read(
            name,
            lambda n: [item.strip() for item in self._env.str(n).split(",") if item.strip()],
            default,
            "a comma-separated list",
        )

    def path(self, name: str, *, default: Any = _UNSET) -> Path:
        return self._read(name, lambda n: Path(self._env.str(n)).expanduser(), default, "a path")

    def url(self, name: str, *, default: Any = _UNSET) -> str:
        def parse(n):
            raw = self._env.str(n)
            parts = urlparse(raw)
            if parts.scheme not in {"http", "https"} or not parts.netloc:
                raise ValueError("not an http(s) URL")
            return raw.rstrip("/")

        return self._read(name, parse, default, "an http(s) URL such as https://edc.example.org")

    def secret_key(self, name: str, *, debug: bool) -> str:
        key = self._read(name, self._env.str, None, "a long random string")
        if key is None or key.strip().lower() in _WEAK_KEYS or (not debug and len(key) < 50):
            if debug and not key:
                # A development machine without a key gets a fixed, clearly insecure one.
                return "django-insecure-development-only-key-never-use-in-production"
            raise ImproperlyConfigured(
                f"Setting {name} must be a random string of at least 50 characters; "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(64))'"
            )
        return key

    def database_url(self, name: str, *, default: Any = _UNSET) -> dict:
        def parse(n):
            raw = self._env.str(n)
            if urlparse(raw).scheme not in {"postgres", "postgresql", "pgsql"}:
                raise ValueError("only PostgreSQL is supported")
            config = environ.Env.db_url_config(raw)
            if not config.get("NAME"):
                raise ValueError("no database name")
            return config

        if self._env.str(name, default=None) is None and default is not _UNSET:
            return environ.Env.db_url_config(default)
        return self._read(name, parse, default, "postgres://USER[:PASSWORD]@HOST:PORT/NAME")

    def redis_url(self, name: str, *, default: Any = _UNSET) -> str:
        def parse(n):
            raw = self._env.str(n)
            parts = urlparse(raw)
            if parts.scheme not in {"redis", "rediss"} or not parts.hostname:
                raise ValueError("not a redis:// URL")
            parts.port  # noqa: B018 - raises ValueError on a bad port
            return raw

        return self._read(name, parse, default, "redis://HOST:PORT/DB")

    def email_url(self, name: str, *, default: Any = _UNSET) -> dict:
        def parse(n):
            raw = self._env.str(n)
            if urlparse(raw).scheme not in environ.Env.EMAIL_SCHEMES:
                raise ValueError(f"scheme must be one of {sorted(environ.Env.EMAIL_SCHEMES)}")
            return environ.Env.email_url_config(raw)

        if self._env.str(name, default=None) is None and default is not _UNSET:
            return environ.Env.email_url_config(default)
        return self._read(name, parse, default, "an e-mail URL such as smtp://host:25 or filemail://")

    def time_zone(self, name: str, *, default: Any = _UNSET) -> str:
        def parse(n):
            raw = self._env.str(n).strip()
            zoneinfo.ZoneInfo(raw)
            return raw

        return self._read(name, parse, default, "an IANA time zone such as Europe/London")
