"""The ``tuner`` command line: noun groups with verb subcommands (``tuner study create``)."""

from __future__ import annotations

import click

from tuner import __version__
from tuner.commands import advice as advice_commands
from tuner.commands import tasks as tasks_commands
from tuner.commands.db import db
from tuner.commands.plugins import optimizers, plugins_command
from tuner.commands.study import study, worker_command


class TunerGroup(click.Group):
    """Turns tuner's user-facing errors into one line and a non-zero exit, never a traceback."""

    def invoke(self, ctx: click.Context):
        from tuner.errors import TunerError

        try:
            return super().invoke(ctx)
        except TunerError as error:
            raise click.ClickException(str(error)) from error


@click.group(cls=TunerGroup)
@click.version_option(__version__, prog_name="tuner")
def cli() -> None:
    """Which optimizer, and which learning rate? Measured, not guessed.

    Optimizers and tasks are plugins; studies train every optimizer under an equal budget and
    record each run in a SQL store; the advice is a query over that store.
    """


cli.add_command(plugins_command)
cli.add_command(optimizers)
# (more command groups are added below, one line each)
cli.add_command(study)
cli.add_command(worker_command)
cli.add_command(db)
cli.add_command(advice_commands.best_command)
cli.add_command(advice_commands.advise_command)
cli.add_command(advice_commands.compare_command)
cli.add_command(advice_commands.lr_find_command)
cli.add_command(advice_commands.report_command)
cli.add_command(tasks_commands.tasks)
cli.add_command(tasks_commands.train_command)
