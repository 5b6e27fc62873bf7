"""Warm-started studies against cold ones: trials needed to come within 2% of the best known.

On digits-mlp (shortened runs), a *history* study fills a store. Then, for several repetitions
(different sampler seeds), two new studies of the same budget run side by side, each on its own
copy of that store:

* cold: ``tuner study create ...`` (the recommended configuration first, then TPE);
* warm: ``tuner study create ... --warm-start`` (the recommended configuration first, then the
  store's best known configurations, then TPE in the lr range narrowed to the good interval).

For each study we count the trials (in the order they ran, the recommended one included) until
one whose mean over seeds is within 2% of the best result known before the repetition
(the history study's best). A study that never gets there counts as budget + 1.

    python bench/warm_start.py                      # 3 repetitions, about 3-4 minutes
    python bench/warm_start.py --repeats 5 --trials 20
"""

from __future__ import annotations

import argparse
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


def trial_means(url: str, name: str) -> list[float | None]:
    """Each trial's mean final metric over its complete seeds, in the order the trials ran."""
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT t.optuna_trial_number, AVG(CASE WHEN r.status = 'complete' "
            "THEN r.final_metric END) FROM tuner_trials t JOIN tuner_studies s "
            "ON s.id = t.study_id LEFT JOIN tuner_runs r ON r.trial_id = t.id "
            "WHERE s.name = :name AND t.status != 'failed' "
            "GROUP BY t.id, t.optuna_trial_number ORDER BY t.optuna_trial_number"
        ), {"name": name}).all()
    engine.dispose()
    return [mean for _, mean in rows]


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

    cold_counts, warm_counts = [], []
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
            means = trial_means(url, name)
            counts[kind] = trials_to_within(means, known.mean, arguments.tolerance)
            shown = " ".join("-" if m is None else f"{m:.3f}" for m in means)
            print(f"  {name}: trials to within {arguments.tolerance:.0%}: {counts[kind]:>3}   "
                  f"[{shown}]")
        cold_counts.append(counts["cold"])
        warm_counts.append(counts["warm"])

    cold, warm = statistics.median(cold_counts), statistics.median(warm_counts)
    print(f"cold: median {cold} trials {cold_counts} (budget {arguments.trials}; "
          f"{arguments.trials + 1} = never)")
    print(f"warm: median {warm} trials {warm_counts}")
    print(f"warm start needs {cold / warm:.1f}x fewer trials (target: 3x); "
          f"total {time.perf_counter() - started:.0f} s")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
