"""Claiming a slot: decide its configuration, create its Optuna trial, insert the claim row.

A fresh configuration is drawn for one slot only, with that slot's sampler seed: if another
worker wins the slot meanwhile, the draw is given up (its Optuna trial failed as
``unclaimed``) and the next free slot gets a draw of its own. So two slots never train one
drawn configuration, however many workers race for them. A seed slot (``tuner study extend``)
is claimed the same way, as an Optuna trial with its configuration's fixed parameters; its value
told to Optuna is the mean over its own seeds, a further measurement of that configuration.
"""

from __future__ import annotations

import os
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tuner.driver import optuna_adapter
from tuner.driver.context import StudyContext
from tuner.driver.grid import grid_config
from tuner.driver.policy import (
    SlotAttempt,
    choices_to_spread,
    free_slots,
    plan_slot,
    settled,
)
from tuner.store.claims import database_now, failed_runs_per_slot, insert_claim, slot_rows
from tuner.store.retry import retrying


@dataclass
class Claim:
    """A slot this worker holds: its trial row, and the Optuna trial running it."""

    optimizer: str
    slot: int
    row_id: int
    trial: Any
    study: Any
    earlier: list[int]
    params: dict[str, Any]
    seeds: list[int]
    """The training seeds of the slot (the study's, or a seed slot's own)."""

    @property
    def adds_seeds(self) -> bool:
        """Whether it is a seed slot: new seeds of a measured configuration, never pruned."""
        return self.slot < 0


class Claimer:
    """Claims the study's free slots one at a time for one worker."""

    def __init__(self, context: StudyContext) -> None:
        self.context = context
        self.host = socket.gethostname()[:255]
        self.pid = os.getpid()

    def _attempts(self) -> tuple[list[Any], list[SlotAttempt], Any]:
        rows = slot_rows(self.context.store, self.context.spec.id)
        attempts = [SlotAttempt(r.optimizer, r.slot, r.status, r.params, r.counted)
                    for r in rows]
        failed = failed_runs_per_slot(self.context.store, self.context.spec.id) if any(
            r.status == "failed" for r in rows) else Counter()
        return rows, attempts, failed

    def settled(self) -> bool:
        """Whether nothing is left to run (every slot finished or given up)."""
        _, attempts, failed = self._attempts()
        return settled(self.context.spec, attempts, failed)

    def claim(self, only: str | None = None, trial_slots_only: bool = False) -> Claim | None:
        """Claim the first free slot (of optimizer ``only`` if given; a trial slot if
        ``trial_slots_only``); None when no slot is free (others may hold them)."""
        rows, attempts, failed = self._attempts()
        for optimizer, slot in free_slots(self.context.spec, attempts, failed, only,
                                          trial_slots_only):
            earlier = [r for r in rows if r.optimizer == optimizer and r.slot == slot]
            claim = self._try(optimizer, slot, earlier)
            if claim is not None:
                return claim
        return None

    def claim_batch(self, most: int, batchable: Callable[[str], bool]) -> list[Claim]:
        """Claim the first free slot, then up to ``most - 1`` more free trial slots of its
        optimizer when ``batchable(optimizer)`` (each one claimed alone, as :meth:`claim`
        does); an empty list when no slot is free. A seed slot, whose seeds are its own, is
        trained alone."""
        first = self.claim()
        if first is None:
            return []
        claims = [first]
        if not first.adds_seeds and batchable(first.optimizer):
            while len(claims) < most:
                more = self.claim(first.optimizer, trial_slots_only=True)
                if more is None:
                    break
                claims.append(more)
        return claims

    def _try(self, optimizer: str, slot: int, earlier: list[Any]) -> Claim | None:
        context, spec = self.context, self.context.spec
        space = context.spaces[optimizer]
        plan = plan_slot(
            spec, optimizer, slot,
            [SlotAttempt(r.optimizer, r.slot, r.status, r.params) for r in earlier],
            grid=lambda index: grid_config(space, spec.trials, spec.seed, index),
            choices=choices_to_spread(space),
        )
        study = context.studies[optimizer]
        seeds = spec.slot_seeds(optimizer, slot)
        attrs = {"slot": slot, "origin": plan.origin, **({"retry": True} if earlier else {}),
                 **({"seeds": seeds} if slot < 0 else {})}
        now = database_now(context.store)  # the database's clock, not this host's
        if plan.params is None:  # start-up settings from the base trials, however extended
            sampler = optuna_adapter.make_sampler(spec.sampler, spec.seed, optimizer, slot,
                                                  spec.trials)
            trial = optuna_adapter.new_trial(study, sampler=sampler, started=now,
                                             fixed_params=plan.pinned or None, user_attrs=attrs)
        else:
            trial = optuna_adapter.new_trial(study, started=now, fixed_params=plan.params,
                                             user_attrs=attrs)
        # drawn before the claim: the row is written once
        params = retrying(lambda: space.suggest(trial))
        row_id = insert_claim(context.store, {
            "study_id": spec.id, "optimizer": optimizer,
            "optuna_study_name": optuna_adapter.study_name(spec.name, optimizer),
            "optuna_trial_number": trial.number,
            "optuna_trial_id": optuna_adapter.trial_id(trial), "params": params,
            "started_at": now, "heartbeat_at": now, "worker_host": self.host,
            "worker_pid": self.pid, "slot": slot, "origin": plan.origin,
        })
        if row_id is None:
            optuna_adapter.fail_trial(study, optuna_adapter.trial_id(trial), note="unclaimed")
            return None
        return Claim(optimizer, slot, row_id, trial, study, [r.id for r in earlier], params,
                     seeds)

