"""The torch.optim plugins: the same numbers as torch.optim, convergence, memory, and the CLI."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from click.testing import CliRunner

from tuner import testing
from tuner.cli import cli
from tuner.plugin.registry import get_registry

TORCH_OPTIM_NAMES = [
    "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adadelta", "adam", "adamw",
    "amsgrad", "adamax", "nadam", "radam", "adafactor", "rprop", "lbfgs",
]

# Written out by hand from the torch.optim documentation, independently of the plugin module:
# plugin -> (torch class, torch keyword arguments at the plugin's defaults,
#            {space parameter: (non-default space values, the torch keywords they change)}).
# Each space parameter gets one case, so a hyperparameter that is dropped or mis-mapped on the
# way to torch shows up as a mismatch.
_ADAM_CASES = {
    "lr": ({"lr": 3e-3}, {"lr": 3e-3}),
    "beta1": ({"beta1": 0.8}, {"betas": (0.8, 0.999)}),
    "beta2": ({"beta2": 0.95}, {"betas": (0.9, 0.95)}),
    "eps": ({"eps": 1e-4, "lr": 1e-2}, {"eps": 1e-4, "lr": 1e-2}),
    "weight_decay": ({"weight_decay": 0.05}, {"weight_decay": 0.05}),
    "decoupled_weight_decay": (
        {"weight_decay": 0.05, "decoupled_weight_decay": True},
        {"weight_decay": 0.05, "decoupled_weight_decay": True},
    ),
}
REFERENCE = {
    "sgd": (torch.optim.SGD, {"lr": 1e-2, "momentum": 0.0, "weight_decay": 0.0}, {
        "lr": ({"lr": 0.05}, {"lr": 0.05}),
        "weight_decay": ({"weight_decay": 1e-3}, {"weight_decay": 1e-3}),
    }),
    "momentum": (
        torch.optim.SGD,
        {"lr": 1e-2, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False},
        {
            "lr": ({"lr": 0.03}, {"lr": 0.03}),
            "momentum": ({"momentum": 0.7}, {"momentum": 0.7}),
            "dampening": ({"dampening": 0.5}, {"dampening": 0.5}),
            "weight_decay": ({"weight_decay": 5e-4}, {"weight_decay": 5e-4}),
        },
    ),
    "nesterov": (
        torch.optim.SGD,
        {"lr": 1e-2, "momentum": 0.9, "weight_decay": 0.0, "nesterov": True},
        {
            "lr": ({"lr": 0.03}, {"lr": 0.03}),
            "momentum": ({"momentum": 0.95}, {"momentum": 0.95}),
            "weight_decay": ({"weight_decay": 5e-4}, {"weight_decay": 5e-4}),
        },
    ),
    "adagrad": (
        torch.optim.Adagrad,
        {"lr": 1e-2, "initial_accumulator_value": 0.0, "eps": 1e-10, "weight_decay": 0.0},
        {
            "lr": ({"lr": 0.1}, {"lr": 0.1}),
            "initial_accumulator_value": (
                {"initial_accumulator_value": 0.1}, {"initial_accumulator_value": 0.1}
            ),
            "eps": ({"eps": 1e-4, "lr": 0.1}, {"eps": 1e-4, "lr": 0.1}),
            "weight_decay": ({"weight_decay": 1e-3}, {"weight_decay": 1e-3}),
        },
    ),
    "rmsprop": (
        torch.optim.RMSprop,
        {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "centered": False,
         "weight_decay": 0.0},
        {
            "lr": ({"lr": 1e-3}, {"lr": 1e-3}),
            "alpha": ({"alpha": 0.9}, {"alpha": 0.9}),
            "eps": ({"eps": 1e-4}, {"eps": 1e-4}),
            "momentum": ({"momentum": 0.5}, {"momentum": 0.5}),
            "centered": ({"centered": True}, {"centered": True}),
            "weight_decay": ({"weight_decay": 1e-3}, {"weight_decay": 1e-3}),
        },
    ),
    "adadelta": (
        torch.optim.Adadelta, {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0}, {
            "lr": ({"lr": 0.5}, {"lr": 0.5}),
            "rho": ({"rho": 0.95}, {"rho": 0.95}),
            "eps": ({"eps": 1e-5}, {"eps": 1e-5}),
            "weight_decay": ({"weight_decay": 1e-3}, {"weight_decay": 1e-3}),
        },
    ),
    "adam": (
        torch.optim.Adam,
        {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
        _ADAM_CASES,
    ),
    "adamw": (
        torch.optim.AdamW,
        {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2},
        {
            "lr": ({"lr": 3e-3}, {"lr": 3e-3}),
            "beta1": ({"beta1": 0.8}, {"betas": (0.8, 0.999)}),
            "beta2": ({"beta2": 0.95}, {"betas": (0.9, 0.95)}),
            "eps": ({"eps": 1e-4, "lr": 1e-2}, {"eps": 1e-4, "lr": 1e-2}),
            "weight_decay": ({"weight_decay": 0.1}, {"weight_decay": 0.1}),
        },
    ),
    "amsgrad": (
        torch.optim.Adam,
        {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": True},
        _ADAM_CASES,
    ),
    "adamax": (
        torch.optim.Adamax, {"lr": 2e-3, "betas": (0.9, 0.999), "weight_decay": 0.0}, {
            "lr": ({"lr": 1e-2}, {"lr": 1e-2}),
            "beta1": ({"beta1": 0.8}, {"betas": (0.8, 0.999)}),
            "beta2": ({"beta2": 0.95}, {"betas": (0.9, 0.95)}),
            "weight_decay": ({"weight_decay": 1e-3}, {"weight_decay": 1e-3}),
        },
    ),
    "nadam": (
        torch.optim.NAdam,
        {"lr": 2e-3, "betas": (0.9, 0.999), "momentum_decay": 4e-3, "weight_decay": 0.0},
        {
            "lr": ({"lr": 1e-2}, {"lr": 1e-2}),
            "beta1": ({"beta1": 0.8}, {"betas": (0.8, 0.999)}),
            "beta2": ({"beta2": 0.95}, {"betas": (0.9, 0.95)}),
            "momentum_decay": ({"momentum_decay": 2e-2}, {"momentum_decay": 2e-2}),
            "weight_decay": ({"weight_decay": 0.05}, {"weight_decay": 0.05}),
            "decoupled_weight_decay": (
                {"weight_decay": 0.05, "decoupled_weight_decay": True},
                {"weight_decay": 0.05, "decoupled_weight_decay": True},
            ),
        },
    ),
    "radam": (
        torch.optim.RAdam, {"lr": 1e-3, "betas": (0.9, 0.999), "weight_decay": 0.0}, {
            "lr": ({"lr": 1e-2}, {"lr": 1e-2}),
            # The first steps are SGD with momentum (see beta2): lr 1e-2 makes beta1 show.
            "beta1": ({"beta1": 0.6, "lr": 1e-2}, {"betas": (0.6, 0.999), "lr": 1e-2}),
            # RAdam takes the adaptive step only once the variance is tractable (rho_t > 5):
            # beta2 0.99 gets there within the 10 steps, 0.999 would not.
            "beta2": ({"beta2": 0.99}, {"betas": (0.9, 0.99)}),
            "weight_decay": ({"weight_decay": 0.05}, {"weight_decay": 0.05}),
            "decoupled_weight_decay": (
                {"weight_decay": 0.05, "decoupled_weight_decay": True},
                {"weight_decay": 0.05, "decoupled_weight_decay": True},
            ),
        },
    ),
    "adafactor": (
        torch.optim.Adafactor,
        {"lr": 1e-2, "beta2_decay": -0.8, "eps": (None, 1e-3), "d": 1.0, "weight_decay": 0.0},
        {
            "lr": ({"lr": 0.1}, {"lr": 0.1}),
            "beta2_decay": ({"beta2_decay": -0.6}, {"beta2_decay": -0.6}),
            # the floor of the weights' RMS: it matters once it is above some tensor's RMS
            "eps2": ({"eps2": 1e-2}, {"eps": (None, 1e-2)}),
            "d": ({"d": 2.0}, {"d": 2.0}),
            "weight_decay": ({"weight_decay": 0.05}, {"weight_decay": 0.05}),
        },
    ),
    "rprop": (
        torch.optim.Rprop,
        {"lr": 1e-2, "etas": (0.5, 1.2), "step_sizes": (1e-6, 50.0)},
        {
            "lr": ({"lr": 1e-3}, {"lr": 1e-3}),
            "etaminus": ({"etaminus": 0.4}, {"etas": (0.4, 1.2)}),
            "etaplus": ({"etaplus": 1.4}, {"etas": (0.5, 1.4)}),
            # the steps grow 1.2x a step from 0.01: a cap of 0.02 is reached within the 10
            "step_size_max": ({"step_size_max": 0.02}, {"step_sizes": (1e-6, 0.02)}),
        },
    ),
    "lbfgs": (
        torch.optim.LBFGS,
        {"lr": 1.0, "history_size": 10, "max_iter": 20, "line_search_fn": "strong_wolfe"},
        {
            "lr": ({"lr": 0.5}, {"lr": 0.5}),
            "history_size": ({"history_size": 4}, {"history_size": 4}),
            "max_iter": ({"max_iter": 7}, {"max_iter": 7}),
            "line_search_fn": (
                {"line_search_fn": None, "lr": 0.1}, {"line_search_fn": None, "lr": 0.1}
            ),
        },
    ),
}

CASES = [
    pytest.param(name, param, id=f"{name}-{param}")
    for name, (_, _, cases) in REFERENCE.items()
    for param in cases
]


def registry_optimizers() -> dict:
    return get_registry().optimizers


def test_the_fifteen_torch_optimizers_are_registered_by_the_torch_optim_plugin():
    mine = sorted(n for n, p in registry_optimizers().items() if p.plugin == "torch_optim")
    assert mine == sorted(TORCH_OPTIM_NAMES)
    assert sorted(REFERENCE) == sorted(TORCH_OPTIM_NAMES)


@pytest.mark.parametrize("name", TORCH_OPTIM_NAMES)
def test_every_hyperparameter_has_a_non_default_case(name):
    space = registry_optimizers()[name].space
    _, _, cases = REFERENCE[name]
    assert sorted(cases) == sorted(space.names)
    for param, (values, _) in cases.items():
        assert values[param] != space[param].default, param
        space.complete(values, owner=name)  # in range


def _problem():
    """Fixed data and a fixed initial MLP; returns (make_model, loss(model)).

    The output bias starts at zero, as in many models: Adafactor's ``eps2`` (the floor of a
    tensor's RMS in its step) shows only on a tensor that small."""
    inputs = torch.randn(32, 5, generator=torch.Generator().manual_seed(1))
    targets = torch.randn(32, 2, generator=torch.Generator().manual_seed(2))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        initial = torch.nn.Sequential(
            torch.nn.Linear(5, 12), torch.nn.Tanh(), torch.nn.Linear(12, 2)
        ).state_dict()
    initial["2.bias"].zero_()

    def make_model() -> torch.nn.Module:
        model = torch.nn.Sequential(
            torch.nn.Linear(5, 12), torch.nn.Tanh(), torch.nn.Linear(12, 2)
        )
        model.load_state_dict(initial)
        return model

    def loss(model: torch.nn.Module) -> torch.Tensor:
        return torch.nn.functional.mse_loss(model(inputs), targets)

    return make_model, loss


def _run(optimizer, model, loss, steps: int, closure: bool) -> list[list[torch.Tensor]]:
    """Parameters after each of ``steps`` steps."""
    history = []
    for _ in range(steps):
        def evaluate():
            optimizer.zero_grad()
            value = loss(model)
            value.backward()
            return value

        if closure:
            optimizer.step(evaluate)
        else:
            evaluate()
            optimizer.step()
        history.append([p.detach().clone() for p in model.parameters()])
    return history


def _largest_difference(first: list[torch.Tensor], second: list[torch.Tensor]) -> float:
    return max(float((a - b).abs().max()) for a, b in zip(first, second, strict=True))


@pytest.mark.parametrize(("name", "param"), CASES)
def test_plugin_matches_torch_optim_step_by_step(name, param):
    plugin = registry_optimizers()[name]
    torch_class, torch_defaults, cases = REFERENCE[name]
    values, torch_changes = cases[param]
    make_model, loss = _problem()

    ours_model = make_model()
    ours = plugin.create(ours_model.parameters(), values)
    assert type(ours) is torch_class
    reference_model = make_model()
    reference = torch_class(reference_model.parameters(), **{**torch_defaults, **torch_changes})

    ours_steps = _run(ours, ours_model, loss, 10, plugin.needs_closure)
    reference_steps = _run(reference, reference_model, loss, 10, plugin.needs_closure)

    # The case must matter: with only ``param`` back at its default, the run ends elsewhere.
    baseline_model = make_model()
    baseline_values = {k: v for k, v in values.items() if k != param}
    baseline = plugin.create(baseline_model.parameters(), baseline_values)
    baseline_end = _run(baseline, baseline_model, loss, 10, plugin.needs_closure)[-1]
    effect = _largest_difference(baseline_end, ours_steps[-1])
    assert effect > 1e-5, f"{param} at {values[param]!r} barely changes the run ({effect:.1e})"
    for step, (mine, theirs) in enumerate(zip(ours_steps, reference_steps, strict=True), start=1):
        for a, b in zip(mine, theirs, strict=True):
            # the plugin may build the fused or foreach kernel, the reference torch's default
            # one: the same rule in float32 in another order (2**-24 per rounding, ~20
            # roundings a step, 10 steps, values of order 1): within 1e-5, 1e-6 near zero
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=f"step {step}")
    group = ours.param_groups[0]
    for key, value in {**torch_defaults, **torch_changes}.items():
        assert group[key] == value, key


def test_cpu_parameters_get_the_fused_or_foreach_implementation():
    params = [torch.nn.Parameter(torch.zeros(3))]
    groups = {name: registry_optimizers()[name].create(params).param_groups[0]
              for name in TORCH_OPTIM_NAMES}
    for name in ("sgd", "momentum", "nesterov", "adagrad", "adam", "adamw", "amsgrad"):
        assert groups[name]["fused"] is True, name
    assert groups["radam"]["foreach"] is True
    # single-tensor: fastest or a tie
    for name in ("rmsprop", "adadelta", "adamax", "nadam", "adafactor", "rprop"):
        assert groups[name]["foreach"] is False, name


@pytest.mark.parametrize("name", ["sgd", "momentum", "adagrad"])
def test_fused_optimizers_fall_back_when_gradients_are_sparse(name):
    embedding = torch.nn.Embedding(10, 4, sparse=True)
    optimizer = registry_optimizers()[name].create(embedding.parameters())
    assert optimizer.param_groups[0]["fused"] is True
    before = embedding.weight.detach().clone()
    embedding(torch.tensor([1, 2])).sum().backward()
    optimizer.step()  # the fused kernel alone raises on a sparse gradient
    assert optimizer.param_groups[0]["fused"] is False
    changed = (embedding.weight.detach() != before).any(dim=1)
    assert changed.tolist() == [i in (1, 2) for i in range(10)]


# f(4, 3) = 106. The bound is what each optimizer reaches at its defaults in 100 steps
# (measured, in brackets), with headroom. Optimizers with a normalised step (the Adam family,
# Adagrad) move each coordinate by about lr per step, so at lr 1e-3 to 2e-3 they can only go
# from (4, 3) to about (3.8, 2.8): f ~ 93-99 is their expected result, not a failure. Adadelta's
# first steps are ~sqrt(eps) = 1e-3 times lr and grow slowly. The others converge.
QUADRATIC_BOUNDS = {
    "sgd": 1.0,            # [0.28] lr 1e-2: x1 shrinks by 0.98 per step
    "momentum": 1e-2,      # [1.0e-3]
    "nesterov": 1e-3,      # [5.2e-5]
    "adagrad": 95.0,       # [93.9] steps ~ lr / sqrt(t): 0.2 per coordinate in total
    "rmsprop": 30.0,       # [20.7] lr 1e-2, steps ~ lr: still on its way
    "adadelta": 85.0,      # [81.4]
    "adam": 100.0,         # [99.35] 0.1 per coordinate at lr 1e-3
    "adamw": 100.0,        # [99.15]
    "amsgrad": 100.0,      # [99.35]
    "adamax": 95.0,        # [92.8] lr 2e-3
    "nadam": 95.0,         # [93.4] lr 2e-3
    "radam": 90.0,         # [88.1] the SGD-with-momentum warm-up moves faster at first
    "adafactor": 20.0,     # [13.7] steps of lr 1e-2 times the point's RMS (3.5)
    "rprop": 1e-6,         # [1.4e-12] the step sizes grow 1.2x a step while the sign holds
    "lbfgs": 1e-8,         # [2e-12] exact on a quadratic
}


@pytest.mark.parametrize("name", TORCH_OPTIM_NAMES)
def test_lowers_the_quadratic_at_default_values(name):
    final = testing.lowers_quadratic(registry_optimizers()[name])
    assert final < QUADRATIC_BOUNDS[name] < testing.QUADRATIC_START_VALUE


def test_at_a_fitting_learning_rate_the_adaptive_optimizers_converge():
    """The slow results above are the default lr's doing: at lr 0.1 (Adagrad 1.0) they get
    below 1% of the start (measured: 0.004, 0.004, 0.003, 0.0, 2e-4, 0.009, 0.0)."""
    for name, lr in [("adam", 0.1), ("amsgrad", 0.1), ("adamw", 0.1), ("rmsprop", 0.1),
                     ("nadam", 0.1), ("adamax", 0.1), ("adagrad", 1.0)]:
        final = testing.lowers_quadratic(registry_optimizers()[name], {"lr": lr})
        assert final < 0.01 * testing.QUADRATIC_START_VALUE, (name, final)


@pytest.mark.parametrize("name", TORCH_OPTIM_NAMES)
def test_measured_state_equals_the_declared_multiple(name):
    plugin = registry_optimizers()[name]
    declared = testing.declared_state_multiple(plugin)
    assert testing.measured_state_multiple(plugin) == pytest.approx(declared)


def test_adafactor_keeps_a_row_and_a_column_per_matrix():
    """On the kit's MLP (8-16-1): 16 + 8 for the first weight, 16 for its bias, 1 + 16 for the
    second weight and 1 for its bias: 58 numbers for 161 parameters, far below Adam's 2n."""
    declared = testing.declared_state_multiple(registry_optimizers()["adafactor"])
    assert declared == pytest.approx(58 / testing.SMALL_PROBLEM_PARAMS)
    assert registry_optimizers()["adafactor"].state_text == "rows + columns (n for vectors)"


def test_state_grows_with_rmsprop_options_and_lbfgs_history():
    plugins = registry_optimizers()
    rmsprop = plugins["rmsprop"]
    assert testing.measured_state_multiple(rmsprop, {"momentum": 0.9}) == 2
    assert testing.measured_state_multiple(rmsprop, {"momentum": 0.9, "centered": True}) == 3
    assert testing.measured_state_multiple(plugins["lbfgs"], {"history_size": 5}) == 12


def _online_counterexample(plugin, steps: int, c: float = 3.0) -> float:
    """Reddi et al. 2018, Theorem 1: f_t(x) = C x when t mod 3 == 1, else -x, on [-1, 1].

    The sum over a period is (C - 2) x, so the best point is x = -1. beta1 = 0 and
    beta2 = 1 / (1 + C^2) are outside the plugins' tuning ranges, so the optimizer is made with
    ``plugin.build`` (which does not range-check) rather than ``plugin.create``.
    """
    x = torch.nn.Parameter(torch.zeros(1))
    values = {**plugin.space.defaults(), "lr": 0.1, "beta1": 0.0, "beta2": 1 / (1 + c * c)}
    optimizer = plugin.build([x], values)
    large, small = torch.tensor([c]), torch.tensor([-1.0])
    for t in range(1, steps + 1):
        x.grad = large if t % 3 == 1 else small  # the gradient of a linear f_t
        optimizer.step()
        with torch.no_grad():
            x.clamp_(-1.0, 1.0)
    return float(x.detach())


def test_adam_fails_reddis_counterexample_and_amsgrad_does_not():
    plugins = registry_optimizers()
    assert _online_counterexample(plugins["adam"], 30_000) == 1.0  # the worst point
    assert _online_counterexample(plugins["amsgrad"], 30_000) < -0.5


def test_cli_lists_the_optimizers_with_their_spaces_as_json():
    result = CliRunner().invoke(cli, ["optimizers", "list", "--json"], catch_exceptions=False)
    assert result.exit_code == 0
    data = json.loads(result.output)
    listed = {entry["name"]: entry for entry in data["optimizers"]}
    assert set(TORCH_OPTIM_NAMES) <= set(listed)
    for name in TORCH_OPTIM_NAMES:
        space = {row["name"]: row for row in listed[name]["space"]}
        assert list(space) == registry_optimizers()[name].space.names
        assert space["lr"]["kind"] == "float(log)"
        assert listed[name]["state_multiple"] == REFERENCE_STATE[name]
    assert listed["lbfgs"]["needs_closure"] and listed["lbfgs"]["full_batch_only"]
    assert listed["adam"]["space"][0]["recommended"] == 1e-3
    assert dict(listed["adam"]["space"][-1])["when"] == "weight_decay > 0"


REFERENCE_STATE = {
    "sgd": 0, "momentum": 1, "nesterov": 1, "adagrad": 1, "rmsprop": 1, "adadelta": 2,
    "adam": 2, "adamw": 2, "amsgrad": 3, "adamax": 2, "nadam": 2, "radam": 2, "lbfgs": 22,
    "adafactor": None, "rprop": 2,  # Adafactor's depends on the shapes: no single multiple
}


@pytest.mark.parametrize("name", TORCH_OPTIM_NAMES)
def test_cli_shows_every_parameter_of_an_optimizer(name):
    result = CliRunner().invoke(cli, ["optimizers", "show", name], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.output.startswith(f"{name}: ")
    for param in registry_optimizers()[name].space.names:
        assert f"\n{param} " in result.output, param


def test_plugins_are_hashable_and_their_factories_picklable():
    plugins = [registry_optimizers()[name] for name in TORCH_OPTIM_NAMES]
    assert len({hash(plugin) for plugin in plugins}) == len(plugins)
    for plugin in plugins:
        rebuilt = pickle.loads(pickle.dumps(plugin.build))
        assert rebuilt == plugin.build
