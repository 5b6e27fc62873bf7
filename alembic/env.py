"""The alembic environment of tuner's own tables.

Normally run through :func:`tuner.store.upgrade` (``tuner db upgrade``), which passes an open
connection in ``config.attributes["connection"]`` and owns the transaction. Run by the
``alembic`` command (the repository's dev ``alembic.ini``), it connects to ``sqlalchemy.url``,
else ``$TUNER_DB``, else the default SQLite file.

The version table is ``tuner_alembic_version`` and autogenerate only looks at ``tuner_*``
tables, so Optuna's tables and its own alembic history in the same database are never touched.
"""

from __future__ import annotations

from typing import Any

from alembic import context

from tuner.store.database import VERSION_TABLE, make_engine
from tuner.store.models import Base

config = context.config


def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    """Only tuner's tables take part in autogenerate."""
    if type_ == "table":
        return bool(name) and name.startswith("tuner_")
    return True


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,
        include_name=include_name,
        compare_type=True,
        **kwargs,
    )


def run_migrations_offline() -> None:
    """Emit the SQL instead of running it (``alembic upgrade --sql``)."""
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations over the caller's connection, or a new one."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or None)
    try:
        with engine.connect() as own_connection:
            if own_connection.dialect.name == "sqlite":
                # batch table rebuilds must not cascade-delete child rows
                own_connection.exec_driver_sql("PRAGMA foreign_keys = OFF")
            _configure(connection=own_connection)
            with context.begin_transaction():
                context.run_migrations()
            own_connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
