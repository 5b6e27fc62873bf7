"""Warm-started studies against cold ones: new trials needed to come within 2% of the best known.

On digits-mlp (shortened runs), a *history* study fills a store. Then, for several repetitions
(different sampler seeds), two new studies of the same budget run side by side, each on its own
copy of that store:

* cold: ``tuner study create ...`` (the recommended configuration first, then TPE);
* warm: ``tuner study create ... --warm-start`` (the store's best known configurations first,
  then the recommended one unless it is among them, then TPE in the lr range narrowed to the
  good interval).

For each study we count trials, in the order they ran, until one whose mean over seeds is within
2% of the best result known before the repetition (the history study's best). Only *new* trials
count: a trial whose configuration the history study already trained is a replay (same
configuration, same training seeds, so the same result by construction: the warm study's first
trials) and is skipped. The cold study knows nothing of the history, so all its trials are new
to it and all count, its recommended first trial included. A study that never gets there counts
as its number of new trials + 1.

    python bench/warm_start.py                      # 3 repetitions, about 3-4 minutes
    python bench/warm_start.py --repeats 5 --trials 20
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import create_engine, text

TASK = "digits-mlp"


def invoke(*args: str) -> str:
    from tuner.cli import cli

    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if result.exit_code != 0:
        raise SystemExit(f"tuner {' '.join(args)} failed:\n{result.output}")
    return result.output


def study(url: str, name: str, optimizer: str, trials: int, seeds: int, budget: int,
          seed: int, warm: bool = False) -> None:
    invoke("study", "create", name, "--task", TASK, "--optimizers", optimizer,
           "--trials", str(trials), "--seeds", str(seeds), "--budget", str(budget),
           "--pruner", "none", "--seed", str(seed), "--db", url,
           *(["--warm-start"] if warm else []))
    invoke("study", "run", name, "--db", url)


def trials(url: str, name: str) -> list[tuple[dict, float | None]]:
    """Each trial's parameters and mean final metric over its complete seeds, in the order the
    trials ran (by slot)."""
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT t.params, AVG(CASE WHEN r.status = 'complete' THEN r.final_metric END) "
            "FROM tuner_trials t JOIN tuner_studies s ON s.id = t.study_id "
            "LEFT JOIN tuner_runs r ON r.trial_id = t.id "
            "WHERE s.name = :name AND t.status != 'failed' "
            "GROUP BY t.id, t.params, t.slot, t.optuna_trial_number "
            "ORDER BY t.slot, t.optuna_trial_number"
        ), {"name": name}).all()
    engine.dispose()
    return [(json.loads(params) if isinstance(params, str) else params, mean)
            for params, mean in rows]


def trials_to_within(means: list[float | None], best: float, tolerance: float) -> int:
    for index, mean in enumerate(means, start=1):
        if mean is not None and mean >= best * (1 - tolerance):
            return index
    return len(means) + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizer", default="sgd")
    parser.add_argument("--history-trials", type=int, default=20)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--budget", type=int, default=150, help="steps per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tolerance", type=float, default=0.02)
    arguments = parser.parse_args()

    from tuner.advice import best as best_ranking

    folder = Path(tempfile.mkdtemp(prefix="tuner-warm-"))
    history = folder / "history.db"
    started = time.perf_counter()
    study(f"sqlite:///{history}", "history", arguments.optimizer, arguments.history_trials,
          arguments.seeds, arguments.budget, seed=1000)
    known = best_ranking(TASK, db=f"sqlite:///{history}").standing(arguments.optimizer)
    print(f"history: {arguments.history_trials} trials of {arguments.optimizer} on {TASK} "
          f"({arguments.budget} steps, {arguments.seeds} seed(s)) in "
          f"{time.perf_counter() - started:.0f} s; best known {known.mean:.4f} at lr "
          f"{known.lr:.3g}, good lr {known.good_lr[0]:.3g}..{known.good_lr[1]:.3g}")

    known_configs = [params for params, _ in trials(f"sqlite:///{history}", "history")]
    cold_counts, warm_counts, replays, close = [], [], [], {"cold": [], "warm": []}
    for repeat in range(arguments.repeats):
        counts = {}
        for kind in ("cold", "warm"):  # side by side, each on its own copy of the history
            url = f"sqlite:///{folder / f'{kind}-{repeat}.db'}"
            for suffix in ("", "-wal", "-shm"):
                source = Path(f"{history}{suffix}")
                if source.exists():
                    shutil.copy(source, folder / f"{kind}-{repeat}.db{suffix}")
            name = f"{kind}-{repeat}"
            study(url, name, arguments.optimizer, arguments.trials, arguments.seeds,
                  arguments.budget, seed=repeat, warm=kind == "warm")
            ran = trials(url, name)
            if kind == "warm":  # the replays of configurations the history trained: not new
                new = [(p, m) for p, m in ran if p not in known_configs]
                replays.append(len(ran) - len(new))
            else:
                new = ran
            means = [mean for _, mean in new]
            counts[kind] = trials_to_within(means, known.mean, arguments.tolerance)
            close[kind].append(sum(m is not None and m >= known.mean * (1 - arguments.tolerance)
                                   for m in means))
            shown = " ".join(("r" if p in known_configs and kind == "warm" else "")
                             + ("-" if m is None else f"{m:.3f}") for p, m in ran)
            print(f"  {name}: new trials to within {arguments.tolerance:.0%}: "
                  f"{counts[kind]:>3} of {len(new)} new   [{shown}]  (r = replay)")
        cold_counts.append(counts["cold"])
        warm_counts.append(counts["warm"])

    cold, warm = statistics.median(cold_counts), statistics.median(warm_counts)
    print(f"cold: median {cold} trials {cold_counts} (budget {arguments.trials}; "
          f"{arguments.trials + 1} = never); within {arguments.tolerance:.0%}: {close['cold']}")
    print(f"warm: median {warm} new trials {warm_counts} after {replays} replayed; "
          f"new trials within {arguments.tolerance:.0%}: {close['warm']}")
    print(f"warm start needs {cold / warm:.1f}x fewer new trials (target: 3x); "
          f"total {time.perf_counter() - started:.0f} s")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
