"""The targets of issue #9 item 3, checked against the figures of one benchmark run.

Each check answers PASS, FAIL or "not checked" (with why: e.g. a quick run at one size cannot
compare two sizes). Targets stated "at N = 10,000" are checked at the largest size measured and
say which size that was.
"""

from __future__ import annotations

from dataclasses import dataclass

LIST_PAGES_FLOOR_FACTOR = 10
MEASUREMENT_SAVE_P95_MS = 30
PRO_SUBMIT_P95_MS = 50
PDF_FACTOR = 1.5
CSV_SECONDS = 60
CSV_PEAK_RSS_MB = 250
CSV_RSS_GROWTH = 1.5
REMINDER_TICK_MS = 200


@dataclass(frozen=True)
class Check:
    target: str
    verdict: str  # "PASS", "FAIL" or "not checked"
    detail: str

    def as_json(self) -> dict:
        return {"target": self.target, "verdict": self.verdict, "detail": self.detail}


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _query_counts(sizes: dict[int, dict]) -> Check:
    target = "Every page's query count is the same at every size"
    if len(sizes) < 2:
        return Check(target, "not checked", "one size measured")
    counts = {
        key: {size: run["pages"].get(key, {}).get("queries") for size, run in sizes.items()}
        for key in sorted({key for run in sizes.values() for key in run["pages"]})
    }
    differing = {key: by_size for key, by_size in counts.items() if len(set(by_size.values())) > 1}
    detail = "; ".join(
        f"{key}: " + ", ".join(f"{count} at {size}" for size, count in by_size.items())
        for key, by_size in differing.items()
    )
    return Check(target, _verdict(not differing), detail or "all equal")


def _list_pages(largest: int, run: dict) -> list[Check]:
    floor = run["pages"]["floor"]["p95_ms"]
    checks = []
    for key in ("dashboard", "today"):
        page = run["pages"].get(key)
        target = f"{key} p95 at N={largest} within {LIST_PAGES_FLOOR_FACTOR}x the floor's p95"
        if page is None:
            checks.append(Check(target, "not checked", "page not measured"))
            continue
        ratio = page["p95_ms"] / floor if floor else float("inf")
        detail = f"{page['p95_ms']} ms = {ratio:.1f}x floor ({floor} ms)"
        checks.append(Check(target, _verdict(ratio <= LIST_PAGES_FLOOR_FACTOR), detail))
    return checks


def _latency(sizes: dict[int, dict], key: str, limit: float, target: str) -> Check:
    measured = {size: run["pages"][key]["p95_ms"] for size, run in sizes.items() if key in run["pages"]}
    if not measured:
        return Check(target, "not checked", "page not measured (no data for it)")
    worst = max(measured.values())
    detail = ", ".join(f"{ms} ms at {size}" for size, ms in measured.items())
    return Check(target, _verdict(worst <= limit), detail)


def _pdf(sizes: dict[int, dict]) -> Check:
    target = f"Visit PDF within {PDF_FACTOR}x the bare WeasyPrint render of the same HTML"
    parts, ok = [], True
    for size, run in sizes.items():
        pdf = run["inprocess"]["visit_pdf"]
        if "skipped" in pdf:
            continue
        ratio = pdf["full"]["p50_ms"] / pdf["weasyprint"]["p50_ms"]
        ok &= ratio <= PDF_FACTOR
        parts.append(f"{pdf['full']['p50_ms']} / {pdf['weasyprint']['p50_ms']} ms = {ratio:.2f}x at {size}")
    if not parts:
        return Check(target, "not checked", "no completed visit in the data")
    return Check(target, _verdict(ok), ", ".join(parts))


def _csv(sizes: dict[int, dict], largest: int) -> list[Check]:
    csv = sizes[largest]["exports"]["csv_long"]
    done = csv.get("status") == "done"
    checks = [
        Check(
            f"Full CSV export at N={largest} in <= {CSV_SECONDS} s with peak RSS <= {CSV_PEAK_RSS_MB} MB",
            _verdict(done and csv["seconds"] <= CSV_SECONDS and csv["peak_rss_mb"] <= CSV_PEAK_RSS_MB),
            f"{csv.get('status')}: {csv.get('seconds')} s, {csv['peak_rss_mb']} MB, {csv.get('rows')} rows",
        )
    ]
    target = f"CSV export peak RSS at the largest size <= {CSV_RSS_GROWTH}x that at the smallest"
    smallest = min(sizes)
    if smallest == largest:
        checks.append(Check(target, "not checked", "one size measured"))
    else:
        small = sizes[smallest]["exports"]["csv_long"]["peak_rss_mb"]
        ratio = csv["peak_rss_mb"] / small
        checks.append(
            Check(
                target,
                _verdict(ratio <= CSV_RSS_GROWTH),
                f"{csv['peak_rss_mb']} MB at {largest} / {small} MB at {smallest} = {ratio:.2f}x",
            )
        )
    return checks


def _reminder_tick(sizes: dict[int, dict]) -> Check:
    """Judged on the periodic tick itself (counting the due rows and enqueuing their batch tasks)
    with a realistic burst (bench.renders.DUE_REMINDERS due) and with nothing due, over the pending
    rows; the sending the batch tasks then do (on the workers, in parallel) is reported beside it."""
    target = f"A reminder tick over 100,000 pending rows <= {REMINDER_TICK_MS} ms"
    ticks = {size: run["inprocess"]["reminder_tick"] for size, run in sizes.items()}
    worst = max(max(t["p50_ms"], t["nothing_due"]["p50_ms"]) for t in ticks.values())
    detail = "; ".join(
        f"tick {t['p50_ms']} ms (p95 {t['p95_ms']}) with {t['due']} due: {t['statements']} statements, "
        f"{t['batch_tasks']} batch tasks enqueued; nothing due {t['nothing_due']['p50_ms']} ms "
        f"({t['nothing_due']['statements']} statements) at {size}: {t['pending_not_due']} pending not due. "
        f"Then the batch tasks send {t['sending']['sent']} in {t['sending']['p50_ms']} ms one after another = "
        f"{t['sending']['ms_per_email']} ms, {t['sending']['statements_per_email']} statements, "
        f"{t['sending']['commits'] / max(t['sending']['sent'], 1):.1f} commits per e-mail "
        f"(durable commit {t['durable_commit']['p50_ms']} ms)"
        for size, t in ticks.items()
    )
    return Check(target, _verdict(worst <= REMINDER_TICK_MS), detail)


def _concurrent(sizes: dict[int, dict]) -> Check:
    target = "50 concurrent users for 30 s on loopback: 0 errors"
    errors = {size: run["concurrent"]["errors"] for size, run in sizes.items()}
    detail = ", ".join(
        f"{run['concurrent']['requests']} requests, {errors[size]} errors at {size}"
        for size, run in sizes.items()
    )
    return Check(target, _verdict(not any(errors.values())), detail)


def check_targets(sizes: dict[int, dict]) -> list[Check]:
    """`sizes`: each size's results (bench.measure), keyed by the number of participants."""
    largest = max(sizes)
    return [
        _query_counts(sizes),
        *_list_pages(largest, sizes[largest]),
        _latency(
            sizes,
            "measurement_save",
            MEASUREMENT_SAVE_P95_MS,
            f"Measurement save p95 <= {MEASUREMENT_SAVE_P95_MS} ms",
        ),
        _latency(sizes, "pro_submit", PRO_SUBMIT_P95_MS, f"PRO submit p95 <= {PRO_SUBMIT_P95_MS} ms"),
        _pdf(sizes),
        *_csv(sizes, largest),
        _reminder_tick(sizes),
        _concurrent(sizes),
    ]
