"""Evaluation counts: what the loop counts, checked against counts taken independently.

Each run trains a task whose ``loss`` counts its own calls (function evaluations) and whose
parameters carry a tensor hook that fires whenever a gradient with respect to them is computed
(gradient evaluations): neither goes through the loop's counter. The counts are then stored with
the run (migration 0007) on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json

import pytest
import torch
from alembic import command
from click.testing import CliRunner
from sqlalchemy import inspect, select, text
from test_migrations import populated_at_first_revision

from tuner.cli import cli
from tuner.plugin.registry import get_registry
from tuner.store import open_store, record_run, upgrade
from tuner.store.database import alembic_config, make_engine
from tuner.store.models import Run
from tuner.task.contract import Problem, Task
from tuner.training.loop import train
from tuner_plugins.optimizers._flat_optimizer import FlatOptimizer

COUNT_COLUMNS = ("function_evals", "gradient_evals", "hessian_evals")


def counted(task: Task) -> Task:
    """A copy of ``task`` that counts its loss calls and the gradients taken of its model."""

    class Counted(type(task)):
        calls = 0
        gradients = 0

        def build(self, seed: int, device: torch.device) -> Problem:
            problem = super().build(seed, device)
            for parameter in problem.model.parameters():
                parameter.register_hook(self._gradient_taken)
            return problem

        def _gradient_taken(self, grad: torch.Tensor) -> None:
            type(self).gradients += 1

        def loss(self, model: torch.nn.Module, batch: tuple) -> torch.Tensor:
            type(self).calls += 1
            return super().loss(model, batch)

    copy = Counted()
    copy.plugin, copy.version = task.plugin, task.version
    return copy


def _counts(result) -> tuple[int, int, int]:
    return result.function_evals, result.gradient_evals, result.hessian_evals


class TinyRegression(Task):
    """A linear regression on 16 examples in mini-batches of 4: one parameter tensor."""

    name = "tiny-regression"
    summary = "linear regression, mini-batches"
    kind = "convex"
    metric = "loss"
    direction = "minimize"
    target = 0.0
    budget = 5
    eval_every = 5
    batch_size = 4

    def build(self, seed: int, device: torch.device) -> Problem:
        inputs = torch.randn(16, 3, generator=torch.Generator().manual_seed(0))
        model = torch.nn.Linear(3, 1, bias=False)
        return Problem(model, (inputs, inputs.sum(1, keepdim=True)), (inputs,))

    def loss(self, model: torch.nn.Module, batch: tuple) -> torch.Tensor:
        inputs, targets = batch
        return torch.nn.functional.mse_loss(model(inputs), targets)

    def evaluate(self, model: torch.nn.Module, problem: Problem) -> float:
        return float(model.weight.sum())


def test_a_full_batch_first_order_run_counts_one_evaluation_of_each_per_step():
    task = counted(get_registry().task("quadratic"))
    result = train(task, "momentum", {"lr": 0.01}, budget=23)
    assert result.steps == 23
    assert _counts(result) == (23, 23, 0)
    assert (task.calls, task.gradients) == (23, 23)  # the metric's own calls are not losses


def test_accumulated_mini_batches_count_each_batch():
    task = counted(TinyRegression())
    result = train(task, "sgd", budget=5, accumulate=2)
    assert _counts(result) == (10, 10, 0) == (task.calls, task.gradients, 0)


def test_lbfgs_is_charged_for_its_inner_iterations():
    task = counted(get_registry().task("rosenbrock"))
    result = train(task, "lbfgs", budget=3, eval_every=3)
    assert result.steps == 3
    assert result.function_evals == task.calls == result.gradient_evals == task.gradients
    assert result.function_evals > 3 * 5  # many closure calls per step, every one counted
    assert result.hessian_evals == 0


def test_a_bfgs_run_counts_the_closure_calls_of_its_line_search(monkeypatch):
    searched = []
    original = FlatOptimizer.searcher

    def counting_searcher(self, objective, x, direction):
        phi = original(self, objective, x, direction)

        def counted_phi(step):
            searched.append(step)
            return phi(step)

        return counted_phi

    monkeypatch.setattr(FlatOptimizer, "searcher", counting_searcher)
    task = counted(get_registry().task("rosenbrock"))
    result = train(task, "bfgs", budget=30, eval_every=30)
    assert result.status == "complete"
    # the start point's evaluation, then only line-search points (each step reuses the last)
    assert result.function_evals == task.calls == 1 + len(searched)
    assert result.gradient_evals == task.gradients == 1 + len(searched)
    assert len(searched) > 30 and result.hessian_evals == 0


def test_newton_counts_one_hessian_per_step_and_values_in_its_backtracking():
    task = counted(get_registry().task("rosenbrock"))
    result = train(task, "newton", budget=6, eval_every=6)
    assert result.hessian_evals == 6
    # each step: one loss with its gradient and Hessian, then values only while backtracking
    assert result.function_evals == task.calls > result.gradient_evals == 6


def test_the_counts_are_stored_with_the_run(database_url):
    result = train("rosenbrock", "cg", budget=20, eval_every=20)
    assert result.function_evals > 20
    store = open_store(database_url)
    try:
        run_id = record_run(store, None, result)
        with store.engine.connect() as connection:
            row = connection.execute(
                select(*(getattr(Run, name) for name in COUNT_COLUMNS)).where(Run.id == run_id)
            ).one()
    finally:
        store.dispose()
    assert tuple(row) == _counts(result)


def _count_columns(url: str) -> tuple[set[str], list[tuple]]:
    engine = make_engine(url)
    with engine.connect() as connection:
        names = {c["name"] for c in inspect(connection).get_columns("tuner_runs")}
        rows = connection.execute(text("SELECT id, status, steps FROM tuner_runs ORDER BY id"))
        rows = [tuple(r) for r in rows]
        if set(COUNT_COLUMNS) <= names:
            nulls = connection.execute(text(
                "SELECT count(*) FROM tuner_runs WHERE function_evals IS NULL AND"
                " gradient_evals IS NULL AND hessian_evals IS NULL"
            )).scalar()
            rows.append(("unrecorded", nulls))
    engine.dispose()
    return names, rows


def test_a_populated_0006_store_upgrades_to_0007_with_the_counts_unrecorded(database_url):
    populated_at_first_revision(database_url)
    upgrade(database_url, "0006")
    names, before = _count_columns(database_url)
    assert not names & set(COUNT_COLUMNS) and len(before) == 2
    assert upgrade(database_url, "0007") == ("0006", "0007")
    names, after = _count_columns(database_url)
    assert set(COUNT_COLUMNS) <= names
    assert after == [*before, ("unrecorded", 2)]  # the old runs stay, their counts NULL

    engine = make_engine(database_url)
    with engine.connect() as connection:
        command.downgrade(alembic_config(connection), "0006")
        connection.commit()
    engine.dispose()
    names, down = _count_columns(database_url)
    assert not names & set(COUNT_COLUMNS) and down == before


@pytest.mark.parametrize("name", ["newton", "bfgs", "dfp", "cg"])
def test_the_second_order_runs_report_their_counts_in_tuner_train_json(name):
    result = CliRunner().invoke(
        cli, ["train", "--task", "quadratic", "--optimizer", name, "--budget", "3", "--json"],
        catch_exceptions=False,
    )
    run = json.loads(result.output)
    assert run["function_evals"] >= 3 and run["gradient_evals"] >= 1
    assert run["hessian_evals"] == (3 if name == "newton" else 0)
