"""One export, run the way the worker runs it (`export_job_run`), in a process of its own so that
its time and peak memory are the export's alone. `python -m bench.export_job <kind> <user email>`
prints a JSON line, with the process's peak resident memory (VmHWM)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main(kind: str, email: str) -> None:
    import django

    django.setup()
    from django.db import connection

    from bench.query_count import resident_kb
    from trial.audit import audit_context
    from trial.exports.models import ExportJob
    from trial.exports.services import export_job_run
    from trial.models import Site, User

    user = User.objects.get(email=email)
    sites = sorted(Site.objects.visible_to(user).values_list("pk", flat=True))
    # The job as export_request logs it, without enqueueing it: this process is the worker.
    with audit_context(reason="benchmark export"):
        job = ExportJob.objects.create(kind=kind, parameters={"site_ids": sites}, requested_by=user)
    queries = 0

    def count(execute, sql, params, many, context):
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    started = time.perf_counter()
    with connection.execute_wrapper(count):
        job = export_job_run(job_id=job.pk)
    seconds = time.perf_counter() - started
    size = job.file.size if job.file else 0
    if job.file:
        # The benchmark keeps the figures, not the files (a 10,000-participant export is large).
        Path(job.file.path).unlink(missing_ok=True)
    sys.stdout.write(
        json.dumps(
            {
                "kind": kind,
                "status": job.status,
                "error": job.error,
                "seconds": round(seconds, 2),
                "rows": job.row_count,
                "bytes": size,
                "queries": queries,
                # This process's own high-water mark (bench.renders.child_process says why).
                "peak_rss_kb": resident_kb("self", "VmHWM"),
            }
        )
        + "\n"
    )


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    main(sys.argv[1], sys.argv[2])
