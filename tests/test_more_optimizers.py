"""The more-optimizers extra (``tuner_plugins.optimizers.more``, over pytorch_optimizer) and SAM.

What is checked, and how closely:

- each plugin's optimizer after a few steps on a small MLP equals pytorch_optimizer's class
  built by hand with the same values, every one of them away from pytorch_optimizer's default,
  so a value the plugin failed to pass would show: exactly (the same arithmetic runs; Kron's
  random draws are replayed from the generator it declares);
- where tuner keeps its own (Lion, Tiger, Schedule-Free AdamW, SAM), the two agree after ten
  steps within rtol 1e-5 (atol 1e-8): they compute the same update with the operations in
  another order (Lion's decay ``p - lr (u + wd p)`` against ``p (1 - lr wd) - lr u``), about
  one float32 rounding (6e-8) per operation and step. Schedule-Free agrees where the two
  implementations compute the same thing: pytorch_optimizer divides Adam's second moment by
  its bias correction ``1 - beta2^t`` where tuner's (see its module docstring) multiplies the
  learning rate by its square root. The gradient's step is the same either way, but not the
  weight decay's, which tuner's scales by that root too, nor the averaging weights, which
  grow with the largest learning rate so far (``lr_max ** weight_lr_power``). Without weight
  decay, with ``weight_lr_power = 0`` and an ``eps`` below the gradients' scale the two agree
  (:data:`SCHEDULE_FREE_AGREEMENT`); with either of the first two they part (shown too);
- the state that grows with matrix sides (SOAP, Shampoo, Kron, CAME) measured on every
  built-in task equals the declared :class:`~tuner.plugin.optimizer.TensorState`, exactly;
- SAM is charged two function and two gradient evaluations per step;
- without pytorch_optimizer (its import made to fail in a subprocess) the rest of tuner works,
  the list says how to add these, and a study naming one says which package to install.
"""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import pytorch_optimizer as po
import torch
from test_evaluation_counts import TinyRegression, counted

from tuner.plugin.optimizer import optimizer_state_bytes
from tuner.plugin.registry import get_registry
from tuner.plugin.space import SpaceError
from tuner.training.loop import train
from tuner.training.steps import batches, optimizer_step
from tuner_plugins.optimizers._pytorch_optimizer import KRON_BALANCE_PROBABILITY

AGREEMENT = {"rtol": 1e-5, "atol": 1e-8}
"""How closely tuner's own Lion, Tiger, Schedule-Free and SAM follow pytorch_optimizer's (see
the module docstring)."""


def _mlp() -> tuple[list[torch.nn.Parameter], callable]:
    """A 6-12-3 MLP (matrices and vectors) and a full-batch loss on fixed data."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(48, 6, generator=generator)
    targets = torch.randn(48, 3, generator=generator)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.Tanh(),
                                    torch.nn.Linear(12, 3))

    def loss() -> torch.Tensor:
        return torch.nn.functional.mse_loss(model(inputs), targets)

    return list(model.parameters()), loss


def _run(build, steps: int, closure: bool = False, before_step=None) -> list[torch.Tensor]:
    params, loss = _mlp()
    optimizer = build(params)
    for _ in range(steps):
        if before_step is not None:
            before_step(optimizer)
        optimizer_step(optimizer, lambda _: loss(), needs_closure=closure)
    return [p.detach() for p in params]


# -- each plugin against pytorch_optimizer's class ------------------------------------------------

CONFIGS = {  # every value away from pytorch_optimizer's default
    "soap": {"lr": 2e-3, "beta1": 0.9, "beta2": 0.99, "weight_decay": 0.05,
             "precondition_frequency": 2},
    "shampoo": {"lr": 3e-2, "momentum": 0.5, "weight_decay": 1e-4, "matrix_eps": 1e-4,
                "preconditioning_compute_steps": 2},
    "kron": {"lr": 3e-3, "momentum": 0.8, "weight_decay": 0.05},
    "ademamix": {"lr": 2e-3, "beta1": 0.8, "beta2": 0.99, "beta3": 0.999, "alpha": 8.0,
                 "t_alpha_beta3": 4, "weight_decay": 0.1},
    "prodigy": {"lr": 0.8, "d_coef": 2.0, "beta1": 0.85, "beta2": 0.99, "weight_decay": 0.01,
                "safeguard_warmup": True, "bias_correction": True},
    "dadapt-adam": {"lr": 2.0, "beta1": 0.85, "beta2": 0.99, "weight_decay": 0.01,
                    "decoupled_weight_decay": True},
    "mars": {"lr": 6e-3, "gamma": 0.05, "beta1": 0.9, "beta2": 0.95, "weight_decay": 0.05},
    "came": {"lr": 1e-3, "beta1": 0.8, "beta2": 0.99, "beta3": 0.999, "weight_decay": 0.05},
    "adan": {"lr": 5e-3, "beta1": 0.9, "beta2": 0.8, "beta3": 0.95, "weight_decay": 0.05},
    "adopt": {"lr": 3e-3, "beta1": 0.8, "beta2": 0.999, "eps": 1e-5, "weight_decay": 0.01,
              "decoupled_weight_decay": True},
    "lamb": {"lr": 3e-3, "beta1": 0.8, "beta2": 0.99, "eps": 1e-5, "weight_decay": 0.05},
}

PER_TENSOR = {"foreach": False}
"""The path the plugins take on the CPU where pytorch_optimizer offers two (measured faster:
see ``tuner_plugins.optimizers._pytorch_optimizer``)."""

REFERENCES = {  # pytorch_optimizer's classes, built as their documentation names the arguments
    "soap": lambda p, c: po.SOAP(
        p, lr=c["lr"], betas=(c["beta1"], c["beta2"]), weight_decay=c["weight_decay"],
        precondition_frequency=c["precondition_frequency"]),
    "shampoo": lambda p, c: po.Shampoo(
        p, lr=c["lr"], momentum=c["momentum"], weight_decay=c["weight_decay"],
        matrix_eps=c["matrix_eps"],
        preconditioning_compute_steps=c["preconditioning_compute_steps"]),
    "kron": lambda p, c: po.Kron(
        p, lr=c["lr"], momentum=c["momentum"], weight_decay=c["weight_decay"]),
    "ademamix": lambda p, c: po.AdEMAMix(
        p, lr=c["lr"], betas=(c["beta1"], c["beta2"], c["beta3"]), alpha=c["alpha"],
        t_alpha_beta3=c["t_alpha_beta3"], weight_decay=c["weight_decay"],
        weight_decouple=True, **PER_TENSOR),
    "prodigy": lambda p, c: po.Prodigy(
        p, lr=c["lr"], d_coef=c["d_coef"], betas=(c["beta1"], c["beta2"]),
        weight_decay=c["weight_decay"], safeguard_warmup=True, bias_correction=True,
        **PER_TENSOR),
    "dadapt-adam": lambda p, c: po.DAdaptAdam(
        p, lr=c["lr"], betas=(c["beta1"], c["beta2"]), weight_decay=c["weight_decay"],
        weight_decouple=True, **PER_TENSOR),
    "mars": lambda p, c: po.MARS(
        p, lr=c["lr"], lr_1d=c["lr"] / 2, gamma=c["gamma"], betas=(c["beta1"], c["beta2"]),
        weight_decay=c["weight_decay"]),
    "came": lambda p, c: po.CAME(
        p, lr=c["lr"], betas=(c["beta1"], c["beta2"], c["beta3"]),
        weight_decay=c["weight_decay"], **PER_TENSOR),
    "adan": lambda p, c: po.Adan(
        p, lr=c["lr"], betas=(c["beta1"], c["beta2"], c["beta3"]),
        weight_decay=c["weight_decay"], **PER_TENSOR),
    "adopt": lambda p, c: po.ADOPT(
        p, lr=c["lr"], betas=(c["beta1"], c["beta2"]), eps=c["eps"],
        weight_decay=c["weight_decay"], weight_decouple=True, **PER_TENSOR),
    "lamb": lambda p, c: po.Lamb(
        p, lr=c["lr"], betas=(c["beta1"], c["beta2"]), eps=c["eps"],
        weight_decay=c["weight_decay"], **PER_TENSOR),
}


def test_every_plugin_of_the_extra_is_checked():
    assert set(CONFIGS) == set(REFERENCES) == {
        name for name, plugin in get_registry().optimizers.items()
        if plugin.plugin == "more_optimizers"
    }


def _kron_draws(optimizer) -> None:
    """Before each reference step: the rebalancing coin, drawn as the plugin's Kron draws it
    from the stream its probe vectors then continue."""
    coin = float(torch.rand(()))
    optimizer.balance_prob = 1.0 if coin < KRON_BALANCE_PROBABILITY else 0.0


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_each_plugin_steps_as_pytorch_optimizers_class(name):
    plugin = get_registry().optimizer(name)
    config = CONFIGS[name]
    assert plugin.space.complete(config) == config  # every parameter given, all accepted
    ours = _run(lambda params: plugin.create(params, config), steps=6)
    replay = _kron_draws if name == "kron" else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # Kron's own generator: seeded 0
        reference = _run(lambda params: REFERENCES[name](params, config), steps=6,
                         before_step=replay)
    start, _ = _mlp()
    assert any(not torch.equal(p, s) for p, s in zip(ours, start, strict=True))
    for mine, theirs in zip(ours, reference, strict=True):
        assert torch.equal(mine, theirs), name


def test_kron_repeats_exactly_and_leaves_the_global_generators_alone():
    plugin = get_registry().optimizer("kron")
    torch.manual_seed(5)
    np.random.seed(5)
    first = _run(lambda params: plugin.create(params, {}), steps=4)
    after = (torch.rand(3), np.random.random(3))
    torch.manual_seed(6)
    second = _run(lambda params: plugin.create(params, {}), steps=4)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    torch.manual_seed(5)  # the same draws follow as if no step had been taken
    np.random.seed(5)
    assert torch.equal(after[0], torch.rand(3))
    assert np.array_equal(after[1], np.random.random(3))


def test_the_learning_rate_free_optimizers_declare_a_multiplier():
    registry = get_registry()
    meanings = {name: registry.optimizer(name).lr_meaning for name in CONFIGS}
    assert {name for name, meaning in meanings.items() if meaning == "multiplier"} == {
        "prodigy", "dadapt-adam"}
    assert {meaning for meaning in meanings.values()} == {"multiplier", "step size"}
    assert registry.optimizer("prodigy").space["lr"].recommended == 1.0


# -- tuner's own, where pytorch_optimizer ships one too -------------------------------------------

OWN = {
    "lion": ({"lr": 1e-3, "beta1": 0.9, "beta2": 0.99, "weight_decay": 0.1},
             lambda p, c: po.Lion(p, lr=c["lr"], betas=(c["beta1"], c["beta2"]),
                                  weight_decay=c["weight_decay"])),
    "tiger": ({"lr": 1e-3, "beta": 0.945, "weight_decay": 0.01, "nan_guard": False},
              lambda p, c: po.Tiger(p, lr=c["lr"], beta=c["beta"],
                                    weight_decay=c["weight_decay"])),
}


@pytest.mark.parametrize("name", sorted(OWN))
def test_tuner_keeps_its_own_lion_and_tiger_and_they_agree_with_pytorch_optimizers(name):
    plugin = get_registry().optimizer(name)
    assert plugin.plugin != "more_optimizers"
    config, reference = OWN[name]
    config = plugin.space.complete(config)
    ours = _run(lambda params: plugin.create(params, config), steps=10)
    theirs = _run(lambda params: reference(params, config), steps=10)
    for mine, other in zip(ours, theirs, strict=True):
        torch.testing.assert_close(mine, other, **AGREEMENT)


SCHEDULE_FREE = {"lr": 5e-3, "betas": (0.9, 0.999), "weight_decay": 0.0, "warmup_steps": 3,
                 "r": 1.0, "weight_lr_power": 0.0, "eps": 1e-12}
"""Where tuner's and pytorch_optimizer's Schedule-Free AdamW compute the same thing (see the
module docstring): no weight decay, averaging weights without ``lr_max``, and an ``eps`` below
the gradients' scale (the plugin's 1e-8 sits at ``sqrt(v)`` in one and ``sqrt(v / (1 -
beta2^t))`` in the other: 2e-4 apart on this MLP's smallest gradients)."""

SCHEDULE_FREE_AGREEMENT = {"rtol": 1e-5, "atol": 1e-6}
"""The bias correction applied once to the learning rate (tuner) or to every element of the
second moment (pytorch_optimizer) rounds differently: measured 4.5e-7 at most after ten
steps on parameters of order 0.1-1."""


@pytest.mark.parametrize("evaluating", [False, True])
def test_tuner_keeps_its_own_schedule_free_and_it_agrees_with_pytorch_optimizers(evaluating):
    from tuner_plugins.optimizers.schedule_free import AdamWScheduleFree

    assert get_registry().optimizer("schedulefree-adamw").plugin == "schedule_free"
    ours = _schedule_free(AdamWScheduleFree, SCHEDULE_FREE, evaluating)
    theirs = _schedule_free(po.ScheduleFreeAdamW, SCHEDULE_FREE, evaluating)
    for mine, other in zip(ours, theirs, strict=True):
        torch.testing.assert_close(mine, other, **SCHEDULE_FREE_AGREEMENT)
    for part in ({"weight_lr_power": 2.0}, {"weight_decay": 0.05}):  # where the two part
        other = {**SCHEDULE_FREE, **part}
        ours = _schedule_free(AdamWScheduleFree, other, evaluating)
        theirs = _schedule_free(po.ScheduleFreeAdamW, other, evaluating)
        assert max(float((a - b).abs().max()) for a, b in zip(ours, theirs, strict=True)) > 1e-4


def _schedule_free(optimizer_class, config, evaluating: bool) -> list[torch.Tensor]:
    """Ten steps, then the training weights, or the averaged ones Schedule-Free evaluates at."""
    params, loss = _mlp()
    optimizer = optimizer_class(params, **config)
    for _ in range(10):
        optimizer_step(optimizer, lambda _: loss())
    if evaluating:
        optimizer.eval()
    return [p.detach().clone() for p in params]


def test_sam_agrees_with_pytorch_optimizers_sam():
    plugin = get_registry().optimizer("sam-momentum")
    config = plugin.space.complete({"lr": 0.05, "momentum": 0.9, "rho": 0.1})
    ours = _run(lambda params: plugin.create(params, config), steps=10, closure=True)

    def reference(params):
        return po.SAM(params, torch.optim.SGD, rho=config["rho"], lr=config["lr"],
                      momentum=config["momentum"])

    params, loss = _mlp()
    optimizer = reference(params)
    for _ in range(10):  # as pytorch_optimizer's documentation steps it: gradients first
        def closure():
            optimizer.zero_grad()
            value = loss()
            value.backward()
            return value

        closure()
        optimizer.step(closure)
    for mine, theirs in zip(ours, params, strict=True):
        torch.testing.assert_close(mine, theirs.detach(), **AGREEMENT)


def test_sam_is_charged_two_evaluations_per_step():
    task = counted(TinyRegression())
    result = train(task, "sam-momentum", {"lr": 0.01}, budget=5)
    assert result.status == "complete" and result.steps == 5
    assert (result.function_evals, result.gradient_evals) == (10, 10)
    assert (task.calls, task.gradients) == (10, 10)


def test_sam_wraps_only_optimizers_that_step_on_gradients():
    registry = get_registry()
    assert registry.optimizer("sam-adamw").needs_closure
    assert registry.optimizer("sam-adamw").build_batched is None
    for inner in ("lbfgs", "newton"):
        with pytest.raises(SpaceError, match=f"sam cannot wrap '{inner}'"):
            registry.optimizer(f"sam-{inner}")


# -- state that grows with the matrices' sides, on every task -------------------------------------

SIDE_STATES = ["soap", "shampoo", "kron", "came"]


@pytest.fixture
def one_thread():
    """One torch thread: these steps are small, and on a shared 2-core machine two threads
    wait on each other (SOAP's eigendecompositions on charlm: 0.1 s a step on one thread,
    2 s on two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("task_name", sorted(get_registry().tasks))
def test_state_growing_with_matrix_sides_is_measured_as_declared_on_each_task(
    task_name, one_thread
):
    registry = get_registry()
    task = registry.task(task_name)
    for name in SIDE_STATES:
        plugin = registry.optimizer(name)
        problem = task.build(0, torch.device("cpu"))
        params = [p for p in problem.model.parameters() if p.requires_grad]
        shapes = [tuple(p.shape) for p in params]
        if name == "shampoo" and max(side for shape in shapes for side in shape) > 4096:
            with pytest.raises(ValueError, match="above its limit of 4096"):
                plugin.create(params)
            continue
        optimizer = plugin.create(params)
        batch = next(batches(problem, task.batch_size, seed=0, task=task_name))
        loss_of = functools.partial(task.loss, problem.model)
        optimizer_step(optimizer, loss_of, batch)  # every state tensor is created on step 1
        param_bytes = sum(p.numel() * p.element_size() for p in params)
        measured = optimizer_state_bytes(optimizer) / param_bytes
        declared = plugin.state_multiple_at(
            sum(p.numel() for p in params), [(tuple(p.shape), "other") for p in params])
        assert measured == pytest.approx(declared, rel=1e-12), name


@pytest.mark.parametrize("name", ["lookahead-soap", "sam-soap", "lookahead-came"])
def test_wrappers_add_their_own_state_to_a_shape_state(name):
    from tuner import testing

    plugin = get_registry().optimizer(name)
    declared = testing.declared_state_multiple(plugin)
    inner = testing.declared_state_multiple(get_registry().optimizer(name.split("-", 1)[1]))
    assert declared == inner + (1 if name.startswith("lookahead") else 0)
    assert testing.measured_state_multiple(plugin) == pytest.approx(declared)


# -- without pytorch_optimizer --------------------------------------------------------------------

HIDE = '''
import sys


class HidePytorchOptimizer:
    """As if pytorch_optimizer were not installed: importing it fails as a missing one does."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "pytorch_optimizer":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, HidePytorchOptimizer())
'''

WITHOUT = '''
import json, sys
from click.testing import CliRunner
from tuner.cli import cli

db = sys.argv[1]
runs = {
    "list": ["optimizers", "list"],
    "list_json": ["optimizers", "list", "--json"],
    "create": ["study", "create", "s", "--task", "quadratic", "--optimizers", "adam,soap",
               "--trials", "2", "--seeds", "1", "--db", db],
    "train": ["train", "--task", "quadratic", "--optimizer", "prodigy"],
    "sam": ["train", "--task", "quadratic", "--optimizer", "sam-momentum", "--json"],
}
out = {}
for key, args in runs.items():
    result = CliRunner().invoke(cli, args)
    out[key] = {"code": result.exit_code, "output": result.output}
print(json.dumps(out))
'''


def test_without_pytorch_optimizer_the_rest_works_and_naming_one_says_what_to_install(
    tmp_path: Path,
):
    (tmp_path / "sitecustomize.py").write_text(textwrap.dedent(HIDE))
    script = tmp_path / "without.py"
    script.write_text(textwrap.dedent(WITHOUT))
    db = tmp_path / "store.db"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, str(script), f"sqlite:///{db}"], env=env,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])

    listing = out["list"]
    assert listing["code"] == 0
    rows = {line.split()[0] for line in listing["output"].splitlines() if line.strip()}
    assert {"adamw", "lion", "sam-<optimizer>"} <= rows and not {"soap", "prodigy"} & rows
    last = listing["output"].strip().splitlines()[-1]
    assert last == ("Not installed (the package 'pytorch_optimizer' is missing): "
                    + ", ".join(sorted(CONFIGS))
                    + '; to add: pip install "tuner[more-optimizers]"')
    listed = json.loads(out["list_json"]["output"])
    assert {entry["name"] for entry in listed["not_installed"]} == set(CONFIGS)
    assert "soap" not in {entry["name"] for entry in listed["optimizers"]}

    message = ("optimizer 'soap' needs the package 'pytorch_optimizer', which is not "
               'installed: pip install "tuner[more-optimizers]"')
    assert out["create"]["code"] != 0
    assert out["create"]["output"].strip() == f"Error: {message}"
    assert not db.exists()  # nothing written
    assert out["train"]["code"] != 0
    assert "'prodigy' needs the package 'pytorch_optimizer'" in out["train"]["output"]
    trained = json.loads(out["sam"]["output"])  # tuner's own SAM needs no extra package
    assert out["sam"]["code"] == 0 and trained["status"] == "complete"
    assert math.isfinite(trained["final_metric"])
