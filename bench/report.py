"""The benchmark's results as a table (Markdown, also printed) and as JSON, under bench/results/."""

from __future__ import annotations

import json
from pathlib import Path

from bench.targets import Check

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _cell(value, suffix: str = "") -> str:
    return "—" if value is None else f"{value}{suffix}"


def _page_rows(run: dict) -> list[str]:
    floor = run["pages"]["floor"]["p95_ms"] or None
    rows = [
        "| page | requests | errors | p50 ms | p95 ms | req/s | queries | peak RSS MB | p95 / floor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for page in run["pages"].values():
        ratio = f"{page['p95_ms'] / floor:.1f}x" if floor else "—"
        rows.append(
            f"| {page['label']} | {page['requests']} | {page['errors']} | {page['p50_ms']} | {page['p95_ms']} "
            f"| {page['requests_per_s']} | {_cell(page['queries'])} | {_cell(page['peak_rss_mb'])} | {ratio} |"
        )
    return rows


def _inprocess_rows(run: dict) -> list[str]:
    rows = ["| measured in one process | p50 ms | p95 ms | detail |", "|---|---:|---:|---|"]
    pdf = run["inprocess"]["visit_pdf"]
    if "skipped" in pdf:
        rows.append(f"| Visit PDF | — | — | {pdf['skipped']} |")
    else:
        rows.append(
            f"| Visit PDF (data, chart, template, render) | {pdf['full']['p50_ms']} | {pdf['full']['p95_ms']} "
            f"| visit {pdf['visit']} #{pdf['visit_id']} |"
        )
        rows.append(
            f"| Bare WeasyPrint, same HTML | {pdf['weasyprint']['p50_ms']} | {pdf['weasyprint']['p95_ms']} | |"
        )
    tick = run["inprocess"]["reminder_tick"]
    idle, sending = tick["nothing_due"], tick["sending"]
    rows.append(
        f"| Reminder tick (the periodic task: count due, enqueue batch tasks), nothing due | {idle['p50_ms']} "
        f"| {idle['p95_ms']} | {tick['pending_not_due']} pending not due; {idle['statements']} statements, "
        f"{idle['commits']} commits |"
    )
    rows.append(
        f"| Reminder tick (the periodic task: count due, enqueue batch tasks), {tick['due']} due "
        f"| {tick['p50_ms']} | {tick['p95_ms']} | {tick['batch_tasks']} batch tasks enqueued on Redis; "
        f"{tick['statements']} statements, {tick['commits']} commits; sends nothing |"
    )
    rows.append(
        f"| Reminder e-mails: the tick's {tick['batch_tasks']} batch tasks run one after another in-process, "
        f"{tick['due']} due | {sending['p50_ms']} | {sending['p95_ms']} "
        f"| {sending['sent']} sent to {tick['participants']} participants: {sending['ms_per_email']} ms, "
        f"{sending['statements_per_email']} statements per e-mail; {sending['commits']} commits "
        f"(a durable commit alone: {tick['durable_commit']['p50_ms']} ms) |"
    )
    rows += ["", "| export (own process) | status | seconds | peak RSS MB | rows | MB written | queries |"]
    rows.append("|---|---|---:|---:|---:|---:|---:|")
    for kind, export in run["exports"].items():
        rows.append(
            f"| {kind} | {export.get('status')} | {_cell(export.get('seconds'))} | {export['peak_rss_mb']} "
            f"| {_cell(export.get('rows'))} | {round(export.get('bytes', 0) / 1e6, 1)} | {_cell(export.get('queries'))} |"
        )
    concurrent = run["concurrent"]
    rows += [
        "",
        f"{concurrent['users']} concurrent users for {concurrent['seconds']} s: {concurrent['requests']} requests, "
        f"**{concurrent['errors']} errors**; gunicorn workers' peak RSS {run['server_peak_rss_mb']} MB.",
    ]
    return rows


def markdown(results: dict) -> str:
    machine = results["machine"]
    lines = [
        f"# Benchmark {results['started_at']}",
        "",
        f"Commit {results['commit']}; {machine['cpus']} cores; load average {machine['load_before']} before, "
        f"{machine['load_after']} after (the machine is shared: figures move with that load). "
        f"gunicorn, {results['workers']} sync workers, on 127.0.0.1; the client runs on the same cores. "
        "Requests per page at concurrency 1 after 3 warm-up requests.",
    ]
    for size, run in results["sizes"].items():
        lines += ["", f"## N = {size} participants (database {run['database']})", ""]
        lines += _page_rows(run) + [""] + _inprocess_rows(run)
    lines += ["", "## Targets (issue #9)", "", "| target | verdict | measured |", "|---|---|---|"]
    lines += [f"| {c['target']} | {c['verdict']} | {c['detail']} |" for c in results["targets"]]
    return "\n".join(lines) + "\n"


def write(results: dict, checks: list[Check]) -> tuple[Path, Path]:
    results["targets"] = [c.as_json() for c in checks]
    text = markdown(results)
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = results["started_at"].replace(":", "").replace("-", "")[:13]
    body = json.dumps(results, indent=2, default=str) + "\n"
    for name in ("latest", stamp):
        (RESULTS_DIR / f"{name}.md").write_text(text)
        (RESULTS_DIR / f"{name}.json").write_text(body)
    return RESULTS_DIR / "latest.md", RESULTS_DIR / "latest.json"
