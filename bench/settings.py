"""The EDC's one settings module (trial.settings), plus the benchmark's query counter.

Everything else comes from the environment that `bench.environment` builds: production values
(DEBUG off, manifest static files, persistent connections) with plain HTTP on loopback.
"""

from trial.settings import *  # noqa: F403
from trial.settings import MIDDLEWARE

# Outermost, so that the count covers every middleware (sessions, site, audit context) too.
MIDDLEWARE = ["bench.query_count.QueryCountMiddleware", *MIDDLEWARE]
