"""Study-level training options (fixed or tuned) and task parameters.

Each option is checked where it acts: the run records the value it used, and something the loop
does differs when it is set. Then one small study with tuned options checks the sampling (inside
the ranges), the equal budget in examples, the records of the model's facts, and a ranking
filtered by batch size; task parameters change the model and the task's identity.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from tuner.errors import TunerError
from tuner.plugin.registry import get_registry
from tuner.study.training import check_training, parse_flag, run_plan
from tuner.training.loop import train

FAST = {"budget": 22, "eval_every": 11}


def _lrs(result):
    return [point.lr for point in result.curve]


def _run(optimizer="sgd", params=None, **options):
    return train("digits-mlp", optimizer, params or {"lr": 0.05}, 0, **{**FAST, **options})


# -- each option reaches the loop ---------------------------------------------------------


def test_batch_size_and_accumulation_set_the_examples_each_step_sees():
    base = _run()
    smaller = _run(batch_size=32)
    assert base.examples_seen == 22 * 64 and smaller.examples_seen == 22 * 32
    assert smaller.options["batch_size"] == 32
    assert smaller.curve[-1].train_loss != base.curve[-1].train_loss
    # two accumulated halves of the same permutation make the step of one batch of 64
    halves = _run(batch_size=32, accumulate=2)
    assert halves.examples_seen == 22 * 32 * 2 and halves.options["accumulate"] == 2
    assert halves.gradient_evals == 2 * base.gradient_evals
    assert halves.curve[-1].train_loss == pytest.approx(base.curve[-1].train_loss, rel=1e-5)


def test_warmup_ramps_the_lr_and_the_schedules_end_at_their_floor():
    warm = _run(warmup=20, eval_every=1)
    assert _lrs(warm)[0] == pytest.approx(0.05 * 1 / 21)  # the lr of the first step (s = 0)
    assert _lrs(warm)[20] == pytest.approx(0.05)
    assert warm.options["warmup"] == 20
    for schedule in ("cosine", "linear"):
        floored = _run(schedule=schedule, floor=0.2, eval_every=1)
        assert floored.options["floor"] == 0.2
        assert 0.2 * 0.05 <= min(_lrs(floored)) < 0.2 * 0.05 * 1.25  # ends at the floor
        plain = _run(schedule=schedule, eval_every=1)
        assert min(_lrs(plain)) < 0.2 * 0.05


def test_step_and_plateau_schedules_decay_by_gamma():
    stepped = _run(schedule="step", step_size=5, gamma=0.5, eval_every=1)
    assert _lrs(stepped)[4] == pytest.approx(0.05)
    assert _lrs(stepped)[5] == pytest.approx(0.025)  # after 5 steps: one decay
    assert stepped.options["step_size"] == 5 and stepped.options["gamma"] == 0.5
    # An lr of 1e-4 barely moves the metric: the plateau schedule cuts it after patience.
    stuck = train("digits-mlp", "sgd", {"lr": 1e-4}, 0, budget=8, eval_every=1,
                  schedule="plateau", plateau_patience=1, gamma=0.5)
    assert stuck.curve[-1].lr < 1e-4
    assert stuck.options["plateau_patience"] == 1


def test_clipping_and_early_stopping_change_the_run():
    clipped = _run(clip_norm=1e-3)
    assert clipped.options["clip_norm"] == 1e-3
    assert clipped.curve[-1].train_loss > _run().curve[-1].train_loss  # tiny steps: less fit
    stopped = train("digits-mlp", "sgd", {"lr": 0.05}, 0, budget=44, eval_every=11,
                    patience=1, min_delta=1.0)
    assert stopped.stopped_early and stopped.steps == 22
    assert stopped.options["patience"] == 1 and stopped.options["min_delta"] == 1.0


def test_precision_float64_and_bf16_are_used_and_fp16_needs_cuda():
    single = _run()
    double = _run(precision="float64")
    assert double.dtype == "float64" and double.param_bytes == 2 * single.param_bytes
    assert double.curve[0].train_loss != single.curve[0].train_loss
    assert double.curve[0].train_loss == pytest.approx(single.curve[0].train_loss, rel=1e-4)
    half = _run(precision="bf16")
    assert half.dtype == "float32" and half.options["precision"] == "bf16"
    assert half.curve[0].train_loss != single.curve[0].train_loss
    with pytest.raises(TunerError, match="fp16 needs CUDA"):
        train("digits-mlp", "sgd", {}, 0, precision="fp16", device="cpu")
    with pytest.raises(TunerError, match="mixed precision"):
        train("rosenbrock", "newton", {}, 0, precision="bf16")


@pytest.mark.gpu
def test_fp16_trains_with_a_gradient_scaler_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here: fp16 needs one")
    result = train("digits-mlp", "adam", {"lr": 3e-3}, 0, budget=44, precision="fp16",
                   device="cuda")
    assert result.status == "complete" and result.options["precision"] == "fp16"
    assert result.final_metric > 0.5


def _decaying_optimizers():
    registry = get_registry()
    names = [name for name in registry.optimizers  # Prodigy takes no step at all (decay
             if "weight_decay" in registry.optimizer(name).space  # included) while a zero
             and name != "prodigy"]  # gradient gives its step-size estimate nothing to grow on
    return sorted(names) + ["lookahead-adamw"]


def _stepped_with_zero_gradients(plugin, hp, decay_exclude):
    """A small model in float64 (a learning-rate-free method's first steps are tiny) after two
    steps with zero gradients (some optimizers only set up their state on the first); returns
    the optimizer's groups and the parameters."""
    from tuner.training.options import TrainOptions
    from tuner.training.roles import role_groups
    from tuner.training.settings import RunSettings

    task = get_registry().task("digits-mlp")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4),
                                torch.nn.Linear(4, 2)).double()
    settings = RunSettings(task, plugin, hp, 0, TrainOptions(decay_exclude=decay_exclude))
    groups = role_groups(task, plugin, model, settings.param_groups(model))
    optimizer = plugin.create(groups, hp)
    for _ in range(2):
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        optimizer.step()
    return groups, [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("name", _decaying_optimizers())
def test_weight_decay_exclusion_leaves_biases_and_norms_alone(name):
    """Steps with zero gradients: with ``decay_exclude`` the biases and the LayerNorm's weight
    move exactly as without weight decay (some optimizers move them anyway: ASGD's own decay
    ``lambd``), and the matrices do not (they shrink)."""
    plugin = get_registry().optimizer(name)
    hp = plugin.space.complete({"weight_decay": plugin.space["weight_decay"].high},
                               owner=name)
    groups, excluded = _stepped_with_zero_gradients(plugin, hp, decay_exclude=True)
    if not plugin.splits_by_role:
        assert [len(g["params"]) for g in groups] == [2, 4]
    undecayed_hp = {key: value for key, value in hp.items()  # and what applies only with it
                    if key == "lr" or "weight_decay" not in _conditions(plugin, key)}
    _, undecayed = _stepped_with_zero_gradients(plugin, {**undecayed_hp, "weight_decay": 0.0},
                                                decay_exclude=True)
    pairs = list(zip(excluded, undecayed, strict=True))
    assert all(torch.equal(p, reference) for p, reference in pairs if p.dim() < 2), name
    # Muon decays its hidden matrices only (the head's decay is its AdamW part's own setting)
    assert any(not torch.equal(p, reference) for p, reference in pairs if p.dim() >= 2), name


def _conditions(plugin, key: str) -> str:
    """The names a parameter's ``when`` condition mentions ("" for an unconditional one)."""
    when = getattr(plugin.space[key], "when", None)
    return str(when or "")


# -- the study file, the flags and a study with tuned options -----------------------------


def test_training_options_are_checked_with_one_line_each():
    assert check_training({"warmup": 10, "batch_size": {"range": [16, 128]}}) == {
        "warmup": 10, "batch_size": {"range": [16, 128]}}
    assert parse_flag("schedule=constant,cosine") == (
        "schedule", {"choices": ["constant", "cosine"]})
    assert parse_flag("batch_size=16:128") == ("batch_size", {"range": [16, 128]})
    for bad, message in [
        ({"warmupp": 1}, "unknown training option 'warmupp'"),
        ({"batch_size": 0}, "batch_size must be in"),
        ({"batch_size": {"range": [64, 16]}}, "low 64 must be below high 16"),
        ({"schedule": {"range": [1, 2]}}, "not a number"),
        ({"precision": "fp8"}, "'fp8' is not one of"),
        ({"clip_norm": -1.0}, "clip_norm must be in"),
    ]:
        with pytest.raises(TunerError, match=message):
            check_training(bad)


def test_the_budget_counts_examples_when_the_batch_size_is_tuned():
    tuned = {"batch_size": {"range": [16, 256]}}
    plan = run_plan(tuned, {"batch_size": 128}, budget=100, eval_every=10, task_batch_size=64)
    assert plan.options["budget"] == 50 and plan.options["eval_every"] == 5
    assert plan.scale == 2.0
    steps = run_plan(tuned, {"batch_size": 128}, budget=100, eval_every=10,
                     task_batch_size=64, budget_unit="steps")
    assert steps.options["budget"] == 100 and steps.scale == 1.0


def _tuner(*args, db):
    return subprocess.run([sys.executable, "-m", "tuner", *args, "--db", db],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def tuned_study(tmp_path_factory):
    """A study with tuned batch size and warm-up, fixed precision and exclusion, on digits-mlp
    at width 32: run with 2 workers. Shared by the checks below."""
    folder = tmp_path_factory.mktemp("tuned")
    db = f"sqlite:///{folder / 'tuner.db'}"
    created = _tuner(
        "study", "create", "tuned", "--task", "digits-mlp", "--task-param", "width=32",
        "--optimizers", "adam,sgd", "--trials", "4", "--seeds", "1", "--budget", "44",
        "--sampler", "random", "--pruner", "none",
        "--train", "batch_size=16:128", "--train", "warmup=0:10",
        "--train", "precision=bf16", "--train", "decay_exclude=true", db=db,
    )
    assert created.returncode == 0, created.stderr
    done = _tuner("study", "run", "tuned", "--workers", "2", db=db)
    assert done.returncode == 0, done.stderr
    from tuner.store import open_store
    from tuner.store.models import Run

    store = open_store(db, readonly=True)
    with store.session() as session:
        runs = session.query(Run).all()
        rows = [(r.task, r.optimizer, r.status, dict(r.options), r.task_params, r.dtype,
                 r.examples_seen, r.param_count, r.steps, r.config_hash) for r in runs]
    store.dispose()
    return db, rows


def test_tuned_options_are_sampled_inside_their_ranges_and_recorded(tuned_study):
    _, rows = tuned_study
    assert len(rows) == 8
    sizes = set()
    for task, _, status, options, task_params, dtype, seen, count, _, _ in rows:
        assert task == "digits-mlp[width=32]" and task_params == {"width": 32}
        assert 16 <= options["batch_size"] <= 128 and 0 <= options["warmup"] <= 10
        assert options["precision"] == "bf16" and options["decay_exclude"] is True
        assert dtype == "float32" and count == 64 * 32 + 32 + 32 * 10 + 10
        sizes.add(options["batch_size"])
        # equal budget in examples: 44 steps of the task's 64 examples, give or take a step
        assert options["budget"] == round(44 * 64 / options["batch_size"])
        if status == "complete":
            assert abs(seen - 44 * 64) <= options["batch_size"] / 2
    assert len(sizes) > 2  # sampled, not one value


def test_a_ranking_filtered_by_batch_size_uses_only_those_runs(tuned_study):
    from tuner.advice import rank_task

    db, rows = tuned_study
    size = next(options["batch_size"] for _, _, status, options, *_ in rows
                if status == "complete")
    ranking = rank_task("digits-mlp[width=32]", db, where={"batch_size": size})
    hashes = {row[-1] for row in rows if row[3]["batch_size"] == size}
    chosen = [s for s in ranking.optimizers if s.mean is not None]
    assert chosen and all(s.config_hash in hashes for s in chosen)
    assert ranking.where == {"batch_size": size}
    printed = _tuner("best", "--task", "digits-mlp[width=32]", "--where",
                     f"batch_size={size}", "--json", db=db)
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout)["where"] == {"batch_size": size}
    assert {o["config_hash"] for o in json.loads(printed.stdout)["optimizers"]} <= hashes
    everything = rank_task("digits-mlp[width=32]", db)
    assert sum(s.trials for s in everything.optimizers) == 8
    assert sum(s.trials for s in ranking.optimizers) == len(hashes)


def test_a_ranking_over_a_range_of_batch_sizes_uses_the_runs_inside_it(tuned_study):
    db, rows = tuned_study
    sizes = sorted({options["batch_size"] for _, _, _, options, *_ in rows})
    low, high = sizes[0], sizes[len(sizes) // 2]  # the smallest sizes in, the largest out
    inside = {row[-1] for row in rows if low <= row[3]["batch_size"] <= high}
    printed = _tuner("best", "--task", "digits-mlp[width=32]", "--where",
                     f"batch_size={low}:{high}", "--json", db=db)
    assert printed.returncode == 0, printed.stderr
    data = json.loads(printed.stdout)
    assert data["where"] == {"batch_size": {"range": [low, high]}}
    assert sum(o["trials"] for o in data["optimizers"]) == len(inside) < len(rows)
    assert {o["config_hash"] for o in data["optimizers"] if o["config_hash"]} <= inside
    above = sizes[-1] + 1
    nothing = _tuner("best", "--task", "digits-mlp[width=32]", "--where",
                     f"batch_size={above}:{above + 10}", db=db)
    assert nothing.returncode == 1
    assert nothing.stderr.strip() == (
        f"Error: no runs of task 'digits-mlp[width=32]' match --where "
        f"batch_size={above}:{above + 10} (its runs have batch_size {sizes[0]}..{sizes[-1]})"
    )


# -- task parameters ------------------------------------------------------------------------


def test_task_parameters_change_the_model_and_the_identity():
    registry = get_registry()
    task = registry.task("digits-mlp")
    wide = task.with_params({"width": "256"})
    assert wide.name == "digits-mlp[width=256]" and wide.task_params == {"width": 256}
    assert task.with_params({"width": 128}).name == "digits-mlp"  # the default: same task
    assert registry.task("digits-mlp[width=256]").task_params == {"width": 256}
    result = train(wide, "sgd", {"lr": 0.05}, 0, budget=2)
    assert result.task == "digits-mlp[width=256]" and result.task_params == {"width": 256}
    assert result.param_count == 64 * 256 + 256 + 256 * 10 + 10
    for bad, message in [({"depth": 2}, "no task parameter 'depth'; its parameters are: width"),
                         ({"width": "wide"}, "must be a whole number"),
                         ({"width": 0}, "positive whole number")]:
        with pytest.raises(TunerError, match=message):
            task.with_params(bad)
    with pytest.raises(TunerError, match="multiple of the 4 attention heads"):
        registry.task("charlm").with_params({"width": 30})


def test_task_params_in_a_study_file(tmp_path, sqlite_url):
    (tmp_path / "s.toml").write_text(
        'name = "w"\ntask = "digits-mlp"\noptimizers = ["sgd"]\ntrials = 1\nseeds = 1\n'
        "[task_params]\nwidth = 16\n[training]\nbatch_size = [16, 64]\nwarmup = 5\n"
    )
    created = _tuner("study", "create", "--from", str(tmp_path / "s.toml"), db=sqlite_url)
    assert created.returncode == 0, created.stderr
    shown = _tuner("study", "show", "w", "--json", db=sqlite_url)
    described = json.loads(shown.stdout)
    assert described["task"] == "digits-mlp[width=16]"
    assert described["training"] == {"batch_size": {"range": [16, 64]}, "warmup": 5}
    bad = _tuner("study", "create", "x", "--task", "digits-mlp", "--optimizers", "sgd",
                 "--trials", "1", "--seeds", "1", "--train", "schedule=weekly", db=sqlite_url)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1
    assert "'weekly' is not one of" in bad.stderr
    listed = _tuner("study", "list", "--json", db=sqlite_url)
    assert [s["name"] for s in json.loads(listed.stdout)] == ["w"]  # the store as it was


def test_every_fixed_option_of_a_study_reaches_its_runs(sqlite_url):
    """Each training option set on a study arrives in the run's recorded options, through the
    driver and a worker."""
    fixed = {"batch_size": 32, "warmup": 3, "schedule": "step", "step_size": 5, "gamma": 0.5,
             "plateau_patience": 3, "floor": 0.1, "clip_norm": 2.0, "accumulate": 2,
             "patience": 4, "min_delta": 0.01, "decay_exclude": True, "precision": "float64"}
    flags = [arg for name, value in fixed.items()
             for arg in ("--train", f"{name}={str(value).lower()}")]
    created = _tuner("study", "create", "all", "--task", "digits-mlp", "--optimizers", "adamw",
                     "--trials", "1", "--seeds", "1", "--budget", "11", *flags, db=sqlite_url)
    assert created.returncode == 0, created.stderr
    assert _tuner("study", "run", "all", db=sqlite_url).returncode == 0
    from tuner.store import open_store
    from tuner.store.models import Run

    store = open_store(sqlite_url, readonly=True)
    with store.session() as session:
        (run,) = session.query(Run).all()
        options, dtype, seen = dict(run.options), run.dtype, run.examples_seen
    store.dispose()
    assert {name: options[name] for name in fixed} == fixed
    assert dtype == "float64" and seen == 11 * 32 * 2


def test_an_optimizer_with_fixed_hyperparameters_but_tuned_options_is_tuned(sqlite_url):
    from tuner.driver.resolve import resolve
    from tuner.study.spec import RangeOverride

    settings = {"name": "s", "task": "digits-mlp", "optimizers": "sgd", "trials": 5,
                "seeds": 1, "ranges": [RangeOverride(None, "lr", 0.1, 0.1),
                                       RangeOverride(None, "weight_decay", 0.0, 0.0)]}
    assert resolve(settings).trials_for("sgd") == 1  # nothing to tune: one trial
    tuned = resolve({**settings, "training": {"warmup": {"range": [0, 20]}}})
    assert tuned.fixed == [] and tuned.trials_for("sgd") == 5


def test_a_retried_slot_reuses_only_runs_of_the_same_tuned_options(sqlite_url):
    """Two attempts at one slot with equal hyperparameters but another warm-up are two
    configurations: the second must not take the first's run as its own."""
    from tuner.driver import create
    from tuner.driver.resolve import resolve
    from tuner.store import open_store, record_run
    from tuner.store.claims import close_trial, insert_claim, reuse_runs
    from tuner.store.models import params_hash

    spec = create(resolve({"name": "r", "task": "digits-mlp", "optimizers": "sgd",
                           "trials": 2, "seeds": 1,
                           "training": {"warmup": {"range": [0, 20]}}}), sqlite_url)
    hp = {"lr": 0.05, "weight_decay": 0.0}
    store = open_store(sqlite_url)
    row = {"study_id": spec.id, "optimizer": "sgd", "optuna_study_name": "x", "slot": 0,
           "params": {**hp, "warmup": 5}}
    first = insert_claim(store, {**row, "optuna_trial_number": 0})
    result = train("digits-mlp", "sgd", hp, 0, budget=2, warmup=5)
    record_run(store, first, result)
    close_trial(store, first, "failed", None)
    second = insert_claim(store, {**row, "optuna_trial_number": 1})
    key = params_hash(hp)
    assert reuse_runs(store, second, [first], key, [0], options={"warmup": 7}) == {}
    reused = reuse_runs(store, second, [first], key, [0], options={"warmup": 5})
    assert list(reused) == [0] and reused[0].status == "complete"
    store.dispose()


# -- every tuned choice is tried ------------------------------------------------------------


def _trained(db: str, study: str) -> list[tuple[str, dict, dict]]:
    """(optimizer, hyperparameters, training options) of each run of ``study``."""
    from tuner.store import open_store
    from tuner.store.models import Run, Study

    store = open_store(db, readonly=True)
    try:
        with store.session() as session:
            runs = session.query(Run).join(Study, Run.study_id == Study.id).filter(
                Study.name == study).order_by(Run.optimizer, Run.id).all()
            return [(r.optimizer, dict(r.params), dict(r.options)) for r in runs]
    finally:
        store.dispose()


def _cli(*args, db):
    """``tuner ...`` in this process (the create and show steps: no training)."""
    from click.testing import CliRunner

    from tuner.cli import cli

    return CliRunner().invoke(cli, [*args, "--db", db], catch_exceptions=False)


def test_every_tuned_choice_is_tried_in_the_first_trials(sqlite_url):
    """schedule=constant,cosine with 3 trials: each optimizer trains both schedules (its
    recommended configuration, slot 0, takes constant; the first sampled slot cosine), and
    RMSprop's own categorical ``centered`` gets both values too. The same study created again
    trains the same configurations: the pinning and the sampler's seeds are deterministic."""
    for name in ("first", "again"):
        created = _cli("study", "create", name, "--task", "logreg", "--optimizers",
                       "adamw,rmsprop", "--trials", "3", "--seeds", "1", "--budget", "20",
                       "--pruner", "none", "--train", "schedule=constant,cosine", db=sqlite_url)
        assert created.exit_code == 0 and created.stderr == "", created.output
    done = _tuner("study", "run", "first", db=sqlite_url)
    assert done.returncode == 0, done.stderr
    assert _cli("study", "run", "again", db=sqlite_url).exit_code == 0
    runs = _trained(sqlite_url, "first")
    assert len(runs) == 6
    for optimizer in ("adamw", "rmsprop"):
        schedules = {options["schedule"] for o, _, options in runs if o == optimizer}
        assert schedules == {"constant", "cosine"}
    assert {params["centered"] for o, params, _ in runs if o == "rmsprop"} == {False, True}
    assert _trained(sqlite_url, "again") == runs
    shown = _cli("study", "show", "first", db=sqlite_url)
    assert "Training: schedule=constant|cosine (tuned)." in shown.stdout


def test_too_few_trials_for_every_tuned_choice_warn_at_create(sqlite_url):
    created = _cli("study", "create", "few", "--task", "logreg", "--optimizers", "adamw",
                   "--trials", "1", "--seeds", "1", "--budget", "20",
                   "--train", "schedule=constant,cosine,linear", db=sqlite_url)
    assert created.exit_code == 0, created.output
    assert created.stderr.strip().splitlines() == [
        "Warning: with 1 trial per optimizer, not every tuned choice gets a trial: schedule "
        "(cosine, linear) may go untried; use --trials 3 or more."]
    assert _tuner("study", "run", "few", db=sqlite_url).returncode == 0
    shown = _cli("study", "show", "few", db=sqlite_url)
    assert ("Training: schedule=constant|cosine|linear (tuned; cosine, linear not tried)."
            in shown.stdout)
    enough = _cli("study", "create", "enough", "--task", "logreg", "--optimizers", "adamw",
                  "--trials", "3", "--seeds", "1", "--train", "schedule=constant,cosine,linear",
                  db=sqlite_url)
    assert enough.exit_code == 0 and enough.stderr == "", enough.output
