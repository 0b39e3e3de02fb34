"""`make bench`: prepare each size's database, measure it, check the targets, write the results.

    python -m bench.run [--sizes 200,10000] [--seed 1]

BENCH_SIZES and BENCH_SEED set the defaults (`make bench BENCH_SIZES=200` for a quick run).
Exits 1 if a target failed, 2 if a measurement could not be made.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import report
from bench.databases import collected_static, prepared_database
from bench.environment import PROJECT_DIR, VAR_DIR, bench_environment
from bench.server import WORKERS
from bench.targets import check_targets


def _load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def _commit() -> str:
    return subprocess.run(  # noqa: S603 - fixed argv, no shell
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
    ).stdout.strip()


def measure(size: int, seed: int) -> dict:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    log = VAR_DIR / f"setup-{size}.log"
    sys.stderr.write(f"N={size}: preparing the database (log: {log})\n")
    name = prepared_database(size, seed, log=log)
    collected_static(log=log)
    sys.stderr.write(f"N={size}: measuring\n")
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(  # noqa: S603 - fixed argv: our interpreter and module
            [sys.executable, "-m", "bench.measure", str(size), out.name],
            cwd=PROJECT_DIR,
            env=bench_environment(name),
            check=True,
        )
        return json.loads(Path(out.name).read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=os.environ.get("BENCH_SIZES") or "200,10000")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("BENCH_SEED") or 1))
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.replace(" ", ",").split(",") if size]
    results = {
        "started_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": _commit(),
        "seed": args.seed,
        "workers": WORKERS,
        "machine": {"cpus": os.cpu_count(), "load_before": _load()},
        "sizes": {},
    }
    try:
        for size in sizes:
            results["sizes"][size] = measure(size, args.seed)
    except subprocess.CalledProcessError as error:
        sys.stderr.write(f"bench: a step failed ({error}); see {VAR_DIR}\n")
        return 2
    results["machine"]["load_after"] = _load()
    checks = check_targets(results["sizes"])
    markdown_path, json_path = report.write(results, checks)
    sys.stdout.write(report.markdown(results))
    sys.stdout.write(
        f"\nWritten: {markdown_path.relative_to(PROJECT_DIR)}, {json_path.relative_to(PROJECT_DIR)}\n"
    )
    return 1 if any(check.verdict == "FAIL" for check in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
