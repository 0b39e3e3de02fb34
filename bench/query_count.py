"""Server-side figures for each response: SQL statements run and the worker's resident memory.

Only the benchmark's settings (bench.settings) install this middleware; it counts with
`connection.execute_wrapper`, so it needs no DEBUG and adds one function call per statement.
"""

from __future__ import annotations

from django.db import connection

QUERIES_HEADER = "X-Bench-Queries"
RSS_HEADER = "X-Bench-RSS-KB"


def resident_kb(pid: int | str = "self", field: str = "VmRSS") -> int:
    """A process's resident memory (VmRSS) or its peak so far (VmHWM), in KiB, from /proc."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class QueryCountMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # A worker's first request (and the first after CONN_MAX_AGE) opens the connection, whose
        # set-up runs statements of its own (django.contrib.postgres looks up its types' oids once
        # per process): the connection's, not the page's. Opened before counting, so a page's
        # count does not depend on which worker served it (a stray "3" for the 1-statement floor).
        connection.ensure_connection()
        count = 0

        def counter(execute, sql, params, many, context):
            nonlocal count
            count += 1
            return execute(sql, params, many, context)

        with connection.execute_wrapper(counter):
            response = self.get_response(request)
        response[QUERIES_HEADER] = str(count)
        response[RSS_HEADER] = str(resident_kb())
        return response
