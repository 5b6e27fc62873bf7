"""Fixed settings: figures of settings trained once (``tuner plot``), fixed values in a study's
ranges (one trial for a fully fixed optimizer), and presets per task kind.

The seven-panel figure is the textbook one: GD at lr 0.1 and 0.01, momentum, Nesterov,
Adagrad, RMSProp and Adam on the ``quadratic`` task, f = x1^2 + 10 x2^2 from (4, 3).
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import pytest
from click.testing import CliRunner

from tuner.cli import cli
from tuner.driver.context import optimizer_space
from tuner.driver.resolve import resolve
from tuner.plugin.optimizer import OptimizerPlugin
from tuner.plugin.registry import get_registry
from tuner.plugin.space import Float, SpaceError
from tuner.report.plots import (
    PlotError,
    Setting,
    parse_setting,
    plot_setting_curves,
    plot_setting_trajectories,
)
from tuner.store import open_store
from tuner.store.studies import get_study, study_status
from tuner.study.spec import load_study_file, parse_range_flag

SEVEN = [
    "sgd:lr=0.1", "sgd:lr=0.01", "momentum:lr=0.01", "nesterov:lr=0.01", "adagrad:lr=0.1",
    "rmsprop:lr=0.1,alpha=0.9", "adam:lr=0.1",
]


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _train_final(optimizer: str, params: dict, task: str = "quadratic", *extra: str) -> float:
    flags = [arg for name, value in params.items() for arg in ("--param", f"{name}={value}")]
    result = invoke("train", "--task", task, "--optimizer", optimizer, *flags, *extra, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["final_metric"]


# -- tuner plot -----------------------------------------------------------------------------------


def test_the_seven_panel_trajectory_figure_matches_tuner_train(tmp_path: Path):
    out = tmp_path / "paths.png"
    runs = [arg for setting in SEVEN for arg in ("--run", setting)]
    result = invoke("plot", "trajectories", "--task", "quadratic", *runs, "--out", str(out),
                    "--json")
    assert result.exit_code == 0, result.output
    figure = json.loads(result.output)
    assert figure["path"] == str(out) and figure["task"] == "quadratic"
    image = matplotlib.image.imread(out)
    assert image.shape[1] > 1.8 * image.shape[0]  # two rows of four panels
    panels = figure["panels"]
    assert [p["label"] for p in panels] == [
        "sgd lr=0.1", "sgd lr=0.01", "momentum lr=0.01", "nesterov lr=0.01", "adagrad lr=0.1",
        "rmsprop lr=0.1 alpha=0.9", "adam lr=0.1",
    ]
    for panel in panels:
        expected = _train_final(panel["optimizer"], panel["params"])
        assert panel["final_metric"] == expected
        assert panel["title"].endswith(f"final loss {expected:.4g}")
        assert panel["steps"] == 100 and panel["function_evals"] == 100
    finals = {p["label"]: p["final_metric"] for p in panels}
    assert finals["sgd lr=0.1"] == pytest.approx(90.0)  # x2 flips sign every step, forever
    assert finals["momentum lr=0.01"] < finals["sgd lr=0.01"] < 1.0  # momentum helps


def test_the_same_figures_from_python(tmp_path: Path):
    settings = [Setting("sgd", {"lr": 0.001}), "cg"]
    paths = plot_setting_trajectories("rosenbrock", settings, tmp_path / "p.png", budget=60)
    assert paths.path.exists()
    assert [p.setting.label for p in paths.panels] == ["sgd lr=0.001", "cg"]
    assert [p.result.status for p in paths.panels] == ["complete", "complete"]
    assert paths.panels[0].final_metric == _train_final("sgd", {"lr": 0.001}, "rosenbrock",
                                                        "--budget", "60")
    assert paths.panels[1].final_metric < 1e-6  # CG finds Rosenbrock's minimum in 60 steps
    curves = plot_setting_curves("logreg", ["newton", "adam:lr=0.01"], tmp_path / "c.png",
                                 budget=20, eval_every=5)
    assert curves.path.exists()
    newton, adam = curves.panels
    assert len(newton.result.curve) == 4 and newton.result.hessian_evals == 20
    assert newton.final_metric < adam.final_metric  # Newton is at the optimum by then
    assert newton.final_metric == _train_final("newton", {}, "logreg", "--budget", "20")


def test_curves_from_the_command_line(tmp_path: Path):
    out = tmp_path / "curves.png"
    result = invoke("plot", "curves", "--task", "quadratic", "--run", "bfgs", "--run",
                    "sgd:lr=0.05", "--budget", "10", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.exists() and result.output.strip().endswith(f"Wrote {out}")
    assert "bfgs" in result.output and "sgd lr=0.05" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["trajectories", "--task", "quadratic", "--run", "nosuch:lr=0.1"],
     "Error: unknown optimizer 'nosuch'"),
    (["trajectories", "--task", "quadratic", "--run", "sgd:lr=lots"],
     "Error: --run 'sgd:lr=lots': sgd: parameter 'lr': cannot read 'lots' as float(log)"),
    (["curves", "--task", "quadratic", "--run", "sgd:lr=7"],
     "Error: --run 'sgd:lr=7': sgd: parameter 'lr': 7 is outside [0.0001, 1]"),
    (["curves", "--task", "quadratic", "--run", "sgd:momentum=0.9"],
     "Error: --run 'sgd:momentum=0.9': sgd: unknown parameter 'momentum'"),
    (["trajectories", "--task", "logreg", "--run", "sgd"],
     "Error: task 'logreg' has no 2-D path to draw; `tuner plot curves` draws its learning "
     "curves"),
    (["curves", "--task", "quadratic", "--run", "sgd", "--budget", "0"],
     "Error: budget must be a whole number >= 1, got 0"),
])
def test_bad_settings_are_one_line_and_draw_nothing(args, message, tmp_path: Path):
    out = tmp_path / "never.png"
    result = CliRunner().invoke(cli, ["plot", *args, "--out", str(out)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), lines
    assert not out.exists()


def test_a_setting_reads_its_values_with_their_types():
    setting = parse_setting("cg:beta=fletcher-reeves,restart_every=5,lr=0.5")
    assert setting == Setting("cg", {"beta": "fletcher-reeves", "restart_every": 5, "lr": 0.5})
    assert parse_setting("adam").params == {}
    with pytest.raises(PlotError):
        parse_setting(":lr=0.1")


# -- fixed values where a range is expected -------------------------------------------------------


QUICK = ["--task", "quadratic", "--budget", "20", "--seeds", "1", "--pruner", "none"]


def test_a_fully_fixed_optimizer_runs_one_trial(sqlite_url: str):
    created = invoke("study", "create", "fixed", *QUICK, "--optimizers", "sgd,momentum",
                     "--trials", "3", "--param-range", "lr=0.02:0.02",
                     "--param-range", "sgd.lr=0.1:0.1", "--param-range", "sgd.weight_decay=0:0",
                     "--db", sqlite_url)
    assert created.exit_code == 0, created.output
    assert "Fixed settings, one trial each: sgd." in created.output
    ran = invoke("study", "run", "fixed", "--db", sqlite_url)
    assert ran.exit_code == 0, ran.output
    assert "finished: 4/4 trials" in ran.output  # sgd once, momentum three times
    store = open_store(sqlite_url, create=False)
    try:
        spec = get_study(store, "fixed")
        assert spec.fixed == ["sgd"] and spec.trials_for("sgd") == 1
        assert spec.trials_for("momentum") == 3
        status = {o.optimizer: o for o in study_status(store, spec).optimizers}
        assert (status["sgd"].done, status["sgd"].total) == (1, 1)
        assert (status["momentum"].done, status["momentum"].total) == (3, 3)
        assert status["sgd"].best_params == {"lr": 0.1, "weight_decay": 0.0}
    finally:
        store.dispose()
    exported = json.loads(invoke("study", "export", "fixed", "--format", "json",
                                 "--db", sqlite_url).output)
    lrs = {(row["optimizer"], row["param_lr"]) for row in exported}
    assert lrs == {("sgd", 0.1), ("momentum", 0.02)}  # a fixed lr holds in every trial


def test_a_study_file_takes_a_fixed_value(tmp_path: Path):
    path = tmp_path / "study.toml"
    path.write_text('task = "quadratic"\noptimizers = ["nesterov", "adam"]\ntrials = 5\n'
                    'seeds = 1\n[ranges]\nnesterov = {lr = 0.01, momentum = [0.9, 0.9], '
                    'weight_decay = 0}\nadam.lr = 0.1\n')
    spec = resolve({"name": "f"}, load_study_file(path))
    assert spec.fixed == ["nesterov"] and spec.trials_for("adam") == 5
    space = optimizer_space(spec, "adam")
    assert space["lr"].fixed and space["lr"].range_text == "0.1 (fixed)"
    assert space.fixed_point() is None  # betas and eps are still free


def test_a_fixed_value_must_still_fit_the_parameter():
    settings = {"name": "s", "task": "quadratic", "optimizers": "sgd", "trials": 2,
                "seeds": 1, "ranges": [parse_range_flag("lr=-1:-1")]}
    with pytest.raises(SpaceError, match="a log range needs low > 0"):
        resolve(settings)
    assert parse_range_flag("sgd.lr=0.1:0.1").label == "sgd.lr=0.1"


# -- presets per task kind ------------------------------------------------------------------------


def _recommended(spec, optimizer: str) -> dict:
    (first,) = [c for c in spec.initial_configs[optimizer] if c["origin"] == "recommended"]
    return first["params"]


def test_the_recommended_trial_takes_the_preset_of_the_task_kind(sqlite_url: str):
    for task, kind in (("charlm", "sequence"), ("digits-mlp", "vision")):
        created = invoke("study", "create", f"presets-{kind}", "--task", task, "--optimizers",
                         "lion,tiger,adam", "--trials", "2", "--seeds", "1", "--db", sqlite_url)
        assert created.exit_code == 0, created.output
    store = open_store(sqlite_url, create=False)
    try:
        sequence, vision = get_study(store, "presets-sequence"), get_study(store, "presets-vision")
    finally:
        store.dispose()
    assert _recommended(sequence, "lion") == {"lr": 1e-4, "beta1": 0.95, "beta2": 0.98,
                                              "weight_decay": 0.1}
    assert _recommended(sequence, "tiger")["beta"] == 0.965
    assert _recommended(vision, "lion")["beta1"] == 0.9  # no vision preset: the paper's default
    assert _recommended(vision, "tiger")["beta"] == 0.945
    assert _recommended(sequence, "adam") == _recommended(vision, "adam")


def test_a_preset_outside_a_narrowed_range_is_left_out():
    tiger = get_registry().optimizer("tiger")
    narrowed = tiger.space.with_range("beta", 0.9, 0.95)
    assert tiger.recommended_for("sequence", narrowed)["beta"] == 0.945
    assert tiger.recommended_for("sequence")["beta"] == 0.965
    assert tiger.recommended_for(None) == tiger.space.recommended()


def test_optimizers_show_lists_the_presets():
    shown = invoke("optimizers", "show", "lion")
    assert "preset for sequence tasks (a study's recommended trial): beta1=0.95, beta2=0.98" in (
        shown.output)
    described = json.loads(invoke("optimizers", "show", "tiger", "--json").output)
    assert described["presets"] == {"vision": {"beta": 0.945}, "sequence": {"beta": 0.965}}


@pytest.mark.parametrize(("presets", "message"), [
    ({"audio": {"lr": 0.1}}, "preset for unknown task kind 'audio'"),
    ({"vision": {"lr": 5.0}}, "preset 'vision': parameter 'lr': 5 is outside [0.001, 1]"),
    ({"vision": {"beta": 0.9}}, "preset 'vision': unknown parameter 'beta'"),
])
def test_a_bad_preset_is_refused_naming_the_optimizer(presets, message):
    plugin = OptimizerPlugin(
        name="p", summary="s", space=[Float("lr", 1e-3, 1.0, default=0.1)],
        build=lambda params, hp: None, state_multiple=0, presets=presets,
    )
    with pytest.raises(SpaceError, match="^optimizer 'p': " + message.replace("[", r"\[")):
        plugin.check_presets("optimizer 'p'")
