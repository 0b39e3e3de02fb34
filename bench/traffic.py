"""HTTP traffic against the server: timed requests, a fixed load per page, and simulated users.

httpx with asyncio in one process: many users cost little client CPU, which matters on a 2-core
machine where the client, gunicorn and PostgreSQL share the cores. Each request's latency is taken
on the client; the server adds its query count and memory (bench.query_count) as headers.
"""

from __future__ import annotations

import asyncio
import logging
import re
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from bench.query_count import QUERIES_HEADER, RSS_HEADER

REQUEST_TIMEOUT_S = 120.0
# httpx logs every request at INFO: thousands of lines per run.
logging.getLogger("httpx").setLevel(logging.WARNING)
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@dataclass(frozen=True)
class Sample:
    status: int  # 0: no answer (connection error or timeout)
    seconds: float
    queries: int | None = None
    rss_kb: int | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 400


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (0 < fraction <= 1) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Stats:
    samples: list[Sample] = field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def count(self) -> int:
        return len(self.samples)

    @property
    def errors(self) -> list[Sample]:
        return [s for s in self.samples if not s.ok]

    def summary(self) -> dict:
        times = [s.seconds * 1000 for s in self.samples] or [0.0]
        queries = sorted({s.queries for s in self.samples if s.queries is not None})
        rss = [s.rss_kb for s in self.samples if s.rss_kb is not None]
        return {
            "requests": self.count,
            "errors": len(self.errors),
            "error_examples": sorted({f"{s.status} {s.error}".strip() for s in self.errors})[:5],
            "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(percentile(times, 0.95), 1),
            "max_ms": round(max(times), 1),
            "requests_per_s": round(self.count / self.wall_seconds, 1) if self.wall_seconds else 0.0,
            # A page whose count varies between requests shows its largest.
            "queries": queries[-1] if queries else None,
            "queries_seen": queries,
            "peak_rss_mb": round(max(rss) / 1024, 1) if rss else None,
        }


async def timed(
    client: httpx.AsyncClient, method: str, url: str, **kwargs
) -> tuple[Sample, httpx.Response | None]:
    started = time.perf_counter()
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.HTTPError as error:
        return Sample(0, time.perf_counter() - started, error=type(error).__name__), None
    seconds = time.perf_counter() - started
    headers = response.headers
    return (
        Sample(
            response.status_code,
            seconds,
            int(headers[QUERIES_HEADER]) if QUERIES_HEADER in headers else None,
            int(headers[RSS_HEADER]) if RSS_HEADER in headers else None,
        ),
        response,
    )


def csrf_token(html: str) -> str:
    match = CSRF_INPUT.search(html)
    if match is None:
        raise ValueError("the page has no CSRF token")
    return match.group(1)


def new_client(base_url: str, cookies: dict[str, str] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        cookies=cookies or {},
        timeout=REQUEST_TIMEOUT_S,
        follow_redirects=False,
        # The patient pages send Referrer-Policy: no-referrer, so their CSRF check reads Origin.
        headers={"Origin": base_url},
    )


# A step takes a client and the request's number and returns the sample of the request it times
# (it may make untimed requests first, e.g. the GET that a POST's form comes from).
Step = Callable[[httpx.AsyncClient, int], Awaitable[Sample]]


async def load(
    base_url: str,
    step: Step,
    *,
    cookies: dict[str, str] | None = None,
    concurrency: int = 1,
    requests: int = 200,
    max_seconds: float = 10.0,
    warmup: int = 3,
) -> Stats:
    """`requests` timed steps (fewer if `max_seconds` runs out) by `concurrency` clients at once,
    after `warmup` untimed ones."""
    async with new_client(base_url, cookies) as client:
        for number in range(warmup):
            await step(client, -1 - number)
        stats = Stats()
        counter = iter(range(requests))
        deadline = time.monotonic() + max_seconds

        async def worker() -> None:
            for number in counter:
                if time.monotonic() > deadline:
                    return
                stats.samples.append(await step(client, number))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        stats.wall_seconds = time.perf_counter() - started
    return stats


# A user runs its scenario (several steps) over and over with its own client until the time is up,
# appending every sample to the stats of the step's name.
Scenario = Callable[[httpx.AsyncClient, int, Callable[[str, Sample], None]], Awaitable[None]]


@dataclass(frozen=True)
class UserGroup:
    name: str
    scenario: Scenario
    cookies: list[dict[str, str]]  # one per user


async def simulate_users(base_url: str, groups: list[UserGroup], *, seconds: float) -> dict[str, Stats]:
    """Every user of every group at once, each looping over its scenario for `seconds`; a scenario
    run that began before the end finishes, so that no submission is cut off half-way."""
    by_step: dict[str, Stats] = {}

    def record(name: str, sample: Sample) -> None:
        by_step.setdefault(name, Stats()).samples.append(sample)

    deadline = time.monotonic() + seconds

    async def user(group: UserGroup, cookies: dict[str, str], number: int) -> None:
        async with new_client(base_url, cookies) as client:
            iteration = 0
            while time.monotonic() < deadline:
                await group.scenario(client, number * 100_000 + iteration, record)
                iteration += 1

    started = time.perf_counter()
    await asyncio.gather(
        *(user(group, cookies, n) for group in groups for n, cookies in enumerate(group.cookies))
    )
    wall = time.perf_counter() - started
    for stats in by_step.values():
        stats.wall_seconds = wall
    return by_step
