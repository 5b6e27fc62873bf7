"""Does watching slow the work? A worker's trials per minute with 50 pollers against none.

Three identical studies (quadratic, one torch thread) in one SQLite store. One worker runs the
first alone for ``--seconds``; then a `tuner serve` process serves the store while 50 clients
on 127.0.0.1 each fetch a page once a second, and one worker runs the second study for as
long; then a worker runs the third alone again. Prints the rates, the watched one against the
mean of the two alone, and the clients' request count, errors and latency (in all and per page).
Bounded in time; loopback only.

What the clients read (``--mix``): ``study``, each the second study's live data (what its page
polls); ``pages`` (the default), the readers of a team's dashboard: of every ten clients, six
poll the study's live data, one the study's page, one its trials filtered and sorted by value
(the trials table), one adam's page on the task (importance, slices, parallel coordinates)
and one sgd's as JSON.

    python bench/serve_readers.py                    # 60 s per side, the pages mix
    python bench/serve_readers.py --seconds 45 --mix study
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TUNER_TOKEN": ""}


def tuner(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "tuner", *args], check=True, env=ENV,
                   stdout=subprocess.DEVNULL)


def trials_per_minute(url: str, study: str, seconds: float) -> float:
    """Run one worker on ``study`` for ``seconds`` (no new trial after that); trials/minute."""
    from tuner.store import open_store
    from tuner.store.studies import study_status

    start = time.monotonic()
    tuner("worker", study, "--db", url, "--threads", "1", "--timeout", str(seconds))
    elapsed = time.monotonic() - start
    store = open_store(url, create=False)
    try:
        done = study_status(store, study).done
    finally:
        store.dispose()
    return done / elapsed * 60


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def mix(kind: str, study: str, task_id: int) -> list[str]:
    """The page each of ten clients fetches, in turn (``--mix``)."""
    live = f"/api/studies/{study}"
    if kind == "study":
        return [live] * 10
    return [live] * 6 + [
        f"/studies/{study}",
        f"/api/studies/{study}/trials?status=complete&sort=value&limit=500",
        f"/tasks/{task_id}/optimizers/adam",
        f"/api/tasks/{task_id}/optimizers/sgd",
    ]


class Pollers:
    """``count`` threads, each fetching one of ``paths`` (in turn) once a second until
    stopped."""

    def __init__(self, port: int, paths: list[str], count: int) -> None:
        self.port, self.paths, self.count = port, paths, count
        self.stop = threading.Event()
        self.latencies: dict[str, list[float]] = {path: [] for path in paths}
        self.errors = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.poll, args=(paths[i % len(paths)],),
                                         daemon=True) for i in range(count)]

    def poll(self, path: str) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            took = time.monotonic() - started
            with self.lock:
                self.latencies[path].append(took)
                self.errors += not ok
            self.stop.wait(max(0.0, 1.0 - took))

    def __enter__(self) -> Pollers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=35)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--mix", choices=("pages", "study"), default="pages",
                        help="what the clients read (see above)")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="tuner-bench-readers-"))
    url = f"sqlite:///{folder / 'tuner.db'}"
    for name in ("alone", "watched", "alone-again"):
        tuner("study", "create", name, "--task", "quadratic", "--optimizers", "adam,sgd",
              "--trials", "500", "--seeds", "2", "--budget", "100", "--pruner", "none",
              "--db", url)
    alone = trials_per_minute(url, "alone", args.seconds)

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tuner", "serve", "--db", url, "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("tuner serve did not start") from None
                time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/tasks") as answer:
            task_id = json.load(answer)["tasks"][0]["id"]
        cpu_before = cpu_seconds(server.pid)
        with Pollers(port, mix(args.mix, "watched", task_id), args.clients) as pollers:
            started = time.monotonic()
            watched = trials_per_minute(url, "watched", args.seconds)
            wall = time.monotonic() - started
        server_cpu = cpu_seconds(server.pid) - cpu_before
    finally:
        server.terminate()
        server.wait()
    again = trials_per_minute(url, "alone-again", args.seconds)
    baseline = (alone + again) / 2

    latencies = sorted(t for found in pollers.latencies.values() for t in found)
    print(f"one single-thread worker, {args.seconds:g} s per side, SQLite (WAL), "
          f"the {args.mix} mix")
    print(f"alone:   {alone:6.1f} trials/min before, {again:6.1f} after")
    print(f"watched: {watched:6.1f} trials/min by {args.clients} clients polling once a second "
          f"({watched / baseline:.2f}x the mean of the two)")
    print(f"the server used {server_cpu:.1f} s of CPU in {wall:.0f} s "
          f"({server_cpu / wall * 100:.0f}% of one core)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(f"requests {len(latencies)}, errors {pollers.errors}, latency {spread(latencies)}")
    for path, found in pollers.latencies.items():
        print(f"  {path}: {len(found)} requests, latency {spread(sorted(found))}")


def spread(latencies: list[float]) -> str:
    """``median 12 ms, p99 381 ms`` of sorted latencies in seconds."""
    if not latencies:
        return "-"
    return (f"median {statistics.median(latencies) * 1000:.0f} ms, p99 "
            f"{latencies[int(0.99 * (len(latencies) - 1))] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
