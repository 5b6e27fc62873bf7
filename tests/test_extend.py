"""``tuner study extend``: trials per optimizer, seeds chosen by the study, seed slots, rounds
until the ranking is settled or the cap, and a killed extend resumed. Real studies on real
SQLite files, the commands run as a user runs them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from test_workers import check_consistent, tuner_command

from tuner.cli import cli
from tuner.driver import GRACE_ENV, HEARTBEAT_ENV, run_study
from tuner.driver.create import CRASH_ENV
from tuner.store import ConfigStats, Run, Study, Trial, open_store
from tuner.store.studies import get_study

TIED = f"{Path(__file__).with_name('tied_tasks.py')}:SeedOnly"
"""A task whose metric is a function of the seed alone: every optimizer is tied."""

# adam's lr range is one where 30 steps bring the bowl near its bottom, sgd's one where they
# barely leave the rim: every adam configuration beats every sgd one, so once the noise is
# known (two seeds of the best configurations) the ranking is settled.
FAR_APART = ["--task", "quadratic", "--optimizers", "adam,sgd", "--trials", "3", "--seeds", "1",
             "--budget", "30", "--pruner", "none", "--param-range", "adam.lr=0.05:0.5",
             "--param-range", "sgd.lr=1e-4:1e-3", "--train", "warmup=0:10"]


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def create_and_run(url: str, name: str, *args: str) -> None:
    created = invoke("study", "create", name, *args, "--db", url)
    assert created.exit_code == 0, created.output
    assert run_study(name, url).stopped == "finished"


def show(url: str, name: str) -> dict:
    shown = invoke("study", "show", name, "--db", url, "--json")
    assert shown.exit_code == 0, shown.output
    return json.loads(shown.output)


def rows(url: str, table, name: str) -> list:
    with open_store(url, create=False) as store:
        spec = get_study(store, name)
        with store.session() as session:
            return session.scalars(select(table).where(table.study_id == spec.id)).all()


def lines_of(output: str) -> list[str]:
    """The output's lines without the progress display's."""
    return [line for line in output.splitlines() if line.strip() and "━" not in line]


# -- trials per optimizer ------------------------------------------------------------------------


def test_extend_trials_adds_to_the_optimizers_named_and_keeps_the_start_up_settings(
    sqlite_url: str,
):
    from tuner.driver.context import open_context

    create_and_run(sqlite_url, "more", "--task", "quadratic", "--optimizers", "adam,sgd",
                   "--trials", "3", "--seeds", "1", "--budget", "20", "--pruner", "median")

    def start_up() -> tuple[int, int]:
        with open_store(sqlite_url, create=False) as store:
            context = open_context(store, "more")
            return context.spec.trials, context.studies["adam"].pruner._n_startup_trials

    before = start_up()
    extended = invoke("study", "extend", "more", "--trials", "2", "--optimizers", "adam",
                      "--db", sqlite_url)
    assert extended.exit_code == 0, extended.output
    assert "Added 2 trials to adam (now 5)." in extended.output
    assert "finished: 8/8 trials" in extended.output
    assert start_up() == before  # the sampler's and pruner's start-up derive from 3 trials

    study = show(sqlite_url, "more")
    per = {o["optimizer"]: (o["done"], o["total"]) for o in study["per_optimizer"]}
    assert per == {"adam": (5, 5), "sgd": (3, 3)}
    assert study["trials"] == {"adam": 5, "sgd": 3} and study["trials_per_optimizer"] == 3
    table = invoke("study", "show", "more", "--db", sqlite_url).output
    assert re.search(r"^adam\s+5/5\s", table, re.M) and re.search(r"^sgd\s+3/3\s", table, re.M)
    trials = check_consistent(sqlite_url, "more")
    assert sorted(t.slot for t in trials["adam"]) == [0, 1, 2, 3, 4]
    assert sorted(t.slot for t in trials["sgd"]) == [0, 1, 2]
    # run again: nothing left to do
    again = invoke("study", "run", "more", "--db", sqlite_url)
    assert "already finished (8/8 trials)" in again.output


def test_training_seeds_are_the_study_s_choice(sqlite_url: str, tmp_path: Path):
    """--first-seed 10 --seeds 2 trains on seeds 10 and 11, in every trial, also in trials
    added later; the study file and the Python API take it too."""
    import tuner

    created = invoke("study", "create", "tens", "--task", "quadratic", "--optimizers", "sgd",
                     "--trials", "1", "--seeds", "2", "--first-seed", "10", "--budget", "20",
                     "--pruner", "none", "--db", sqlite_url)
    assert created.exit_code == 0 and "2 seeds (10..11)" in created.output, created.output
    study = tuner.Study("tens", sqlite_url)
    study.run()
    report = study.extend(trials=1)
    assert report.stopped == "finished" and report.rounds[0].trials == {"sgd": 1}
    assert {r.seed for r in rows(sqlite_url, Run, "tens")} == {10, 11}
    assert len(rows(sqlite_url, Run, "tens")) == 4  # two trials x two seeds
    assert show(sqlite_url, "tens")["seed_list"] == [10, 11]

    path = tmp_path / "five.toml"
    path.write_text('task = "quadratic"\noptimizers = ["sgd"]\ntrials = 1\nseeds = 3\n'
                    'first_seed = 5\n')
    assert invoke("study", "create", "five", "--from", str(path), "--db",
                  sqlite_url).exit_code == 0
    tuner.Study.create("seven", task="quadratic", optimizers=["sgd"], trials=1, seeds=1,
                       first_seed=7, db=sqlite_url)
    with open_store(sqlite_url, create=False) as store:
        assert get_study(store, "five").seed_list == [5, 6, 7]
        assert get_study(store, "seven").seed_list == [7]


@pytest.mark.parametrize(("args", "message"), [
    (["--first-seed", "-1"], "first_seed must be a zero or more whole number, got -1"),
    (["--first-seed", str(2**31 - 1)], "first_seed + seeds - 1 must be at most"),
])
def test_a_bad_first_seed_is_one_line_and_writes_nothing(sqlite_url: str, args, message):
    result = CliRunner().invoke(cli, ["study", "create", "bad", "--task", "quadratic",
                                      "--optimizers", "sgd", "--trials", "1", "--seeds", "2",
                                      *args, "--db", sqlite_url])
    assert result.exit_code == 1 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()  # not even a store


def test_extensions_in_a_race_all_land(database_url: str):
    """Eight extensions of one study at once, each its own transaction: none is lost."""
    from concurrent.futures import ThreadPoolExecutor

    from tuner.store.studies import extend_study

    created = invoke("study", "create", "race", "--task", "quadratic", "--optimizers",
                     "sgd,adam", "--trials", "1", "--seeds", "1", "--db", database_url)
    assert created.exit_code == 0, created.output
    with open_store(database_url, create=False) as store:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: extend_study(store, "race", {"sgd": 1}, {}), range(8)))
        spec = get_study(store, "race")
    assert (spec.trials_for("sgd"), spec.trials_for("adam")) == (9, 1)


# -- until settled -------------------------------------------------------------------------------


def test_until_settled_gives_the_best_configurations_new_seeds_and_settles(sqlite_url: str):
    """One seed per configuration: the noise is unknown, so the first round adds trials and a
    seed slot per optimizer (its best configuration, tuned warmup included, on seed 1); then
    adam's lead is certain. The new seeds are new observations of the same configurations."""
    from tuner.advice import rank_task

    create_and_run(sqlite_url, "far", *FAR_APART)
    extended = invoke("study", "extend", "far", "--until-settled", "--max-trials", "8",
                      "--db", sqlite_url)
    assert extended.exit_code == 0, extended.output
    said = lines_of(extended.output)
    assert said[0].startswith("Round 1: ") and (
        "1 more seed of the best configurations of adam and sgd" in said[0]), said
    ending = re.fullmatch(r"Study 'far' settled: adam, P\(best\) ([0-9.]+) after (\d+) trials "
                          r"each\.", said[-1])
    assert ending and float(ending.group(1)) >= 0.9, said

    with open_store(sqlite_url, create=False) as store:
        spec = get_study(store, "far")
    assert all(3 < spec.trials_for(o) <= 8 for o in ("adam", "sgd"))
    assert int(ending.group(2)) == min(spec.trials_for(o) for o in ("adam", "sgd"))
    ranking = rank_task("quadratic", db=sqlite_url, study="far")
    assert ranking.certainty.settled and ranking.winner.optimizer == "adam"

    check_consistent(sqlite_url, "far")
    slots = [t for t in rows(sqlite_url, Trial, "far") if t.slot < 0]
    assert sorted((t.optimizer, t.slot, t.origin) for t in slots) == [
        ("adam", -1, "more_seeds"), ("sgd", -1, "more_seeds")]
    with open_store(sqlite_url, create=False) as store, store.session() as session:
        for optimizer in ("adam", "sgd"):
            slot = spec.seed_slots[optimizer][0]
            assert slot["seeds"] == [1]  # after the study's seed 0
            assert "warmup" in slot["params"]
            stats = session.scalars(select(ConfigStats).where(
                ConfigStats.optimizer == optimizer,
                ConfigStats.config_hash == slot["config_hash"])).one()
            assert (stats.metric_count, stats.replays) == (2, 0)
            seeds = session.scalars(select(Run.seed).where(
                Run.optimizer == optimizer, Run.config_hash == slot["config_hash"])).all()
            assert sorted(seeds) == [0, 1]


def test_until_settled_stops_at_the_cap_when_the_optimizers_are_tied(sqlite_url: str):
    """Every configuration scores the same on a seed: nothing can separate adam from sgd, so
    the rounds go on to the cap, one trial each per round, and say so."""
    create_and_run(sqlite_url, "tie", "--task", TIED, "--optimizers", "adam,sgd", "--trials",
                   "2", "--seeds", "2", "--pruner", "none")
    extended = invoke("study", "extend", "tie", "--until-settled", "--max-trials", "4",
                      "--round", "1", "--db", sqlite_url)
    assert extended.exit_code == 0, extended.output
    said = lines_of(extended.output)
    assert [line.split(";")[0] for line in said[:2]] == [
        "Round 1: 1 more trial of adam and sgd", "Round 2: 1 more trial of adam and sgd"]
    assert said[2].startswith("Study 'tie' not settled at the cap of 4 trials: ")
    assert len(said) == 3
    study = show(sqlite_url, "tie")
    assert study["trials"] == {"adam": 4, "sgd": 4} and study["seed_slots_total"] == 0
    check_consistent(sqlite_url, "tie")
    # at the cap already: nothing is added, it says how it stands
    again = invoke("study", "extend", "tie", "--until-settled", "--max-trials", "4",
                   "--db", sqlite_url)
    assert lines_of(again.output) == [said[2]]


def _snapshot(url: str) -> list:
    with open_store(url, create=False) as store, store.session() as session:
        studies = [(s.name, s.trials_per_optimizer, json.dumps(s.options, sort_keys=True))
                   for s in session.scalars(select(Study))]
        return [studies, session.query(Trial).count(), session.query(Run).count()]


@pytest.mark.parametrize(("args", "message"), [
    (["nosuch", "--trials", "1"], "no study named 'nosuch'"),
    (["ext", "--trials", "0"], "trials must be a positive whole number, got 0"),
    (["ext", "--trials", "1", "--optimizers", "lion"], "study 'ext' has no optimizer 'lion'"),
    (["ext", "--trials", "1", "--optimizers", "momentum"], "optimizer 'momentum' has every "
     "setting fixed"),
    (["ext"], "give --trials N (more trials) or --until-settled"),
    (["ext", "--trials", "1", "--until-settled"], "give --trials N or --until-settled, not both"),
    (["ext", "--until-settled", "--optimizers", "sgd"], "--optimizers goes with --trials"),
    (["ext", "--trials", "1", "--max-trials", "9"], "--max-trials and --round go with "
     "--until-settled"),
    (["ext", "--until-settled", "--max-trials", "2"], "--max-trials 2 is below the 3 trials "
     "sgd already has"),
    (["ext", "--until-settled", "--round", "0"], "--round must be a whole number from 1"),
    (["ext", "--trials", "100000"], "sgd would have 100,003 trials"),
])
def test_bad_extend_input_is_one_line_and_leaves_the_store_as_it_was(sqlite_url, args,
                                                                     message):
    created = invoke("study", "create", "ext", "--task", "quadratic", "--optimizers",
                     "sgd,momentum", "--trials", "3", "--seeds", "1",
                     "--param-range", "momentum.lr=0.01:0.01",
                     "--param-range", "momentum.momentum=0.9:0.9",
                     "--param-range", "momentum.dampening=0:0",
                     "--param-range", "momentum.weight_decay=0:0", "--db", sqlite_url)
    assert created.exit_code == 0 and "one trial each: momentum" in created.output
    before = _snapshot(sqlite_url)
    result = CliRunner().invoke(cli, ["study", "extend", *args, "--db", sqlite_url])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert _snapshot(sqlite_url) == before


# -- a killed extend resumes ---------------------------------------------------------------------


def _totals(url: str, name: str) -> dict:
    """What an extend added, and how many runs there are: the same however often it was
    killed and resumed."""
    with open_store(url, create=False) as store:
        spec = get_study(store, name)
    return {"trials": {o: spec.trials_for(o) for o in spec.optimizers},
            "seed slots": {o: [s["seeds"] for s in slots] for o, slots in
                           spec.seed_slots.items()},
            "runs": len(rows(url, Run, name))}


def test_an_extend_killed_once_its_round_is_written_resumes_to_the_same_totals(
    sqlite_url: str, tmp_path: Path
):
    """Killed right after a round is written, before any of it ran: the same command again
    runs that round first, then goes on; it ends where an uninterrupted extend ends."""
    twin = f"sqlite:///{tmp_path / 'twin.db'}"
    for url in (sqlite_url, twin):
        create_and_run(url, "far", *FAR_APART)
    assert invoke("study", "extend", "far", "--until-settled", "--db", twin).exit_code == 0

    killed = subprocess.run(
        [*tuner_command(), "study", "extend", "far", "--until-settled", "--db", sqlite_url],
        env={**os.environ, CRASH_ENV: "extend-round"}, capture_output=True, text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert show(sqlite_url, "far")["status"] == "idle"  # a round written, nothing run
    resumed = invoke("study", "extend", "far", "--until-settled", "--db", sqlite_url)
    assert resumed.exit_code == 0, resumed.output
    assert "slots of study 'far' still to run first" in resumed.output
    assert _totals(sqlite_url, "far") == _totals(twin, "far")
    check_consistent(sqlite_url, "far")


def test_an_extend_killed_mid_round_with_its_workers_resumes_with_nothing_counted_twice(
    sqlite_url: str, monkeypatch
):
    """SIGKILL of ``tuner study extend`` and its two workers while the round's trials run,
    a seed of them recorded: running the same command again reaps and retries them, keeps the
    recorded seeds, and ends at the cap; every slot once, no seed replayed."""
    create_and_run(sqlite_url, "halted", "--task", TIED, "--optimizers", "adam,sgd",
                   "--trials", "2", "--seeds", "2", "--budget", "1000", "--pruner", "none")
    command = [*tuner_command(), "study", "extend", "halted", "--until-settled",
               "--max-trials", "3", "--round", "1", "--workers", "2", "--db", sqlite_url]
    env = {**os.environ, HEARTBEAT_ENV: "0.2", GRACE_ENV: "1.5"}
    extend = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not _round_half_done(sqlite_url, "halted"):
            time.sleep(0.05)
        os.killpg(extend.pid, signal.SIGKILL)
    finally:
        extend.wait(timeout=30)
    recorded = _round_half_done(sqlite_url, "halted")
    assert recorded, "the round never got under way"

    monkeypatch.setenv(HEARTBEAT_ENV, "0.2")
    monkeypatch.setenv(GRACE_ENV, "1.5")
    resumed = invoke(*command[len(tuner_command()):])
    assert resumed.exit_code == 0, resumed.output
    assert "not settled at the cap of 3 trials" in resumed.output
    assert _totals(sqlite_url, "halted")["trials"] == {"adam": 3, "sgd": 3}
    trials = check_consistent(sqlite_url, "halted")
    assert any(t.status == "failed" for rows_ in trials.values() for t in rows_)  # the killed
    with open_store(sqlite_url, create=False) as store, store.session() as session:
        assert sum(s.replays for s in session.scalars(select(ConfigStats))) == 0
        for run_id in recorded:  # kept, and counted in the retry of its slot
            owner = session.get(Trial, session.get(Run, run_id).trial_id)
            assert (owner.slot, owner.status) == (2, "complete")


def _round_half_done(url: str, name: str) -> list[int]:
    """The runs recorded so far by the running trials of the added round (slot 2)."""
    running = {t.id for t in rows(url, Trial, name) if t.slot == 2 and t.status == "running"}
    return [r.id for r in rows(url, Run, name) if r.trial_id in running]


# -- a round, as a rule --------------------------------------------------------------------------


def _ranking(certainty, trials: int = 4):
    from types import SimpleNamespace

    best = [SimpleNamespace(optimizer=o, mean=1.0, config_hash=f"hash-{o}") for o in "abc"]
    return SimpleNamespace(certainty=certainty, optimizers=best, trials_compared=trials)


def test_a_round_gives_the_optimizers_in_contention_what_would_settle_it_within_the_cap():
    from dataclasses import replace

    from tuner.advice import Certainty
    from tuner.driver.extend import new_seeds, plan_round
    from tuner.study.spec import StudySpec

    spec = StudySpec(name="s", task="t", optimizers=["a", "b", "c"], trials=4, seeds=2,
                     extra_trials={"a": 2})
    unsure = Certainty(False, 0.7, "b", 2, "P(best) 0.70 < 0.9", 1000, more_trials=5,
                       contention=["a", "b"], missing=["trials", "seeds"])
    plan = plan_round(spec, _ranking(unsure), cap=8)
    assert plan.trials == {"a": 2, "b": 4}  # 5 more each, but a has 6 of the 8 already
    assert (plan.configs, plan.seeds) == ({"a": "hash-a", "b": "hash-b"}, 2)
    assert plan_round(spec, _ranking(unsure), cap=8, round_size=1).trials == {"a": 1, "b": 1}
    trials_only = replace(unsure, more_trials=None, more_seeds=None, missing=["trials"])
    plan = plan_round(spec, _ranking(trials_only), cap=8)
    assert plan.trials == {"a": 2, "b": 2} and plan.configs == {}  # half the 4 compared
    assert plan_round(spec, _ranking(unsure), cap=6).trials == {"b": 2}
    assert plan_round(replace(spec, extra_trials={"a": 2, "b": 2}), _ranking(unsure),
                      cap=6) is None  # every optimizer in contention at the cap
    assert plan_round(spec, _ranking(replace(unsure, settled=True)), cap=8) is None
    many = replace(unsure, more_seeds=50)
    assert plan_round(spec, _ranking(many), cap=8).seeds == 8  # at most 8 new seeds a round

    seeded = replace(spec, first_seed=3, seed_slots={"a": [
        {"params": {}, "seeds": [6], "config_hash": "hash-a"}]})
    assert new_seeds(seeded, "hash-a", taken={3, 4, 5, 7}, count=2) == [8, 9]
    assert new_seeds(seeded, "hash-b", taken={3, 4}, count=2) == [5, 6]
