"""gunicorn's configuration for every web server of the EDC: the Procfile (`make run`), the Docker
image and the benchmark (bench/server.py) all start
`gunicorn trial.wsgi --config python:trial.gunicorn_conf ...`; the bind address, the worker count
(--workers or WEB_CONCURRENCY) and the access log stay on their command lines.

The master imports the site once (preload) and forks its workers from it, so they share those
pages copy-on-write and start without importing anything. Before the first fork it freezes what
it has imported (gc.freeze): a worker's full garbage collection then skips those ~190,000
long-lived objects (modules, classes, URL patterns) instead of walking them again - about 85 ms
of CPU each time (measured), a pause that lands on some unlucky request - and no longer
writes to (and so copies) the shared pages while doing it.
"""

from __future__ import annotations

import gc

worker_class = "sync"
preload_app = True
# No control socket (gunicorn 27 opens one at ~/.gunicorn/gunicorn.ctl by default): every server of
# the same user would share that path - a second one (the benchmark beside `make run`, a test's
# server) takes it over - and nothing here drives gunicorn through it.
control_socket_disable = True
# Allocations between two young-generation collections in the workers (Python's default: 700).
GC_YOUNG_THRESHOLD = 50_000


def when_ready(server) -> None:
    """In the master, after the preload and before the first worker is forked."""
    warm_up()
    # Objects freed by the warm-up leave holes in pages the workers would then fill (and copy):
    # collect first, then move every survivor to the permanent generation.
    gc.collect()
    gc.freeze()
    # A save leaves ~1,300 objects in reference cycles and keeps thousands alive until it ends:
    # at Python's default of 700 allocations they outlive the young collections and are collected
    # again in generation 1 (~3.5 ms each). 50,000 lets a request's objects die first: GC CPU per
    # table save 1.4 -> 0.13 ms (in-process, N = 200 copy, after the freeze), a few MB more held.
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    server.log.info("Preloaded; %d objects frozen out of the garbage collector", gc.get_freeze_count())


def warm_up() -> None:
    """Import in the master what each worker's first requests would otherwise import on its own.

    Only imports and in-memory tables: no database or Redis connection is opened here, since a
    socket inherited by several workers would mix their traffic."""
    from django.urls import reverse

    from trial.celery import app

    # Every view module (and what they import, WeasyPrint for the reports) and the URL reverse map.
    reverse("healthz-web")
    # Every app's tasks, and the broker transport and result backend modules that the first
    # announcement of a save would import (half a second under load) - no connection yet.
    app.loader.import_default_modules()
    app.amqp.producer_pool  # noqa: B018
    app.backend  # noqa: B018
