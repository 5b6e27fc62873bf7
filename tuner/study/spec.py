"""Study definitions: read a study file (TOML) and command-line flags, check every part of them.

A study file names a task, the optimizers to compare and the tuning budget each one gets::

    task = "digits-mlp"
    optimizers = ["adam", "adamw", "sgd", "lion"]
    trials = 20          # Optuna trials per optimizer
    seeds = 3            # training runs (seeds 0..2) per trial; the trial's value is their mean
    first_seed = 0       # the first training seed (seeds first_seed .. first_seed + seeds - 1)
    sampler = "tpe"      # tpe, random, qmc or grid
    pruner = "median"    # none, median, hyperband or wilcoxon
    budget = 600         # optimizer steps per run (default: the task's own budget)
    schedule = "cosine"  # learning-rate schedule of every run (default: the training loop's)
    seed = 0             # seed of the sampler
    batch = 4            # trials of one optimizer a worker trains together (--batch)
    threads = 2          # torch threads of every run (--threads; default: chosen per run)

    [ranges]             # narrower or wider ranges than the plugins declare
    lr = [1e-4, 1e-1]    # every optimizer that has an ``lr``
    sgd.lr = [1e-3, 1.0] # only sgd
    momentum.momentum = 0.9  # a fixed value (the same as [0.9, 0.9])

    [training]           # training options, fixed or tuned (tuner.study.training)
    warmup = 100
    batch_size = [16, 256]

    [task_params]        # the task's own parameters (tuner.task.params)
    width = 256

A ``[sweep]`` table with one task parameter and a list of values (``width = [32, 64, 128]``)
makes one study per value, each named ``NAME-width32`` and so on, with the same optimizers,
trials, seeds and budget: the equal-budget studies that advice across model sizes fits
(``tuner advise --width``). :func:`sweep` expands it.

A range whose low equals its high fixes the parameter at that value (``--param-range
lr=0.1:0.1``; in the file ``lr = [0.1, 0.1]`` or ``lr = 0.1``). An optimizer whose every
parameter is fixed has nothing to tune: it runs one trial (:meth:`StudySpec.trials_for`), not
``trials`` copies of the same one.

``tuner study extend`` adds to a study after it was created: more trials of some optimizers
(:attr:`StudySpec.extra_trials`; ``trials`` stays the base from which the sampler's and pruner's
start-up settings derive) and *seed slots* (:attr:`StudySpec.seed_slots`), each of which trains a
given configuration on given new seeds. Trial slots are numbered 0, 1, ...; an optimizer's i-th
seed slot is slot ``-(i + 1)`` (:meth:`StudySpec.slots`).

Command-line flags override the file. This module reads and checks what needs no plugin (a study
file's keys and types, the study name, a schedule, the syntax of a range);
:func:`tuner.driver.resolve.resolve` merges flags over a file and checks everything, the counts
and the task, optimizer and range against the installed plugins included, and returns a
:class:`StudySpec` whose search spaces are final. Nothing in this module loads a plugin.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuner.errors import TunerError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SAMPLERS = ("tpe", "random", "qmc", "grid")
PRUNERS = ("none", "median", "hyperband", "wilcoxon")
STUDY_KEYS = (
    "name", "task", "optimizers", "trials", "seeds", "sampler", "pruner", "budget", "schedule",
    "seed", "ranges", "description", "training", "task_params", "budget_unit", "sweep", "batch",
    "first_seed", "threads",
)
_STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
LIMITS = {
    "trials": (1, 100_000),
    "seeds": (1, 1_000),
    "budget": (1, 2**31 - 1),
    "seed": (0, 2**31 - 1),
    "batch": (1, 4096),
    "first_seed": (0, 2**31 - 1),
    "threads": (1, 4096),
}
"""(least, most) of each whole-number setting: every value fits the store's 32-bit columns."""


class StudyFileError(TunerError, ValueError):
    """A study file or a study flag that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class RangeOverride:
    """A replaced range: ``optimizer`` None means every optimizer that has ``param``."""

    optimizer: str | None
    param: str
    low: float
    high: float

    @property
    def label(self) -> str:
        where = f"{self.optimizer}.{self.param}" if self.optimizer else self.param
        if self.low == self.high:
            return f"{where}={self.low:g}"
        return f"{where}={self.low:g}:{self.high:g}"


@dataclass
class StudySpec:
    """A checked study definition: what ``tuner study create`` writes to the store.

    ``ranges`` maps each optimizer to the ranges that differ from its plugin's declaration, as
    ``{param: [low, high]}``; the driver rebuilds the effective search space from them and the
    plugin (:func:`tuner.driver.context.optimizer_space`): a spec names plugins, it never loads
    one, so the store and advice read and write specs without the plugins.
    """

    name: str
    task: str
    optimizers: list[str]
    trials: int
    seeds: int
    sampler: str = "tpe"
    pruner: str = "median"
    budget: int | None = None
    schedule: str | None = None
    seed: int = 0
    ranges: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    description: str = ""
    initial_configs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Per optimizer, the configurations of its first slots, in order: ``{"params": {...},
    "origin": "warm_start" | "recommended"}``; the slots after them are sampled."""
    space_hashes: dict[str, str] = field(default_factory=dict)
    """Per optimizer, the fingerprint of its search space when the study was created."""
    fixed: list[str] = field(default_factory=list)
    """The optimizers whose whole search space is fixed: each runs one trial."""
    task_ref: str | None = None
    """The task's reference (``/abs/path/file.py:Name`` or ``module:Name``) when it was given
    by reference; None for a plugin's task."""
    task_hash: str | None = None
    """SHA-256 of the referenced source file when the study was created."""
    task_params: dict[str, Any] = field(default_factory=dict)
    """The task parameters the study set (``task`` is then the identity ``base[k=v]``)."""
    training: dict[str, Any] = field(default_factory=dict)
    """Training options: fixed values, or ``{"range": [lo, hi]}`` / ``{"choices": [...]}`` for
    tuned ones (:mod:`tuner.study.training`)."""
    budget_unit: str = "examples"
    """With a tuned batch size: ``examples`` (equal examples per run) or ``steps``."""
    batch: int | None = None
    """How many trials of one optimizer a worker trains together (``--batch`` overrides it);
    how runs are carried out, not what they give (:mod:`tuner.driver.batch`)."""
    threads: int | None = None
    """The torch threads of every run (``--threads`` overrides it); None: each run chooses from
    its step's cost (:mod:`tuner.training.threads`). How runs are carried out, not what they
    give."""
    first_seed: int = 0
    """The first training seed: every trial trains on seeds ``first_seed .. first_seed +
    seeds - 1`` (stored as the ``seeds`` column's list)."""
    extra_trials: dict[str, int] = field(default_factory=dict)
    """Per optimizer, the trials added after creation (``tuner study extend``)."""
    seed_slots: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Per optimizer, its seed slots in order: ``{"params": {...}, "seeds": [...],
    "config_hash": ...}``, each one a configuration (its trial's parameters, tuned training
    options included) to train on seeds it does not have yet."""
    id: int | None = None
    """The study's id in the store (None until it is written)."""
    status: str = "created"

    @property
    def seed_list(self) -> list[int]:
        """The training seeds of every trial: first_seed .. first_seed + seeds - 1."""
        return list(range(self.first_seed, self.first_seed + self.seeds))

    def trials_for(self, optimizer: str) -> int:
        """The trials ``optimizer`` runs: one when its whole space is fixed, else ``trials``
        and those added to it since."""
        if optimizer in self.fixed:
            return 1
        return self.trials + int(self.extra_trials.get(optimizer, 0))

    def slots(self, optimizer: str) -> list[int]:
        """Every slot of ``optimizer``: its trial slots 0 .. trials_for - 1, then its seed
        slots -1, -2, ..."""
        count = len(self.seed_slots.get(optimizer, ()))
        return [*range(self.trials_for(optimizer)), *(-(i + 1) for i in range(count))]

    def seed_slot(self, optimizer: str, slot: int) -> dict[str, Any]:
        """The seed slot numbered ``slot`` (negative) of ``optimizer``."""
        return self.seed_slots[optimizer][-slot - 1]

    def slot_seeds(self, optimizer: str, slot: int) -> list[int]:
        """The training seeds of a slot: the study's for a trial slot, its own for a seed
        slot."""
        if slot >= 0:
            return self.seed_list
        return [int(seed) for seed in self.seed_slot(optimizer, slot)["seeds"]]

    def options(self) -> dict[str, Any]:
        """The options stored with the study (``tuner_studies.options``)."""
        return {
            "budget": self.budget, "schedule": self.schedule, "seed": self.seed,
            "description": self.description, "initial_configs": self.initial_configs,
            "space_hashes": self.space_hashes, "fixed": self.fixed,
            "task_ref": self.task_ref, "task_hash": self.task_hash,
            "task_params": self.task_params, "training": self.training,
            "budget_unit": self.budget_unit, "batch": self.batch, "threads": self.threads,
            "extra_trials": self.extra_trials, "seed_slots": self.seed_slots,
        }


def apply_ranges(space: Any, ranges: Mapping[str, Iterable[float]], owner: str) -> Any:
    """``space`` with each ``{param: (low, high)}`` of ``ranges`` put in place."""
    for param, (low, high) in ranges.items():
        space = space.with_range(param, low, high, owner=owner)
    return space


def load_study_file(path: str | Path) -> dict[str, Any]:
    """The raw settings of a study file: TOML, with only the keys a study has.

    Raises :class:`StudyFileError` (one line, naming the file) when the file is missing, is not
    TOML, or has an unknown key or a value of the wrong type.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise StudyFileError(f"cannot read study file {path}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise StudyFileError(
            f"study file {path} is not UTF-8 text (byte {error.start}: {error.reason})"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise StudyFileError(f"study file {path} is not valid TOML: {error}") from None
    unknown = sorted(set(data) - set(STUDY_KEYS))
    if unknown:
        raise StudyFileError(
            f"study file {path}: unknown key {unknown[0]!r}; the keys are: {', '.join(STUDY_KEYS)}"
        )
    expected: dict[str, tuple[type, ...]] = {
        "name": (str,), "task": (str,), "optimizers": (list, str), "trials": (int,),
        "seeds": (int,), "sampler": (str,), "pruner": (str,), "budget": (int,),
        "schedule": (str,), "seed": (int,), "ranges": (dict,), "description": (str,),
        "training": (dict,), "task_params": (dict,), "budget_unit": (str,), "sweep": (dict,),
        "batch": (int,), "first_seed": (int,), "threads": (int,),
    }
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, expected[key]):
            kinds = " or ".join(_TYPE_WORDS[t] for t in expected[key])
            raise StudyFileError(f"study file {path}: {key!r} must be {kinds}, got {value!r}")
    if isinstance(data.get("optimizers"), list) and not all(
        isinstance(name, str) for name in data["optimizers"]
    ):
        raise StudyFileError(f"study file {path}: 'optimizers' must be a list of names")
    if "ranges" in data:
        data["ranges"] = _ranges_from_table(data["ranges"], str(path))
    if "task" in data:
        data["task"] = _relative_to(data["task"], path.parent)
    if "training" in data:
        from tuner.study.training import from_file_value

        data["training"] = {k: from_file_value(v) for k, v in data["training"].items()}
    return data


def sweep(settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The settings of each study of a sweep: ``settings`` without ``sweep``, once per value
    of its task parameter, named ``{name}-{param}{value}`` with that value among the task
    parameters; ``[settings]`` when there is no sweep."""
    table = settings.get("sweep")
    if not table:
        return [dict(settings)]
    if len(table) != 1:
        raise StudyFileError(f"a sweep varies one task parameter, got: {', '.join(table)}")
    (param, values), = table.items()
    distinct = isinstance(values, list) and len(set(map(str, values))) == len(values)
    if not distinct or len(values) < 2:
        raise StudyFileError(
            f"sweep {param}: give a list of two or more different values, got {values!r}"
        )
    name = settings.get("name")
    if not name:
        raise StudyFileError("give the sweep a name (name = ... in the study file)")
    studies = []
    for value in values:
        one = {key: item for key, item in settings.items() if key != "sweep"}
        one["name"] = f"{name}-{param}{value}"
        one["task_params"] = {**(settings.get("task_params") or {}), param: value}
        studies.append(one)
    return studies


def _relative_to(task: str, folder: Path) -> str:
    """A task reference to a relative ``file.py`` in a study file names a file beside it."""
    source, colon, attribute = task.rpartition(":")
    if not colon or not (source.endswith(".py") or "/" in source):
        return task
    return f"{folder / Path(source).expanduser()}:{attribute}"


_TYPE_WORDS = {str: "a string", int: "a whole number", list: "a list", dict: "a table"}


def _ranges_from_table(table: Mapping[str, Any], where: str) -> list[RangeOverride]:
    """``{lr = [a, b], sgd = {lr = [a, b]}}`` -> overrides (a sub-table names an optimizer)."""
    found = []
    for key, value in table.items():
        if isinstance(value, dict):
            for param, bounds in value.items():
                found.append(_range(key, param, bounds, where))
        else:
            found.append(_range(None, key, value, where))
    return found


def _range(optimizer: str | None, param: str, bounds: Any, where: str) -> RangeOverride:
    label = f"{optimizer}.{param}" if optimizer else param
    if isinstance(bounds, (int, float)) and not isinstance(bounds, bool):
        bounds = [bounds, bounds]  # a fixed value
    if (
        not isinstance(bounds, list) or len(bounds) != 2
        or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
    ):
        raise StudyFileError(
            f"{where}: range {label} must be [low, high] or a fixed value, got {bounds!r}"
        )
    return RangeOverride(optimizer, param, float(bounds[0]), float(bounds[1]))


def parse_range_flag(text: str) -> RangeOverride:
    """``lr=1e-4:1e-1`` or ``adamw.lr=1e-4:1e-1`` -> a :class:`RangeOverride`; ``lr=0.1:0.1``
    fixes the parameter at 0.1."""
    target, sep, bounds = text.partition("=")
    low_text, colon, high_text = bounds.partition(":")
    if not sep or not colon or not target.strip():
        raise StudyFileError(
            f"--param-range {text!r}: expected PARAM=LOW:HIGH or OPTIMIZER.PARAM=LOW:HIGH"
        )
    optimizer, dot, param = target.strip().rpartition(".")
    try:
        low, high = float(low_text), float(high_text)
    except ValueError:
        raise StudyFileError(f"--param-range {text!r}: LOW and HIGH must be numbers") from None
    return RangeOverride(optimizer if dot else None, param, low, high)


def check_study_name(name: str) -> None:
    """Study names go into Optuna study names (``tuner/<study>/<optimizer>``): keep them plain."""
    if not isinstance(name, str) or not _STUDY_NAME.fullmatch(name):
        raise StudyFileError(
            f"study name {name!r} must start with a letter or digit and use only letters, "
            "digits, '_', '.' and '-' (at most 100 characters)"
        )


def check_schedule(schedule: str) -> None:
    """Check a learning-rate schedule name against the training loop's list."""
    from tuner.training.options import SCHEDULES as known

    if schedule not in known:
        raise StudyFileError(
            f"unknown schedule {schedule!r}; choose from: {', '.join(known)}"
        )
