"""Advice on real, small studies: a width sweep of digits-mlp (three equal-budget studies made
from one study file) with AdamW and Lion, run by workers, then the lr ratio with its interval
and the lr-against-width fit, through the commands a user types."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

WIDTHS = (16, 32, 64)

SWEEP = """
name = "sweep"
task = "digits-mlp"
optimizers = ["adamw", "lion"]
trials = 4
seeds = 2
sampler = "random"
pruner = "none"
budget = 44

[ranges]
lr = [1e-4, 3e-2]

[sweep]
width = [16, 32, 64]
"""


def _tuner(*args: str, db: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tuner", *args, "--db", db],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def sweep_store(tmp_path_factory) -> str:
    folder: Path = tmp_path_factory.mktemp("sweep")
    (folder / "sweep.toml").write_text(SWEEP)
    db = f"sqlite:///{folder / 'tuner.db'}"
    created = _tuner("study", "create", "--from", str(folder / "sweep.toml"), db=db)
    assert created.returncode == 0, created.stderr
    assert "Run the sweep with: tuner study run sweep-width16 && " in created.stdout
    for width in WIDTHS:
        ran = _tuner("study", "run", f"sweep-width{width}", "--workers", "2", db=db)
        assert ran.returncode == 0, ran.stderr
        assert "finished: 8/8 trials" in ran.stdout
    return db


def test_a_sweep_is_one_study_per_width_and_is_created_whole(sweep_store):
    listed = json.loads(_tuner("study", "list", "--json", db=sweep_store).stdout)
    assert sorted(s["task"] for s in listed) == sorted(
        f"digits-mlp[width={w}]" for w in WIDTHS)
    again = _tuner("study", "create", "--from", str(Path(sweep_store[10:]).parent / "sweep.toml"),
                   db=sweep_store)
    assert again.returncode != 0
    assert again.stderr.strip().splitlines() == [
        "Error: study 'sweep-width16' already exists; delete it or rename the sweep"]
    assert len(json.loads(_tuner("study", "list", "--json", db=sweep_store).stdout)) == 3


def test_the_lr_ratio_of_lion_and_adamw_is_reported_with_its_interval(sweep_store):
    best = _tuner("best", "--task", "digits-mlp[width=64]", "--json", db=sweep_store)
    assert best.returncode == 0, best.stderr
    ranking = json.loads(best.stdout)
    ratios = ranking["lr_ratios"]
    assert len(ratios) == 1
    (ratio,) = ratios
    assert {ratio["optimizer"], ratio["reference"]} == {"adamw", "lion"}
    assert ratio["low"] <= ratio["ratio"] <= ratio["high"]
    lrs = {o["optimizer"]: o["lr"] for o in ranking["optimizers"]}
    assert ratio["ratio"] == pytest.approx(lrs[ratio["optimizer"]] / lrs[ratio["reference"]])
    advised = _tuner("advise", "--task", "digits-mlp[width=64]", db=sweep_store)
    assert advised.returncode == 0, advised.stderr
    assert "best lr is" in advised.stdout


def test_the_fit_across_widths_is_printed(sweep_store):
    advised = _tuner("advise", "--task", "digits-mlp", "--width", "256", "--json",
                     db=sweep_store)
    assert advised.returncode == 0, advised.stderr
    fits = {fit["optimizer"]: fit for fit in json.loads(advised.stdout)["optimizers"]}
    assert set(fits) == {"adamw", "lion"}
    for fit in fits.values():
        assert sorted(fit["widths"]) == list(WIDTHS)
        assert math.isfinite(fit["exponent"]) and fit["predicted_lr"] > 0
        low, high = fit["interval"]
        assert low <= fit["predicted_lr"] <= high
        assert fit["extrapolated"] == "beyond" and fit["factor"] == pytest.approx(4.0)
    printed = _tuner("advise", "--task", "digits-mlp", "--width", "256", db=sweep_store)
    assert printed.returncode == 0, printed.stderr
    assert "at width 256, adamw's best lr is about" in printed.stdout
    assert "extrapolated 4x beyond the widest measured model (64)" in printed.stdout
