"""The benchmark's own parts that decide a verdict: the server-side query count, percentiles, and
the target checks (a page whose query count grows with the data must fail)."""

from __future__ import annotations

import copy

import pytest
from django.db import connection
from django.http import HttpResponse
from django.test import RequestFactory

from bench import report
from bench.query_count import QUERIES_HEADER, RSS_HEADER, QueryCountMiddleware
from bench.targets import check_targets
from bench.traffic import percentile


@pytest.mark.django_db
def test_the_middleware_counts_the_statements_a_request_ran():
    def view(request):
        with connection.cursor() as cursor:
            for _ in range(3):
                cursor.execute("SELECT 1")
        return HttpResponse("ok")

    response = QueryCountMiddleware(view)(RequestFactory().get("/"))
    assert response[QUERIES_HEADER] == "3"
    assert int(response[RSS_HEADER]) > 10_000  # KiB: a Django process is well over 10 MB


@pytest.mark.django_db(transaction=True)
def test_opening_the_connection_is_not_counted_as_the_pages():
    """The first request of a worker opens its connection, which runs set-up statements: the page's
    count is still its own (the floor is 1 statement whichever worker answers)."""
    from django.db.backends.signals import connection_created

    def set_up(sender, connection, **kwargs):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")  # as a connection's set-up does

    def view(request):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return HttpResponse("ok")

    connection.close()
    connection_created.connect(set_up)
    try:
        response = QueryCountMiddleware(view)(RequestFactory().get("/"))
    finally:
        connection_created.disconnect(set_up)
    assert response[QUERIES_HEADER] == "1"


def test_a_child_processs_peak_memory_is_its_own_not_the_benchmarks():
    """An export runs in a child process of the (large) benchmark process, and its peak memory is
    a target: the figure must be the child's own. (The kernel's wait4 figure is at least the
    parent's size: the exports' "peak RSS" was the benchmark's until 2026-12-07.)"""
    import sys

    from bench.renders import child_process

    ballast = bytearray(200 * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])  # resident in this process
    child = "import time; x = bytearray(40 * 1024 * 1024); x[::4096] = b'x' * len(x[::4096]); time.sleep(0.5)"
    code, _seconds, _output, peak_kb = child_process([sys.executable, "-c", child], timeout_s=30)
    assert code == 0
    assert 40 * 1024 < peak_kb < 120 * 1024  # the child's 40 MB and its interpreter, not 200 MB more
    del ballast


def test_percentile_is_the_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 0.95) == 95
    assert percentile(values, 0.5) == 50
    assert percentile([7.0], 0.95) == 7.0


def page(p95: float, queries: int) -> dict:
    return {"label": "x", "p95_ms": p95, "queries": queries}


def run(**overrides) -> dict:
    figures = {
        "pages": {
            "floor": page(10, 1),
            "today": page(50, 8),
            "dashboard": page(90, 13),
            "measurement_save": page(25, 38),
            "pro_submit": page(40, 6),
        },
        "inprocess": {
            "visit_pdf": {"full": {"p50_ms": 300}, "weasyprint": {"p50_ms": 250}},
            "reminder_tick": {
                "p50_ms": 150,
                "p95_ms": 180,
                "pending": 100_050,
                "pending_not_due": 100_000,
                "due": 50,
                "participants": 50,
                "batch_tasks": 5,
                "statements": 1,
                "commits": 0,
                "sending": {
                    "runs": 5,
                    "p50_ms": 400,
                    "p95_ms": 450,
                    "sent": 50,
                    "ms_per_email": 8.0,
                    "statements": 90,
                    "statements_per_email": 1.8,
                    "commits": 61,
                },
                "durable_commit": {"runs": 20, "p50_ms": 1.5, "p95_ms": 2.5},
                "nothing_due": {"p50_ms": 2, "p95_ms": 3, "statements": 1, "commits": 0},
            },
        },
        "exports": {"csv_long": {"status": "done", "seconds": 20, "peak_rss_mb": 150, "rows": 10}},
        "concurrent": {"requests": 1000, "errors": 0},
    }
    for path, value in overrides.items():
        *parents, leaf = path.split("__")
        node = figures
        for key in parents:
            node = node[key]
        node[leaf] = value
    return figures


def verdicts(sizes: dict) -> dict[str, str]:
    return {check.target: check.verdict for check in check_targets(sizes)}


def test_every_target_passes_on_good_figures():
    assert set(verdicts({200: run(), 10_000: run()}).values()) == {"PASS"}


def test_a_query_count_that_grows_with_the_data_fails():
    results = verdicts({200: run(), 10_000: run(pages__dashboard=page(90, 14))})
    assert results["Every page's query count is the same at every size"] == "FAIL"


def test_list_pages_are_judged_against_the_floor_at_the_largest_size():
    results = verdicts({200: run(), 10_000: run(pages__today=page(101, 8))})
    assert results["today p95 at N=10000 within 10x the floor's p95"] == "FAIL"
    assert results["dashboard p95 at N=10000 within 10x the floor's p95"] == "PASS"


def test_export_memory_growth_and_errors_under_load_fail():
    big = run()
    big["exports"]["csv_long"] = {**big["exports"]["csv_long"], "peak_rss_mb": 240}
    results = verdicts({200: run(), 10_000: big})
    assert results["CSV export peak RSS at the largest size <= 1.5x that at the smallest"] == "FAIL"
    results = verdicts({200: run(concurrent__errors=1)})
    assert results["50 concurrent users for 30 s on loopback: 0 errors"] == "FAIL"


def test_one_size_leaves_the_comparisons_unchecked():
    results = verdicts({200: copy.deepcopy(run())})
    assert results["Every page's query count is the same at every size"] == "not checked"
    assert results["Measurement save p95 <= 30 ms"] == "PASS"


TICK_TARGET = "A reminder tick over 100,000 pending rows <= 200 ms"


def test_the_reminder_tick_is_judged_on_the_tick_itself_with_and_without_reminders_due():
    dispatching_slowly = run(inprocess__reminder_tick__p50_ms=250)
    results = verdicts({200: run(), 10_000: dispatching_slowly})
    assert results[TICK_TARGET] == "FAIL"
    idle_but_slow = run(inprocess__reminder_tick__nothing_due={"p50_ms": 201, "p95_ms": 250, "statements": 1})
    assert verdicts({200: idle_but_slow})[TICK_TARGET] == "FAIL"
    # The sending is the batch tasks' (on the workers): reported, not the tick's figure.
    assert verdicts({200: run()})[TICK_TARGET] == "PASS"


def test_the_report_shows_the_tick_and_the_sending_apart():
    figures = run()
    figures["pages"] = {"floor": {**page(10, 1), "requests": 1, "errors": 0, "p50_ms": 9}}
    figures["pages"]["floor"].update(requests_per_s=1, peak_rss_mb=1)
    figures["inprocess"]["visit_pdf"] = {"skipped": "no completed visit in the data"}
    figures["exports"] = {}
    figures["concurrent"].update(users=50, seconds=30)
    figures.update(database="bench", server_peak_rss_mb=1)
    rows = "\n".join(report._inprocess_rows(figures))
    assert (
        "| Reminder tick (the periodic task: count due, enqueue batch tasks), nothing due | 2 | 3 "
        "| 100000 pending not due; 1 statements, 0 commits |"
    ) in rows
    assert (
        "| Reminder tick (the periodic task: count due, enqueue batch tasks), 50 due | 150 | 180 "
        "| 5 batch tasks enqueued on Redis; 1 statements, 0 commits; sends nothing |"
    ) in rows
    assert (
        "| Reminder e-mails: the tick's 5 batch tasks run one after another in-process, 50 due | 400 | 450 "
        "| 50 sent to 50 participants: 8.0 ms, 1.8 statements per e-mail; 61 commits"
    ) in rows
