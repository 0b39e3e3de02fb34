"""The access matrix (issue #10, item 4): every URL x every actor x own site / other site answers
what tests/reliability/access_matrix.py says, GET for all and an empty POST for the URLs that
change state; and the matrix covers exactly the URLs the resolver has.

One world (two sites, everything a URL can name) is built once for the module inside a transaction
that is rolled back at the end; each request runs in a savepoint that is rolled back too, so an
accepted POST changes nothing for the next cell.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re

import pytest
import time_machine
from django.db import connection, transaction
from django.urls import URLResolver, get_resolver, reverse

from tests.reliability.access_matrix import ACTORS, ADMIN_PREFIX, DOWNLOADS, MATRIX, Row
from tests.reliability.access_world import build_world

pytestmark = pytest.mark.django_db

ROWS = {row.name: row for row in MATRIX}
SUCCESS = re.compile(r"^(2\d\d|302)$")
_addresses = itertools.count(1)


def url_names(resolver=None, namespace: str = "") -> list[str]:
    """Every named URL pattern, namespaced, walking included URLconfs recursively."""
    names = []
    for pattern in (resolver or get_resolver()).url_patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            names.extend(url_names(pattern, inner))
        elif namespace.startswith(ADMIN_PREFIX):
            names.append(namespace + (pattern.name or "(unnamed)"))  # covered by the admin row
        else:
            assert pattern.name, f"an unnamed URL pattern cannot be in the access matrix: {pattern}"
            names.append(namespace + pattern.name)
    return names


def test_every_url_has_a_row_and_every_row_a_url():
    names = {name for name in url_names() if not name.startswith(ADMIN_PREFIX)} | {"admin:index"}
    missing = sorted(names - ROWS.keys())
    stale = sorted(ROWS.keys() - names)
    assert not missing, (
        f"URL patterns without a row in tests/reliability/access_matrix.py: {missing}. "
        "Add a Row saying what each actor gets at their own and at another site."
    )
    assert not stale, f"rows of tests/reliability/access_matrix.py naming no URL pattern: {stale}"
    assert len(MATRIX) == len(ROWS), "a URL has two rows"


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    # The fixtures' day (tests/participants/conftest.py), ticking: visit windows and the patient
    # link are open, sessions are fresh.
    moment = dt.datetime(2026, 11, 3, 15, 0, tzinfo=dt.UTC)
    with django_db_blocker.unblock(), time_machine.travel(moment, tick=True), transaction.atomic():
        yield build_world()
        transaction.set_rollback(True)


def answer(response) -> str:
    if response.status_code == 302:
        location = response["Location"]
        if location.startswith("/account/login/"):
            return "LOG"
        if location.startswith("/account/two-factor/"):
            return "2FA"
    return str(response.status_code)


def ask(world, actor: str, method: str, url: str) -> str:
    # Each request from its own address: unknown questionnaire links are counted per address
    # (pro_measures.views), and this matrix asks for many on purpose.
    address = f"10.{next(_addresses) // 250 % 250}.{next(_addresses) % 250}.1"
    with transaction.atomic():
        response = getattr(world.client(actor), method)(url, REMOTE_ADDR=address)
        transaction.set_rollback(True)
    return answer(response)


def cells(row: Row):
    for method in ("get", "post"):
        for scope in ("own", "other"):
            expected = row.answers(method, scope)
            if expected is not None:
                yield method, scope, expected


@pytest.mark.parametrize("name", [row.name for row in MATRIX])
def test_each_actor_gets_what_the_matrix_says(world, name):
    row = ROWS[name]
    kwargs = {"own": world.own, "other": world.other}
    wrong = []
    for method, scope, expected in cells(row):
        url = reverse(name, kwargs=kwargs[scope].kwargs[row.kwargs] if row.kwargs else None)
        for actor in ACTORS:
            got = ask(world, actor, method, url)
            if got not in expected[actor].split("|"):
                wrong.append(
                    f"{method.upper()} {url} as {actor} ({scope} site): {got}, expected {expected[actor]}"
                )
    assert not wrong, "\n".join(wrong)


def test_unauthorised_posts_never_succeed():
    """The matrix itself: wherever a GET is refused or hidden, the POST is too (no row may let a
    POST through that its GET refuses), and no cell of any kind expects a 500."""
    for row in MATRIX:
        for scope in ("own", "other"):
            get, post = row.answers("get", scope), row.answers("post", scope)
            for actor in ACTORS:
                for answers in (get, post):
                    assert answers is None or "500" not in answers[actor], (row.name, actor)
                if post and get and get[actor] in ("LOG", "2FA", "403", "404"):
                    assert not SUCCESS.match(post[actor]), (row.name, scope, actor, get[actor], post[actor])


def rows_written() -> int:
    """Rows inserted, updated or deleted so far by this transaction, in every table but the
    sessions' (a request may refresh its session's last-seen time)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_xact_user_tables"
            " WHERE relname <> 'django_session'"
        )
        return cursor.fetchone()[0]


def test_every_download_has_a_row_that_refuses_posts():
    for name in DOWNLOADS:
        assert name in ROWS, name
        for scope in ("own", "other"):
            post = ROWS[name].answers("post", scope)
            assert post is None or not any(SUCCESS.match(answer) for answer in post.values()), (name, scope)
        assert ROWS[name].post is not None, f"{name}: the matrix should show its POST refused"


@pytest.mark.parametrize("name", list(DOWNLOADS))
def test_downloads_answer_get_and_head_only_and_other_methods_change_nothing(world, name):
    """Issue #10: downloads accepted a POST (a report's POST was even recorded as a download).
    Now POST, PUT, PATCH and DELETE get 405 with `Allow: GET, HEAD`, write nothing, and the
    download itself still works for someone who may have it."""
    row = ROWS[name]
    url = reverse(name, kwargs=world.own.kwargs[row.kwargs] if row.kwargs else None)
    client = world.client(DOWNLOADS[name])
    with transaction.atomic():
        got = client.get(url)
        assert got.status_code == 200, (name, got.status_code)
        before = rows_written()
        head = client.head(url)
        assert head.status_code == 200 and head["Content-Type"] == got["Content-Type"], name
        assert not (b"".join(head.streaming_content) if head.streaming else head.content), name
        for method in ("post", "put", "patch", "delete"):
            refused = getattr(client, method)(url, data={"anything": "1"})
            assert refused.status_code == 405, (name, method, refused.status_code)
            assert refused["Allow"] == "GET, HEAD", (name, method, refused["Allow"])
        assert rows_written() == before, f"{name}: a HEAD or a refused method wrote to the database"
        transaction.set_rollback(True)


def test_a_report_download_is_recorded_and_a_head_is_not(world):
    """The check above can see a write: a GET of a report records who downloaded it."""
    url = reverse("reports:report-download", kwargs=world.own.kwargs["report"])
    client = world.client("investigator")
    with transaction.atomic():
        before = rows_written()
        assert client.head(url).status_code == 200
        assert rows_written() == before
        assert client.get(url).status_code == 200
        assert rows_written() > before
        transaction.set_rollback(True)
