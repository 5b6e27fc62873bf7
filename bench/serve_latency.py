"""What the HTTP layer adds to the advice: `GET /api/tasks/ID/advice` beside `advise()`.

On the million-run SQLite store of `bench/advice_query.py` (made by it if missing), times the
advice of each task called in this process (`tuner.advice.advise`, what `tuner advise --json`
runs) beside the same advice fetched from a `tuner serve` process on 127.0.0.1 over one kept-alive
connection (each URL new, so the server computes it; then the same URL again, which its
one-second memory answers). Prints medians, 99th percentiles and the difference.

    python bench/serve_latency.py                    # /tmp/tuner-bench-serve.db, 1,000,000 runs
    python bench/serve_latency.py --runs 200000 --db /tmp/small.db --repeat 50
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def ensure_store(path: Path, runs: int, seed: int) -> str:
    """The bench store of advice_query.py, generated when missing or of another size."""
    import sqlite3

    import advice_query

    if path.exists():
        with sqlite3.connect(path) as connection:
            count = connection.execute("SELECT count(*) FROM tuner_runs").fetchone()[0]
        if count >= runs * 0.9:
            return f"sqlite:///{path}"
    print(f"generating {runs:,} runs in {path} ...", flush=True)
    advice_query.generate(path, runs, random.Random(seed))
    return f"sqlite:///{path}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(url: str, port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "tuner", "serve", "--db", url, "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "TUNER_TOKEN": ""},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/api/tasks")
            connection.getresponse().read()
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("tuner serve did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=Path("/tmp/tuner-bench-serve.db"))
    parser.add_argument("--repeat", type=int, default=30, help="calls per task and side")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    url = ensure_store(args.db, args.runs, args.seed)
    from tuner.advice import advise
    from tuner.store import open_store

    port = free_port()
    server = start_server(url, port)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def get(path: str) -> bytes:
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise SystemExit(f"GET {path}: {response.status} {body[:200]!r}")
            return body

        tasks = json.loads(get("/api/tasks"))["tasks"]
        if not tasks:
            raise SystemExit("the store lists no task records: regenerate it with this tuner")
        store = open_store(url, create=False)
        in_process: list[float] = []
        over_http: list[float] = []
        remembered: list[float] = []
        calls = 0
        for task in tasks:
            advise(task["name"], db=store)  # warm both sides once
            get(f"/api/tasks/{task['id']}/advice")
            for _ in range(args.repeat):
                calls += 1
                start = time.perf_counter()
                advise(task["name"], db=store).to_dict()
                in_process.append(time.perf_counter() - start)
                # a query the endpoint ignores makes each URL new: the advice is computed
                start = time.perf_counter()
                get(f"/api/tasks/{task['id']}/advice?call={calls}")
                over_http.append(time.perf_counter() - start)
                # the same URL again within the second: answered from the server's memory
                start = time.perf_counter()
                get(f"/api/tasks/{task['id']}/advice?call={calls}")
                remembered.append(time.perf_counter() - start)
        store.dispose()
    finally:
        server.terminate()
        server.wait()

    def ms(values: list[float], fraction: float) -> float:
        return percentile(values, fraction) * 1000

    print(f"store: {args.db} ({args.runs:,} runs), {len(tasks)} tasks x {args.repeat} calls")
    print(f"{'':22}{'median':>10}{'p99':>10}")
    print(f"{'advise() in-process':22}{ms(in_process, 0.5):>8.1f}ms{ms(in_process, 0.99):>8.1f}ms")
    print(f"{'GET .../advice (HTTP)':22}{ms(over_http, 0.5):>8.1f}ms{ms(over_http, 0.99):>8.1f}ms")
    print(f"{'  again within 1 s':22}{ms(remembered, 0.5):>8.1f}ms{ms(remembered, 0.99):>8.1f}ms")
    added = (statistics.median(over_http) - statistics.median(in_process)) * 1000
    print(f"HTTP layer adds {added:.1f} ms at the median "
          f"({statistics.median(over_http) / statistics.median(in_process):.2f}x)")


if __name__ == "__main__":
    main()
