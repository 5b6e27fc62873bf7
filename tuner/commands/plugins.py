"""``tuner plugins``, ``tuner optimizers ...``: what is installed."""

from __future__ import annotations

import click

from tuner.commands._output import format_value, output_options, print_json, print_table


@click.command(name="plugins")
@click.option("--all", "show_all", is_flag=True, help="Include the plugins built into tuner.")
@output_options
def plugins_command(show_all: bool, as_json: bool) -> None:
    """List installed plugins with their versions and hooks."""
    from tuner.plugin.registry import get_registry

    plugins = [p for p in get_registry().plugins if show_all or not p.builtin]
    if as_json:
        print_json([p.describe() for p in plugins])
        return
    if not plugins:
        click.echo("No third-party plugins installed (--all shows the built-in ones).")
        return
    print_table(
        ([p.name, p.distribution, p.version, p.hooks, p.builtin] for p in plugins),
        ["plugin", "package", "version", "hooks", "built-in"],
    )


@click.group()
def optimizers() -> None:
    """The optimizers tuner can tune."""


def _describe(plugin) -> dict:
    return {
        "name": plugin.name,
        "summary": plugin.summary,
        "plugin": plugin.plugin,
        "version": plugin.version,
        "state_multiple": plugin.state_multiple
        if isinstance(plugin.state_multiple, (int, float)) else None,
        "state": plugin.state_text,
        "needs_closure": plugin.needs_closure,
        "full_batch_only": plugin.full_batch_only,
        "wants_flat_loss": plugin.wants_flat_loss,
        "max_params": plugin.max_params,
        "lr_meaning": plugin.lr_meaning,
        "splits_by_role": plugin.splits_by_role,
        "presets": {kind: dict(values) for kind, values in plugin.presets.items()},
        "reference": plugin.reference,
        "space_hash": plugin.space.fingerprint(),
        "space": plugin.space.to_dicts(),
    }


@optimizers.command(name="list")
@output_options
def list_optimizers(as_json: bool) -> None:
    """List the registered optimizers (and wrappers such as lookahead-<optimizer>)."""
    from tuner.plugin.registry import get_registry

    registry = get_registry()
    found = sorted(registry.optimizers.values(), key=lambda p: p.name)
    if as_json:
        print_json(
            {
                "optimizers": [_describe(p) for p in found],
                "wrappers": [
                    {"name": w.name, "summary": w.summary, "plugin": w.plugin,
                     "usage": f"{w.name}-<optimizer>"}
                    for w in registry.wrappers.values()
                ],
                "not_installed": [
                    {"name": p.name, "plugin": p.plugin, "package": p.requires.module,
                     "install": p.requires.install}
                    for p in sorted(registry.not_installed.values(), key=lambda p: p.name)
                ],
            }
        )
        return
    rows = [
        [p.name, p.state_text, ", ".join(p.space.names), p.summary] for p in found
    ]
    rows += [[f"{w.name}-<optimizer>", f"+{w.added_state:g}n", "", w.summary]
             for w in registry.wrappers.values()]
    print_table(rows, ["name", "state", "hyperparameters", "summary"])
    for line in _not_installed_lines(registry.not_installed.values()):
        click.echo(line)


def _not_installed_lines(plugins) -> list[str]:
    """One line per missing package: how many optimizers it would add, which, and the command
    that installs it."""
    by_package: dict[tuple[str, str], list[str]] = {}
    for plugin in plugins:
        by_package.setdefault((plugin.requires.module, plugin.requires.install), []).append(
            plugin.name)
    return [
        f"Not installed (the package {module!r} is missing): {', '.join(sorted(names))}; "
        f"to add: {install}"
        for (module, install), names in sorted(by_package.items())
    ]


@optimizers.command(name="show")
@click.argument("name")
@output_options
def show_optimizer(name: str, as_json: bool) -> None:
    """Show one optimizer's search space."""
    from tuner.plugin.registry import get_registry

    plugin = get_registry().optimizer(name)
    if as_json:
        print_json(_describe(plugin))
        return
    click.echo(f"{plugin.name}: {plugin.summary}")
    click.echo(
        f"plugin {plugin.plugin} {plugin.version}; optimizer state {plugin.state_text}"
        + ("; needs a closure" if plugin.needs_closure else "")
        + ("; full batch only" if plugin.full_batch_only else "")
        + (f"; at most {plugin.max_params:,} parameters" if plugin.max_params else "")
        + ("; hidden weight matrices apart from the rest" if plugin.splits_by_role else "")
    )
    click.echo(f"lr: {plugin.lr_meaning}")
    if plugin.reference:
        click.echo(f"reference: {plugin.reference}")
    for kind, values in plugin.presets.items():
        shown = ", ".join(f"{name}={format_value(value)}" for name, value in values.items())
        click.echo(f"preset for {kind} tasks (a study's recommended trial): {shown}")
    print_table(
        (
            [p.name, p.kind, p.range_text, p.default, p.recommended, p.when, p.help]
            for p in plugin.space
        ),
        ["parameter", "type", "range", "default", "recommended", "only when", "notes"],
    )
