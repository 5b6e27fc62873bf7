"""Does watching slow the work? A worker's trials per minute with 50 pollers against none.

Three identical studies (quadratic, one torch thread) in one SQLite store. One worker runs the
first alone for ``--seconds``; then a `tuner serve` process serves the store while 50 clients
on 127.0.0.1 each fetch the second study's live data (what its page polls) once a second, and
one worker runs the second for as long; then a worker runs the third alone again. Prints the
rates, the watched one against the mean of the two alone, and the clients' request count,
errors and latency. Bounded in time; loopback only.

    python bench/serve_readers.py                    # 60 s per side
    python bench/serve_readers.py --seconds 30 --clients 50
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
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


class Pollers:
    """``count`` threads, each fetching ``path`` once a second until stopped."""

    def __init__(self, port: int, path: str, count: int) -> None:
        self.port, self.path, self.count = port, path, count
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.errors = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.poll, daemon=True) for _ in range(count)]

    def poll(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                connection.request("GET", self.path)
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            took = time.monotonic() - started
            with self.lock:
                self.latencies.append(took)
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
        cpu_before = cpu_seconds(server.pid)
        with Pollers(port, "/api/studies/watched", args.clients) as pollers:
            started = time.monotonic()
            watched = trials_per_minute(url, "watched", args.seconds)
            wall = time.monotonic() - started
        server_cpu = cpu_seconds(server.pid) - cpu_before
    finally:
        server.terminate()
        server.wait()
    again = trials_per_minute(url, "alone-again", args.seconds)
    baseline = (alone + again) / 2

    latencies = sorted(pollers.latencies)
    print(f"one single-thread worker, {args.seconds:g} s per side, SQLite (WAL)")
    print(f"alone:   {alone:6.1f} trials/min before, {again:6.1f} after")
    print(f"watched: {watched:6.1f} trials/min by {args.clients} clients polling once a second "
          f"({watched / baseline:.2f}x the mean of the two)")
    print(f"the server used {server_cpu:.1f} s of CPU in {wall:.0f} s "
          f"({server_cpu / wall * 100:.0f}% of one core)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(f"requests {len(latencies)}, errors {pollers.errors}, latency median "
          f"{statistics.median(latencies) * 1000:.0f} ms, p99 "
          f"{latencies[int(0.99 * (len(latencies) - 1))] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
