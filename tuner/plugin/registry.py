"""The plugin manager: loads every plugin of the ``tuner`` entry-point group, once and lazily.

tuner's own optimizers and tasks are listed in its ``pyproject.toml`` under that group, so they
load exactly as a third-party plugin does. Two environment switches help with a broken install:

- ``TUNER_PLUGINS=name1,name2`` loads only the named entry points;
- ``TUNER_TRACE_PLUGINS=1`` prints each hook call and what it registered to stderr.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

import tuner.plugin.hookspecs as hookspecs
from tuner.errors import (
    NotInstalledError,
    PluginError,
    TunerError,
    UnknownNameError,
    describe_exception,
    first_line,
)
from tuner.plugin.optimizer import OptimizerPlugin, OptimizerWrapper
from tuner.plugin.space import SpaceError
from tuner.task.contract import Task

ENTRY_POINT_GROUP = "tuner"
BUILTIN_DISTRIBUTION = "tuner"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@dataclass
class PluginInfo:
    """One loaded plugin: its entry point, the package that ships it, the hooks it implements."""

    name: str
    module: str
    distribution: str
    version: str
    hooks: list[str]
    builtin: bool

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "module": self.module, "package": self.distribution,
            "version": self.version, "hooks": self.hooks, "builtin": self.builtin,
        }


@dataclass
class Registry:
    """Everything the plugins registered, by name.

    ``not_installed`` holds the optimizers whose package (their ``requires``) is missing here:
    they are not offered, and asking for one by name says what to install.
    """

    plugins: list[PluginInfo] = field(default_factory=list)
    optimizers: dict[str, OptimizerPlugin] = field(default_factory=dict)
    wrappers: dict[str, OptimizerWrapper] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    not_installed: dict[str, OptimizerPlugin] = field(default_factory=dict)

    def optimizer(self, name: str) -> OptimizerPlugin:
        """The optimizer called ``name``; ``WRAPPER-INNER`` builds a wrapped one on demand."""
        if name in self.optimizers:
            return self.optimizers[name]
        missing = self.not_installed.get(name)
        if missing is not None:
            raise NotInstalledError(missing.requires.message(f"optimizer {name!r}"))
        prefix, sep, inner = name.partition("-")
        if sep and prefix in self.wrappers and inner:
            wrapper = self.wrappers[prefix]
            inner_plugin = self.optimizer(inner)
            try:
                plugin = wrapper.wrap(inner_plugin)
            except TunerError:
                raise
            except Exception as error:
                raise PluginError(
                    f"plugin {wrapper.plugin!r}: wrapping {inner!r} in {prefix!r} raised "
                    f"{describe_exception(error)}"
                ) from error
            plugin.space.validate(f"plugin {wrapper.plugin!r}: optimizer {plugin.name!r}")
            return replace(plugin, plugin=wrapper.plugin, version=wrapper.version)
        names = sorted(self.optimizers) + [f"{w}-<optimizer>" for w in sorted(self.wrappers)]
        raise UnknownNameError(f"unknown optimizer {name!r}; {_choices('optimizer', names)}")

    def task(self, name: str) -> Task:
        """The task called ``name``, or the one a reference (``file.py:Name``,
        ``module:Name``) names (:mod:`tuner.task.reference`); ``name[key=value,...]`` sets its
        parameters (:mod:`tuner.task.params`)."""
        if name in self.tasks:
            return self.tasks[name]
        from tuner.task.params import split_identity

        base, values = split_identity(name)
        if values:  # ``digits-mlp[width=256]``: the task with those parameters
            return self.task(base).with_params(values)
        if ":" in name:
            from tuner.task.reference import load_reference

            return load_reference(name, self)
        raise UnknownNameError(self._unknown_task(name))

    def _unknown_task(self, name: str) -> str:
        """``unknown task 'x'; choose from: ...`` and how a task of one's own is named; for a
        file or a module without its ``:NAME``, the names it could take."""
        from tuner.task.hints import reference_hint
        from tuner.task.loading import REFERENCE_FORMS

        hint = reference_hint(name)
        if hint is not None:
            return (f"unknown task {name!r} (a task in a file or a module is named "
                    f"{REFERENCE_FORMS}); {hint}")
        return (f"unknown task {name!r}; {_choices('task', sorted(self.tasks))}; or a task of "
                f"your own: {REFERENCE_FORMS}")


def _choices(kind: str, names: list[str]) -> str:
    """``choose from: a, b``, or why there is nothing to choose from."""
    if names:
        return "choose from: " + ", ".join(names)
    only = os.environ.get("TUNER_PLUGINS")
    hint = f" (TUNER_PLUGINS={only} loads only those plugins)" if only else ""
    return f"no {kind} is registered by the loaded plugins{hint}"


_registry: Registry | None = None


def get_registry() -> Registry:
    """The registry, loading the plugins on first use."""
    global _registry
    if _registry is None:
        _registry = load_plugins()
    return _registry


def reset() -> None:
    """Forget the loaded plugins (tests that install a plugin call this)."""
    global _registry
    _registry = None


def _selected(points: list[EntryPoint]) -> list[EntryPoint]:
    """The entry points ``TUNER_PLUGINS`` names (all when it is unset); an unknown name is an
    error that lists the installed plugins."""
    only = os.environ.get("TUNER_PLUGINS")
    if not only:
        return points
    wanted = {name.strip() for name in only.split(",") if name.strip()}
    installed = sorted({ep.name for ep in points})
    unknown = sorted(wanted - set(installed))
    if unknown or not wanted:
        problem = (
            f"names {', '.join(repr(name) for name in unknown)}, "
            + ("which is not installed" if len(unknown) == 1 else "which are not installed")
            if unknown else "is set but names no plugin"
        )
        raise PluginError(
            f"TUNER_PLUGINS {problem}; the installed plugins are: "
            + (", ".join(installed) or "none")
        )
    return [ep for ep in points if ep.name in wanted]


def load_plugins() -> Registry:
    """Import every entry point of the group, check its hooks and collect what it registers.

    Raises :class:`PluginError` with the plugin's name on the first problem.
    """
    manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
    manager.add_hookspecs(hookspecs)
    registry = Registry()
    trace = bool(os.environ.get("TUNER_TRACE_PLUGINS"))
    points = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
    seen: set[str] = set()
    for point in _selected(points):
        if point.name in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add(point.name)
        try:
            module = point.load()
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # any import failure, SystemExit included, by name
            raise PluginError(
                f"plugin {point.name!r} ({point.value}) failed to import: "
                f"{describe_exception(error)}"
            ) from error
        try:
            manager.register(module, name=point.name)
        except (pluggy.PluginValidationError, ValueError) as error:
            raise PluginError(f"plugin {point.name!r}: {first_line(str(error))}") from error
        dist = point.dist
        registry.plugins.append(
            PluginInfo(
                name=point.name,
                module=point.value,
                distribution=dist.name if dist else "?",
                version=dist.version if dist else "?",
                hooks=sorted(
                    caller.name for caller in manager.get_hookcallers(module) or []
                ),
                builtin=bool(dist) and dist.name == BUILTIN_DISTRIBUTION,
            )
        )
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as error:
        name = manager.get_name(error.plugin) or error.plugin
        detail = first_line(str(error).split(" in plugin ")[0])
        hooks = ", ".join(sorted(n for n in dir(manager.hook) if n.startswith("register_")))
        raise PluginError(f"plugin {name!r}: {detail}; the hooks are: {hooks}") from error

    info = {plugin.name: plugin for plugin in registry.plugins}
    _collect(manager, "register_optimizers", info, trace, _optimizer_adder(registry))
    _collect(manager, "register_optimizer_wrappers", info, trace, _wrapper_adder(registry))
    _collect(manager, "register_tasks", info, trace, _task_adder(registry))
    return registry


def _collect(
    manager: pluggy.PluginManager,
    hook: str,
    info: dict[str, PluginInfo],
    trace: bool,
    add: Callable[[Any, PluginInfo], None],
) -> None:
    """Call one hook plugin by plugin, so that whatever goes wrong is pinned on its plugin."""
    for impl in reversed(getattr(manager.hook, hook).get_hookimpls()):
        plugin = info[impl.plugin_name]

        def register(item: Any, plugin: PluginInfo = plugin) -> None:
            add(item, plugin)
            if trace:
                print(f"tuner: {plugin.name}.{hook} registered {item.name!r}", file=sys.stderr)

        if trace:
            print(f"tuner: calling {plugin.name}.{hook}", file=sys.stderr)
        try:
            impl.function(**{arg: register for arg in impl.argnames})
        except (PluginError, KeyboardInterrupt):
            raise
        except BaseException as error:  # SystemExit too: a plugin must not end tuner silently
            raise PluginError(
                f"plugin {plugin.name!r}: {hook} raised {describe_exception(error)}"
            ) from error


def _check_name(kind: str, name: Any, taken: dict, plugin: PluginInfo) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise PluginError(
            f"plugin {plugin.name!r}: {kind} name {name!r} must be lower-case letters, digits, "
            "'_', '.' or '-'"
        )
    if name in taken:
        raise PluginError(
            f"plugin {plugin.name!r}: {kind} {name!r} is already registered by plugin "
            f"{taken[name].plugin!r}"
        )


def _not_installed(registry: Registry, item: OptimizerPlugin, plugin: PluginInfo) -> bool:
    """Keep ``item`` aside, as not installed, if its package is missing; whether it was."""
    if item.requires is None or not item.requires.missing():
        return False
    registry.not_installed[item.name] = replace(item, plugin=plugin.name, version=plugin.version)
    return True


def _optimizer_adder(registry: Registry) -> Callable[[Any, PluginInfo], None]:
    def add(item: Any, plugin: PluginInfo) -> None:
        if not isinstance(item, OptimizerPlugin):
            raise PluginError(
                f"plugin {plugin.name!r}: register_optimizers expects OptimizerPlugin, "
                f"got {type(item).__name__}"
            )
        _check_name("optimizer", item.name, registry.optimizers, plugin)
        try:
            item.space.validate(f"plugin {plugin.name!r}: optimizer {item.name!r}")
        except SpaceError as error:
            raise PluginError(first_line(str(error))) from error
        if isinstance(item.state_multiple, (int, float)) and item.state_multiple < 0:
            raise PluginError(
                f"plugin {plugin.name!r}: optimizer {item.name!r}: state_multiple must be >= 0"
            )
        if not (isinstance(item.lr_meaning, str) and item.lr_meaning.strip()):
            raise PluginError(
                f"plugin {plugin.name!r}: optimizer {item.name!r}: lr_meaning must say what its "
                f"lr is ('step size', 'multiplier' or a named convention), got "
                f"{item.lr_meaning!r}"
            )
        try:
            item.check_presets(f"plugin {plugin.name!r}: optimizer {item.name!r}")
        except SpaceError as error:
            raise PluginError(first_line(str(error))) from error
        if _not_installed(registry, item, plugin):
            return
        registry.optimizers[item.name] = replace(
            item, plugin=plugin.name, version=plugin.version
        )

    return add


def _wrapper_adder(registry: Registry) -> Callable[[Any, PluginInfo], None]:
    def add(item: Any, plugin: PluginInfo) -> None:
        if not isinstance(item, OptimizerWrapper):
            raise PluginError(
                f"plugin {plugin.name!r}: register_optimizer_wrappers expects OptimizerWrapper, "
                f"got {type(item).__name__}"
            )
        _check_name("optimizer wrapper", item.name, registry.wrappers, plugin)
        registry.wrappers[item.name] = replace(item, plugin=plugin.name, version=plugin.version)

    return add


def _task_adder(registry: Registry) -> Callable[[Any, PluginInfo], None]:
    def add(item: Any, plugin: PluginInfo) -> None:
        if not isinstance(item, Task):
            raise PluginError(
                f"plugin {plugin.name!r}: register_tasks expects a Task instance, "
                f"got {type(item).__name__}"
            )
        name = getattr(item, "name", None)
        _check_name("task", name, registry.tasks, plugin)
        problems = item.problems()
        if problems:
            raise PluginError(
                f"plugin {plugin.name!r}: task {name!r}: {first_line(problems[0])}"
            )
        item.plugin, item.version = plugin.name, plugin.version
        registry.tasks[name] = item

    return add
