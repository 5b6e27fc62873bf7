"""What recording a run costs, beside what Optuna's own storage costs for one trial.

On one SQLite file (WAL, as tuner sets it up) the rounds interleave:

* ``record_run``: one run with its curve (Core INSERT + one executemany), its own transaction;
* ``orm add``: the same rows written the ORM way (Run + CurveRow objects, flush, commit),
  the baseline a straightforward implementation would use;
* ``optuna trial``: ``study.ask()`` + ``study.tell()`` on Optuna's RDBStorage, same file.

    python bench/store_record_run.py                       # 200 runs x 3 repeats, 50 points
    createdb -h 127.0.0.1 -U postgres tuner_bench   # a scratch database: the bench writes to it
    python bench/store_record_run.py --db postgresql://postgres@127.0.0.1:5432/tuner_bench

Prints the median milliseconds of each and the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def make_result(seed: int, points: int):
    from tuner.training.loop import CurvePoint, RunResult

    return RunResult(
        task="quadratic", optimizer="adamw", params={"lr": 1e-3, "weight_decay": 0.01},
        seed=seed, status="complete", final_metric=0.1, best_metric=0.09,
        curve=[CurvePoint(i * 10, 1 / (i + 1), 0.5, 1e-3, i * 0.01) for i in range(points)],
        steps=points * 10, wall_seconds=1.0, optimizer_state_bytes=800, param_count=100,
        versions={"torch": "2.13.0", "plugin": "0.1.0"},
    )


def orm_add(store, trial_id: int, result) -> None:
    from tuner.store import CurveRow, Run, run_row

    values = run_row(result, trial_id)
    with store.session() as session, session.begin():
        run = Run(**values)
        run.curve = [CurveRow(step=p.step, train_loss=p.train_loss, metric=p.metric, lr=p.lr,
                              seconds=p.seconds) for p in result.curve]
        session.add(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="database URL (default: a new SQLite file in /tmp)")
    parser.add_argument("--runs", type=int, default=200, help="runs per round")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of each")
    parser.add_argument("--points", type=int, default=50, help="curve points per run")
    args = parser.parse_args()

    import optuna

    from tuner.store import TaskRecord, open_store, optuna_storage, record_run
    from tuner.store.claims import insert_claim
    from tuner.store.models import utcnow
    from tuner.store.studies import write_study
    from tuner.study.spec import StudySpec

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = args.db or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    store = open_store(url)
    # a study as `tuner study create` writes it, and a slot claimed as a worker claims it
    spec = write_study(store, StudySpec(name=f"bench-{time.time_ns()}", task="quadratic",
                                        optimizers=["adamw"], trials=1, seeds=1),
                       TaskRecord("quadratic", "analytic", "loss", "minimize", 1e-2))
    now = utcnow()
    trial_id = insert_claim(store, {
        "study_id": spec.id, "optimizer": "adamw", "optuna_study_name": f"tuner/{spec.name}/adamw",
        "optuna_trial_number": 0, "params": {"lr": 1e-3}, "started_at": now, "heartbeat_at": now,
        "slot": 0, "origin": "recommended",
    })
    study = optuna.create_study(storage=optuna_storage(url), study_name=f"bench-{time.time_ns()}")
    results = [make_result(seed, args.points) for seed in range(args.runs)]

    def optuna_trial(_result) -> None:
        trial = study.ask()
        trial.suggest_float("lr", 1e-5, 1.0, log=True)
        study.tell(trial, 0.5)

    contenders = {
        "record_run": lambda result: record_run(store, trial_id, result),
        "orm add": lambda result: orm_add(store, trial_id, result),
        "optuna trial": optuna_trial,
    }
    timings: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.repeats):
        for name, write in contenders.items():
            for result in results:
                start = time.perf_counter()
                write(result)
                timings[name].append((time.perf_counter() - start) * 1000)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    print(f"database {store.display_url}, {args.points} curve points per run, "
          f"{args.runs} x {args.repeats} writes each")
    for name, median in medians.items():
        print(f"  {name:13s} median {median:7.2f} ms")
    print(f"  orm add / record_run      = {medians['orm add'] / medians['record_run']:.2f}x")
    print(f"  optuna trial / record_run = {medians['optuna trial'] / medians['record_run']:.2f}x")
    store.dispose()


if __name__ == "__main__":
    main()
