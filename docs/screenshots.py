"""Make the README's pictures of ``tuner serve``: the task page and a study's page.

    python docs/screenshots.py                  # under a minute on two cores
    python docs/screenshots.py --trials 4       # quicker, for a look

Builds a store in a temporary folder as a user would (``tuner study create`` and ``tuner study
run --workers 2`` of a digits-mlp study: adam, adamw, sgd and lion x 12 trials x 2 seeds, and a
note kept beside it with ``PUT /api/studies/NAME/note``), serves it with ``tuner serve`` on
127.0.0.1 and opens each page in headless Chromium (Debian's chromium and chromium-driver, as
tests/test_server_browser.py does) in a 1280x800 window that shows 1600x1000 page pixels (a
device scale of 0.8: the charts fit). Writes ``docs/images/task-page.png`` and
``docs/images/study-page.png`` and says how large each is (the README wants under 300 KB).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

IMAGES = Path(__file__).resolve().parent / "images"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WIDTH, HEIGHT, SCALE = 1280, 800, 0.8
TOKEN = "screenshots"
STUDY = "digits-four"
NOTE = ("lion's lr searched over 1e-5..1e-3 (--param-range): its authors take an lr 3-10x "
        "below AdamW's.")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def tuner(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "tuner", *args], check=True, env=ENV,
                   stdout=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(url: str) -> tuple[subprocess.Popen, str]:
    """``tuner serve`` (with a token, to keep the note) on a free port, once it answers."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tuner", "serve", "--db", url, "--port", str(port)],
        env={**ENV, "TUNER_TOKEN": TOKEN}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base + "/api/studies", timeout=5).close()
            return server, base
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("tuner serve did not answer")


def keep_note(base: str) -> None:
    request = urllib.request.Request(
        f"{base}/api/studies/{STUDY}/note", method="PUT", data=json.dumps({"note": NOTE}).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    urllib.request.urlopen(request).close()


def browser():  # noqa: ANN201 - selenium is a test dependency, imported here only
    from selenium import webdriver

    os.environ["SE_OFFLINE"] = "true"  # never download a driver
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--hide-scrollbars", f"--window-size={WIDTH},{HEIGHT}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=webdriver.ChromeService(str(CHROMEDRIVER)),
                              options=options)
    # the viewport exactly: 1600x1000 page pixels drawn as 1280x800 image pixels
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": round(WIDTH / SCALE), "height": round(HEIGHT / SCALE),
        "deviceScaleFactor": SCALE, "mobile": False})
    return driver


def shoot(driver, url: str, target: Path) -> None:  # noqa: ANN001
    """The top of the page at ``url``, as the window shows it."""
    driver.get(url)
    time.sleep(1.0)  # the charts draw
    driver.save_screenshot(str(target))
    print(f"{target}: {target.stat().st_size / 1024:.0f} KB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12, help="trials per optimizer")
    args = parser.parse_args()
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        raise SystemExit("needs Debian's chromium and chromium-driver")

    folder = Path(tempfile.mkdtemp(prefix="tuner-screenshots-"))
    url = f"sqlite:///{folder / 'tuner.db'}"
    tuner("study", "create", STUDY, "--task", "digits-mlp", "--optimizers",
          "adam,adamw,sgd,lion", "--trials", str(args.trials), "--seeds", "2",
          "--param-range", "lion.lr=1e-5:1e-3", "--db", url)
    tuner("study", "run", STUDY, "--workers", "2", "--db", url)
    server, base = serve(url)
    driver = browser()
    try:
        keep_note(base)
        task = json.load(urllib.request.urlopen(base + "/api/tasks"))["tasks"][0]["id"]
        IMAGES.mkdir(exist_ok=True)
        shoot(driver, f"{base}/tasks/{task}", IMAGES / "task-page.png")
        shoot(driver, f"{base}/studies/{STUDY}", IMAGES / "study-page.png")
    finally:
        driver.quit()
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
