"""Check PostgreSQL and Redis before start-up, and create the project's database if missing.

`make run` and `make test` call this first, so a stopped service is named with the command that
starts it instead of surfacing as a traceback later.
"""

from __future__ import annotations

import psycopg2
import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from psycopg2 import sql

PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
REDIS_START = (
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no '
    "--dir /var/lib/redis --logfile /var/log/redis/ci.log"
)


class Command(BaseCommand):
    help = "Check that PostgreSQL and Redis are reachable; create the database if it is missing."
    requires_system_checks: list = []

    def handle(self, *args, **options):
        db = settings.DATABASES["default"]
        where = f"{db.get('HOST') or 'local socket'}:{db.get('PORT') or 5432}"
        try:
            conn = psycopg2.connect(
                dbname="postgres",
                user=db.get("USER") or None,
                password=db.get("PASSWORD") or None,
                host=db.get("HOST") or None,
                port=db.get("PORT") or None,
                connect_timeout=3,
            )
        except psycopg2.OperationalError as exc:
            raise CommandError(
                f"PostgreSQL is not reachable at {where} ({str(exc).strip()}).\n"
                f"Start it with:  {PG_START}\nor set DATABASE_URL in .env."
            ) from None
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]])
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["NAME"])))
                self.stdout.write(f"Created database {db['NAME']}.")
        conn.close()
        self.stdout.write(f"PostgreSQL: ok ({where}, database {db['NAME']})")

        try:
            redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3).ping()
        except redis.RedisError as exc:
            raise CommandError(
                f"Redis is not reachable at {settings.REDIS_URL} ({exc}).\n"
                f"Start it with:  {REDIS_START}\nor set REDIS_URL in .env."
            ) from None
        self.stdout.write(f"Redis: ok ({settings.REDIS_URL})")
