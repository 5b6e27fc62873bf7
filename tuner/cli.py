"""The ``tuner`` command line: noun groups with verb subcommands (``tuner study create``)."""

from __future__ import annotations

from typing import IO, Any

import click

from tuner.commands import advice as advice_commands
from tuner.commands import plot as plot_commands
from tuner.commands import tasks as tasks_commands
from tuner.commands.db import db
from tuner.commands.plugins import optimizers, plugins_command
from tuner.commands.serve import serve_command
from tuner.commands.study import study, worker_command
from tuner.errors import first_line
from tuner.version import __version__


class OneLineUsageError(click.UsageError):
    """A usage error as one line: ``Error: No such option: --x (tuner study create --help)``."""

    def show(self, file: IO[Any] | None = None) -> None:
        where = f" ({self.ctx.command_path} --help)" if self.ctx is not None else ""
        click.echo(f"Error: {first_line(self.format_message())}{where}", file=file, err=True)


def _one_line_usage(error: click.UsageError) -> click.UsageError:
    if isinstance(error, (OneLineUsageError, click.exceptions.NoArgsIsHelpError)):
        return error  # a bare group shows its help, as click does
    short = OneLineUsageError(error.format_message(), ctx=error.ctx)
    short.exit_code = error.exit_code
    return short


class TunerGroup(click.Group):
    """The one place where errors are formatted for every command: a user-facing error is one
    line and a non-zero exit, never a traceback (tuner's errors exit 1, usage errors 2)."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as error:
            raise _one_line_usage(error) from error

    def invoke(self, ctx: click.Context) -> Any:
        from tuner.errors import TunerError

        try:
            return super().invoke(ctx)
        except TunerError as error:
            raise click.ClickException(first_line(str(error))) from error
        except click.UsageError as error:  # a subcommand's parsing, or a command's own check
            raise _one_line_usage(error) from error
        except click.ClickException as error:
            error.message = first_line(error.message)
            raise


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
cli.add_command(serve_command)
cli.add_command(plot_commands.plot)
