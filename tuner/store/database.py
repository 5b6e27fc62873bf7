"""Where the store lives: database URLs, engines, schema checks, upgrades and Optuna's storage.

The URL comes from ``--db``, else the ``TUNER_DB`` environment variable, else an SQLite file in
the user's data directory (:func:`default_database_path`). ``postgresql://`` URLs use the psycopg
3 driver. SQLite databases run in WAL mode with a busy timeout, so several worker processes can
share one file; PostgreSQL is how workers on several hosts share one study.

Schema policy (:func:`open_store`):

* a database with no tuner tables at all (new, empty, or holding only Optuna's tables) is created
  at the newest schema when ``create=True`` - the first command on a fresh database just works;
* a database at an older revision is never upgraded implicitly: the error says to run
  ``tuner db upgrade`` (migrations of a populated store are the user's decision);
* a database at a newer revision says which tuner version it needs;
* nothing is written in any of these checks, and ``create=False`` never creates a file.

``open_store(url, readonly=True)`` is how every read-only command opens the store: it writes
nothing and creates nothing, and it works where writing is impossible. Every SQLite connection
is ``query_only``. A file this process may write is opened as usual (SQLite's ``-wal``/``-shm``
files come and go as for any reader, and a study running beside it is read consistently); one
it may not write is opened with ``mode=ro``, and when even that fails because the WAL's
shared-memory file cannot be created next to it (a read-only directory or mount) with
``immutable=1``, which reads the file as it is. PostgreSQL sessions are
``default_transaction_read_only``, so a role that may only SELECT reads the store as any other
role does.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from tuner.errors import AlreadyExistsError, UnavailableError
from tuner.version import __version__

if TYPE_CHECKING:
    import optuna

VERSION_TABLE = "tuner_alembic_version"
"""tuner's alembic version table (Optuna keeps its own ``alembic_version`` in the same DB)."""

SCHEMA_REVISIONS: dict[str, str] = {
    "0001": "0.1.0",
    "0002": "0.1.0",
    "0003": "0.1.0",
    "0004": "0.1.0",
    "0005": "0.1.0",
    "0006": "0.1.0",
    "0007": "0.1.0",
    "0008": "0.1.0",
    "0009": "0.1.0",
    "0010": "0.1.0",
    "0011": "0.1.0",
    "0012": "0.1.0",
    "0013": "0.1.0",
}
"""Every migration revision, oldest first, with the first tuner version that shipped it."""

HEAD_REVISION = next(reversed(SCHEMA_REVISIONS))
"""The schema revision this tuner reads and writes."""

ENV_VAR = "TUNER_DB"
SQLITE_BUSY_TIMEOUT_SECONDS = 60.0
_POSTGRES_UPGRADE_LOCK = 7_362_010  # pg_advisory_xact_lock key serialising concurrent upgrades
_POSTGRES_STORE_LOCK = 7_362_011  # pg_advisory_lock key of :func:`store_lock`


class StoreError(UnavailableError):
    """The store cannot be used as asked: bad URL, unreachable server, or a schema mismatch."""


class StudyExistsError(AlreadyExistsError, StoreError):
    """A study of that name is in the store already (names are unique)."""


class SchemaError(StoreError):
    """The database's schema is missing, older or newer than this tuner's.

    ``state`` is the :class:`SchemaState` found, when one was read.
    """

    def __init__(self, message: str | None, state: SchemaState | None = None) -> None:
        super().__init__(message)
        self.state = state


# -- what a database's error means (the retries are in tuner.store.retry) --------------------

_FULL_SQLSTATES = {"53100"}  # disk_full
_SQLITE_FULL = "database or disk is full"
_SQLITE_FULL_CODES = (
    "SQLITE_FULL",
    # opening a WAL store whose shared-memory file is gone (its last user closed it) makes
    # that file anew, and writing its first page fails so when no space is left
    "SQLITE_IOERR_SHMSIZE",
)


class DatabaseFullError(StoreError):
    """The disk that holds the database is full: nothing more can be written until space is
    freed (never retried: see :mod:`tuner.store.retry`)."""


def database_error(error: BaseException) -> DBAPIError | None:
    """The database driver's error behind ``error``: itself, or the error it was raised from
    (Optuna wraps SQLAlchemy's errors in its own)."""
    seen = 0
    while error is not None and seen < 5:
        if isinstance(error, DBAPIError):
            return error
        error, seen = error.__cause__, seen + 1
    return None


def first_line(error: BaseException) -> str:
    """The first line of the database's own message behind ``error``."""
    found = database_error(error)
    text = str(found.orig if found is not None and found.orig else error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def is_disk_full(error: BaseException) -> bool:
    """Whether the database could not write because its disk is full."""
    found = database_error(error)
    if found is None:
        return False
    original = found.orig
    if getattr(original, "sqlite_errorname", None) in _SQLITE_FULL_CODES:
        return True
    sqlstate = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    return sqlstate in _FULL_SQLSTATES or (
        sqlstate is None and _SQLITE_FULL in str(original).lower())


def full_disk(error: BaseException) -> DatabaseFullError:
    """The one-line error of a full disk behind ``error`` (the database's words in brackets)."""
    return DatabaseFullError(f"the disk that holds the database is full ({first_line(error)}); "
                             "free space on it, then run again")


def default_database_path() -> Path:
    """The SQLite file used when neither ``--db`` nor ``TUNER_DB`` is given."""
    import platformdirs

    return Path(platformdirs.user_data_dir("tuner")) / "tuner.db"


def default_database_url() -> str:
    """``sqlite:///<user data dir>/tuner/tuner.db`` (see :func:`default_database_path`)."""
    return f"sqlite:///{default_database_path()}"


def normalise_url(url: str | URL) -> URL:
    """Parse a database URL; ``postgres(ql)://`` becomes ``postgresql+psycopg://``."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        raise StoreError(f"not a database URL: {_mask_text(str(url))}") from None
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def resolve_url(url: str | URL | None = None) -> str:
    """The database URL to use: ``url``, else ``$TUNER_DB``, else the default SQLite file.

    Returns the normalised URL as a string (with its password: pass it on, never print it;
    :func:`display_url` is the printable form).
    """
    chosen = url or os.environ.get(ENV_VAR) or default_database_url()
    return normalise_url(chosen).render_as_string(hide_password=False)


def display_url(url: str | URL) -> str:
    """The URL as it may be printed: the password replaced by ``***``."""
    try:
        return normalise_url(url).render_as_string(hide_password=True)
    except StoreError:
        return _mask_text(str(url))


def _mask_text(text_: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", text_)


def sqlite_path(url: str | URL) -> Path | None:
    """The file of an SQLite URL; None for other databases and in-memory SQLite."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000)}")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA synchronous = NORMAL")  # with WAL: durable across process kills
    cursor.close()


def _on_readonly_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000)}")
    cursor.execute("PRAGMA query_only = ON")  # no statement may write, whatever the file mode
    cursor.close()


def readonly_sqlite_url(path: Path) -> str:
    """An SQLAlchemy URL that opens the SQLite file ``path`` for reading only.

    A file (and folder) this process may write: its plain URL (the connections are made
    ``query_only``; a ``mode=ro`` connection would leave the WAL's ``-wal``/``-shm`` files
    behind, since it may not remove them). Otherwise ``mode=ro``; if SQLite cannot open the
    file that way (in WAL mode it must create the ``-shm`` file beside it, impossible in a
    read-only folder), ``immutable=1``, which reads the file without locking or shared memory.
    Each is tried with one short connection.
    """
    import sqlite3
    from urllib.parse import quote

    if os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
        return f"sqlite:///{path}"
    location = quote(str(path.resolve()))
    failure: sqlite3.Error | None = None
    for mode in ("mode=ro", "immutable=1"):
        uri = f"file:{location}?{mode}"
        try:
            connection = sqlite3.connect(uri, uri=True, timeout=SQLITE_BUSY_TIMEOUT_SECONDS)
            try:
                connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                connection.close()
        except sqlite3.OperationalError as error:
            failure = error
            if "unable to open" in str(error):
                continue  # the -shm cannot be created: read the file as it is
            break
        except sqlite3.Error as error:
            failure = error
            break
        else:
            return f"sqlite:///{uri}&uri=true"
    raise StoreError(f"cannot open the SQLite database {path} read-only: {failure}")


def _on_optuna_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous = NORMAL")  # with WAL: durable across process kills
    cursor.close()


KEEPALIVE_SECONDS = (20, 5, 4)
"""TCP keepalives on PostgreSQL connections, at both ends: idle seconds before the first probe,
seconds between probes, probes unanswered before the connection counts as dead. A host cut off
by the network is found dead 40 s after its last packet, less than the workers' default grace
period (60 s): the server then ends that host's session, which rolls its transaction back and
frees its row locks (else held until the kernel's default, two hours), so the workers that are
left reap its trial on time and never wait on its locks; and the cut-off host's own socket
fails instead of hanging, so it rides the outage like any other. Keepalives probe only a link
with nothing in flight; data sent and never acknowledged (a reply cut off on its way) is given
up after the same 40 s (``tcp_user_timeout``), not the kernel's 15 minutes of retries."""


def postgresql_connect_args(given: dict[str, Any], readonly: bool = False) -> dict[str, Any]:
    """psycopg's connection arguments for a store on PostgreSQL: the keepalives of
    :data:`KEEPALIVE_SECONDS` at the client (libpq's) and at the server (session settings),
    and for ``readonly`` read-only transactions by default; what ``given`` sets wins."""
    idle, interval, count = KEEPALIVE_SECONDS
    unacknowledged = 1000 * (idle + interval * count)  # ms: a send in flight when cut
    settings = [f"-c tcp_keepalives_idle={idle}", f"-c tcp_keepalives_interval={interval}",
                f"-c tcp_keepalives_count={count}", f"-c tcp_user_timeout={unacknowledged}"]
    if readonly:
        settings.append("-c default_transaction_read_only=on")
    args = {"keepalives": 1, "keepalives_idle": idle, "keepalives_interval": interval,
            "keepalives_count": count, "tcp_user_timeout": unacknowledged, **given}
    args["options"] = " ".join([given.get("options", ""), *settings]).strip()
    return args


def make_engine(
    url: str | URL | None = None, *, readonly: bool = False, **kwargs: Any
) -> Engine:
    """An engine for the store's URL (resolved as :func:`resolve_url` does).

    SQLite connections get a busy timeout and ``foreign_keys=ON``; WAL mode is a property of
    the file, set when the schema is created (:func:`upgrade`). PostgreSQL engines ping pooled
    connections before use, so a worker survives a server restart. ``readonly=True`` gives an
    engine that cannot write (see the module docstring); an SQLite file must exist.
    """
    resolved = normalise_url(resolve_url(url))
    try:
        if resolved.get_backend_name() == "sqlite":
            connect_args = {
                "timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
                **kwargs.pop("connect_args", {}),
            }
            path = sqlite_path(resolved)
            if readonly and path is not None:
                engine = create_engine(
                    readonly_sqlite_url(path), connect_args=connect_args, **kwargs
                )
                event.listen(engine, "connect", _on_readonly_sqlite_connect)
            else:
                engine = create_engine(resolved, connect_args=connect_args, **kwargs)
                event.listen(engine, "connect", _on_sqlite_connect)
        else:
            from tuner.store.models import postgresql_options

            postgresql_options()
            kwargs.setdefault("pool_pre_ping", True)
            if resolved.get_backend_name() == "postgresql":
                kwargs["connect_args"] = postgresql_connect_args(
                    kwargs.pop("connect_args", {}), readonly=readonly)
            engine = create_engine(resolved, **kwargs)
    except (ArgumentError, NoSuchModuleError, ImportError) as error:
        raise StoreError(f"cannot use the database URL {display_url(resolved)}: {error}") from None
    return engine


def _reason(error: BaseException, url: str | URL) -> str:
    """The first line of a driver error, with the URL's password taken out."""
    original = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(original).strip().splitlines() if line.strip()]
    reason = lines[0] if lines else type(original).__name__
    password = normalise_url(url).password
    if password:
        reason = reason.replace(str(password), "***")
    return reason


@contextmanager
def _connect(engine: Engine) -> Iterator[Connection]:
    """A connection, with "cannot connect" turned into one StoreError line."""
    try:
        connection = engine.connect()
    except DBAPIError as error:
        raise _unusable(error, engine.url, "cannot connect to") from None
    except (SQLAlchemyError, OSError) as error:
        raise StoreError(
            f"cannot connect to the database at {display_url(engine.url)}: "
            f"{_reason(error, engine.url)}"
        ) from None
    with connection:
        yield connection


@dataclass(frozen=True)
class SchemaState:
    """What a database holds: ``revision`` is None when it has no tuner schema.

    ``state`` is one of ``missing`` (SQLite file does not exist), ``empty`` (no tuner tables),
    ``current``, ``older``, ``newer`` or ``unversioned`` (tuner tables but no version row).
    """

    state: str
    revision: str | None
    meta: dict[str, str]

    @property
    def head(self) -> str:
        return HEAD_REVISION


def read_schema_state(connection: Connection) -> SchemaState:
    """Inspect a database without writing to it."""
    names = set(inspect(connection).get_table_names())
    tuner_tables = {n for n in names if n.startswith("tuner_")}
    meta: dict[str, str] = {}
    if "tuner_meta" in names:
        meta = dict(connection.execute(text("SELECT key, value FROM tuner_meta")).all())
    if not tuner_tables:
        return SchemaState("empty", None, meta)
    revision = None
    if VERSION_TABLE in names:
        revision = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    if revision is None:
        return SchemaState("unversioned", None, meta)
    if revision == HEAD_REVISION:
        return SchemaState("current", revision, meta)
    if revision in SCHEMA_REVISIONS:
        return SchemaState("older", revision, meta)
    return SchemaState("newer", revision, meta)


def schema_state(url: str | URL | None = None) -> SchemaState:
    """The schema state of the database at ``url``, without creating or changing anything
    (read-only: it works on a file or as a role that cannot write)."""
    resolved = resolve_url(url)
    path = sqlite_path(resolved)
    if path is not None and not path.exists():
        return SchemaState("missing", None, {})
    engine = make_engine(resolved, readonly=True)
    try:
        with _connect(engine) as connection:
            return read_schema_state(connection)
    finally:
        engine.dispose()


def schema_problem(state: SchemaState, url: str | URL) -> str | None:
    """The one-line complaint about a schema this tuner cannot use as it is, or None."""
    where = f"database at {display_url(url)}"
    if state.state == "current":
        return None
    if state.state in ("missing", "empty"):
        return f"{where} has no tuner tables: run `tuner db upgrade`"
    if state.state == "older":
        return (
            f"{where} is at schema revision {state.revision}, this tuner needs "
            f"{HEAD_REVISION}: run `tuner db upgrade`"
        )
    if state.state == "newer":
        needs = state.meta.get("min_tuner_version") or state.meta.get("tuner_version")
        needed = f"tuner {needs} or newer" if needs else "a newer tuner"
        return (
            f"{where} is at schema revision {state.revision}, newer than this tuner "
            f"({__version__}) knows: it needs {needed} (pip install -U tuner)"
        )
    return (
        f"{where} has tuner tables but no {VERSION_TABLE} row; "
        "it was not created by `tuner db upgrade`"
    )


def migrations_directory() -> Path:
    """The folder of tuner's migrations (env.py, versions/): alembic's script location.

    Installed from a wheel it is the package ``tuner.migrations`` (``tuner/migrations/``); in a
    source checkout it is the top-level ``alembic/`` folder. It has no ``__init__.py`` on
    purpose: with one, ``import alembic`` from the repository root would find that folder
    instead of the alembic library. alembic loads env.py and the versions by path.
    """
    import importlib.util

    candidates: list[Path] = []
    try:
        spec = importlib.util.find_spec("tuner.migrations")
    except ImportError:
        spec = None
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(location) for location in spec.submodule_search_locations]
    package_dir = Path(__file__).resolve().parents[1]  # tuner/
    candidates += [package_dir / "migrations", package_dir.parent / "alembic"]
    for candidate in candidates:
        if (candidate / "env.py").is_file() and (candidate / "versions").is_dir():
            return candidate.resolve()
    raise StoreError(
        "tuner's migrations (tuner/migrations/env.py) are missing from this installation"
    )


def alembic_config(connection: Connection | None = None) -> Any:
    """An alembic ``Config`` for tuner's migrations, built in code (no alembic.ini needed).

    With ``connection``, env.py migrates over it (inside the caller's transaction).
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_directory()))
    config.attributes["connection"] = connection
    return config


def _enable_wal(engine: Engine) -> None:
    with _connect(engine) as connection:
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")


def _set_sqlite_wal(path: Path) -> None:
    """Put an SQLite file in WAL mode (a persistent property of the file), creating it."""
    import sqlite3

    try:
        connection = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_SECONDS)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
        finally:
            connection.close()
    except sqlite3.Error as error:
        raise StoreError(f"cannot open the SQLite database {path}: {error}") from None


def upgrade(url: str | URL | None = None, revision: str = "head") -> tuple[str | None, str]:
    """Create or migrate tuner's tables; returns (revision before, revision after).

    Runs in one transaction that other upgraders wait for (SQLite ``BEGIN IMMEDIATE``, a
    PostgreSQL advisory lock), so two processes upgrading one database at once is safe. Records
    the schema revision and the tuner version in ``tuner_meta``. At the newest revision,
    Optuna's tables are created as well when missing (:func:`ensure_optuna_schema`), so that
    no later command races another for them.
    """
    resolved = resolve_url(url)
    path = sqlite_path(resolved)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(UPGRADE_ATTEMPTS):
        started = time.monotonic()
        try:
            before, after = _upgrade_once(resolved, path, revision)
            break
        except _SqliteLocked:
            waited_out = time.monotonic() - started >= SQLITE_BUSY_TIMEOUT_SECONDS
            if waited_out or attempt + 1 == UPGRADE_ATTEMPTS:
                raise StoreError(f"upgrading the database at {display_url(resolved)} failed: "
                                 "database is locked") from None
            time.sleep(0.2 * (attempt + 1))
    if after == HEAD_REVISION:
        ensure_optuna_schema(resolved)
    return before, str(after)


UPGRADE_ATTEMPTS = 5
"""How often an upgrade of an SQLite file is tried when SQLite answers "database is locked"
without having waited out its busy timeout (a lock held that long is not waited for again)."""


class _SqliteLocked(Exception):
    """SQLite said "database is locked" during an upgrade, which is then tried again.

    SQLite's busy timeout makes a connection wait for another's lock, but SQLite reports some
    conflicts at once, without waiting (in WAL mode, for one); one such was seen, rarely, when
    four processes made one fresh store at once (tests/faults/test_first_use.py). The upgrade
    is safe to run again: it reads the revision it starts from under its own write lock."""


def _upgrade_once(resolved: str, path: Path | None, revision: str) -> tuple[str | None, str]:
    from alembic import command

    engine = make_engine(resolved)
    try:
        if path is not None:
            _enable_wal(engine)
        with _connect(engine) as connection:
            if engine.dialect.name == "sqlite":
                # A batch migration rebuilds a table by DROP + rename; with foreign keys on,
                # the DROP would cascade-delete the child rows (runs, curve points).
                connection.exec_driver_sql("PRAGMA foreign_keys = OFF")
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            elif engine.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _POSTGRES_UPGRADE_LOCK}
                )
            state = read_schema_state(connection)  # under the lock: what this upgrade finds
            if state.state in ("newer", "unversioned"):
                raise SchemaError(schema_problem(state, resolved))
            before = state.revision
            command.upgrade(alembic_config(connection), revision)
            after = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
            _write_meta(connection, str(after))
            if engine.dialect.name == "sqlite":
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").first()
                if broken is not None:
                    connection.rollback()
                    raise StoreError(
                        f"upgrading the database at {display_url(resolved)} would break a "
                        f"foreign key in {broken[0]}; nothing was changed"
                    )
            connection.commit()
            if engine.dialect.name == "sqlite":
                connection.exec_driver_sql("PRAGMA foreign_keys = ON")
    except SQLAlchemyError as error:
        if path is not None and "database is locked" in str(error):
            raise _SqliteLocked() from error
        raise StoreError(
            f"upgrading the database at {display_url(resolved)} failed: {_reason(error, resolved)}"
        ) from None
    finally:
        engine.dispose()
    return before, str(after)


def _write_meta(connection: Connection, revision: str) -> None:
    from tuner.store.models import Meta

    values = {
        "schema_revision": revision,
        "tuner_version": __version__,
        "min_tuner_version": SCHEMA_REVISIONS.get(revision, __version__),
    }
    table = Meta.__table__
    connection.execute(table.delete().where(table.c.key.in_(list(values))))
    connection.execute(table.insert(), [{"key": k, "value": v} for k, v in values.items()])


class Store:
    """An open store: the engine, a session factory, and the URL it came from.

    Use sessions in ``with`` blocks::

        store = open_store()
        with store.session() as session, session.begin():
            session.add(Study(...))
    """

    def __init__(self, url: str, engine: Engine, readonly: bool = False) -> None:
        self.url = url
        self.engine = engine
        self.readonly = readonly
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def display_url(self) -> str:
        """The URL with its password masked, for messages."""
        return display_url(self.url)

    def session(self) -> Session:
        """A new ORM session (objects stay readable after commit)."""
        return self._sessions()

    def optuna_storage(self, **kwargs: Any) -> optuna.storages.RDBStorage:
        """Optuna's storage on this store's database; see :func:`optuna_storage`."""
        return optuna_storage(self.url, **kwargs)

    def dispose(self) -> None:
        """Close the pooled connections."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.dispose()

    def __repr__(self) -> str:
        return f"Store({self.display_url!r})"


def open_store(
    url: str | URL | None = None, *, create: bool = True, readonly: bool = False
) -> Store:
    """Open the store at ``url`` (or ``$TUNER_DB``, or the default SQLite file).

    With ``create=True`` a database without any tuner tables (including a file that does not
    exist yet, or one holding only Optuna's tables) is created at the newest schema. A database
    at an older or newer schema raises :class:`SchemaError` with one line saying what to do,
    and is left untouched; so does any database when ``create=False`` and the schema is not
    current. An unreachable server raises :class:`StoreError` with the password masked.

    ``readonly=True`` opens a store that can only be read, and never creates or writes anything
    (it implies ``create=False``): an SQLite file the process cannot write, or a PostgreSQL role
    that may only SELECT, is read as any other (see the module docstring). The SchemaError it
    raises carries the ``state`` it found (``missing``, ``empty``, ...).
    """
    create = create and not readonly
    resolved = resolve_url(url)
    path = sqlite_path(resolved)
    if path is not None and not path.exists():
        if not create:
            missing = SchemaState("missing", None, {})
            raise SchemaError(schema_problem(missing, resolved), missing)
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(resolved, readonly=readonly)
    try:
        with _connect(engine) as connection:
            state = read_schema_state(connection)
        if state.state == "empty" and create:
            engine.dispose()
            upgrade(resolved)
            engine = make_engine(resolved)
        elif state.state != "current":
            raise SchemaError(schema_problem(state, resolved), state)
    except DBAPIError as error:  # connected, but the database cannot be read or made
        engine.dispose()
        raise _unusable(error, resolved) from None
    except BaseException:
        engine.dispose()
        raise
    return Store(resolved, engine, readonly=readonly)


def _unusable(error: DBAPIError, url: str | URL, doing: str = "cannot use") -> StoreError:
    """One line for a database that could not be reached, read or created (``doing``): a full
    disk says so (:func:`full_disk`), anything else gives the database's
    words."""
    if is_disk_full(error):
        return full_disk(error)
    return StoreError(f"{doing} the database at {display_url(url)}: {_reason(error, url)}")


def optuna_storage(url: str | URL | None = None, **kwargs: Any) -> optuna.storages.RDBStorage:
    """Optuna's ``RDBStorage`` on the same database, set up for several workers.

    SQLite gets a busy timeout (``connect_args={"timeout": ...}``); PostgreSQL pings pooled
    connections. Other keyword arguments (``heartbeat_interval``, ``grace_period``,
    ``failed_trial_callback``, ...) go to ``RDBStorage`` unchanged; ``engine_kwargs`` given
    here are merged over the defaults.
    """
    import optuna

    resolved = resolve_url(url)
    path = sqlite_path(resolved)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _set_sqlite_wal(path)
    ensure_optuna_schema(resolved)
    engine_kwargs: dict[str, Any] = (
        {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}}
        if path is not None
        else {"pool_pre_ping": True}
    )
    if make_url(str(resolved)).get_backend_name() == "postgresql":
        engine_kwargs["connect_args"] = postgresql_connect_args({})
    engine_kwargs.update(kwargs.pop("engine_kwargs", {}) or {})
    try:
        storage = optuna.storages.RDBStorage(resolved, engine_kwargs=engine_kwargs, **kwargs)
    except SQLAlchemyError as error:
        raise StoreError(
            f"cannot open Optuna's storage at {display_url(resolved)}: {_reason(error, resolved)}"
        ) from None
    if path is not None:
        # Optuna commits every suggested parameter, report and attribute on its own; with
        # the default synchronous=FULL each commit is an fsync (several ms on a busy disk).
        # The connections opened while setting up the storage are closed, so that every
        # connection from here on gets the pragma.
        event.listen(storage.engine, "connect", _on_optuna_sqlite_connect)
        storage.engine.dispose()
    return storage


_held_locks = threading.local()
"""The stores whose :func:`store_lock` this thread holds (the lock is re-entrant per thread)."""


@contextmanager
def store_lock(url: str | URL) -> Iterator[None]:
    """Hold the store's lock: one holder at a time across processes and hosts, re-entrant in
    one thread. What must not run twice at once on a store holds it: creating Optuna's tables
    on first use, creating a study (its name checked free, then its Optuna studies, then its
    row).

    PostgreSQL: a session-level advisory lock, on a connection of its own kept for as long as
    the lock is held. SQLite: ``flock`` on the database's folder, which creates no file (stores
    in one folder share the lock). Not a write transaction on the database: Optuna writes
    through connections of its own, which would wait for that transaction until the busy
    timeout; and not a lock on the database file: closing any descriptor of it would drop
    SQLite's own POSIX locks of this process. Elsewhere (no ``fcntl``) there is no lock.
    """
    resolved = resolve_url(url)
    held: set[str] = _held_locks.__dict__.setdefault("urls", set())
    if resolved in held:
        yield
        return
    held.add(resolved)
    try:
        with _acquired(resolved):
            yield
    finally:
        held.discard(resolved)


@contextmanager
def _acquired(resolved: str) -> Iterator[None]:
    path = sqlite_path(resolved)
    if path is not None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            yield
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)
            yield
        finally:
            os.close(folder)  # which releases the lock
        return
    if normalise_url(resolved).get_backend_name() != "postgresql":
        yield
        return
    engine = make_engine(resolved, poolclass=NullPool)
    try:
        with _connect(engine) as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"),
                               {"key": _POSTGRES_STORE_LOCK})
            connection.commit()
            try:
                yield
            finally:
                with suppress(SQLAlchemyError):  # a lost session has released it already
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                                       {"key": _POSTGRES_STORE_LOCK})
                    connection.commit()
    finally:
        engine.dispose()


def _optuna_schema_ready(resolved: str) -> bool:
    """Whether Optuna's tables are there, stamped with its schema version (the last thing
    Optuna writes when it creates them); a read."""
    engine = make_engine(resolved, poolclass=NullPool)
    try:
        with _connect(engine) as connection:
            if not inspect(connection).has_table("alembic_version"):
                return False
            return connection.execute(text("SELECT version_num FROM alembic_version")
                                      ).first() is not None
    finally:
        engine.dispose()


def ensure_optuna_schema(url: str | URL) -> None:
    """Create Optuna's tables in the store when they are missing, under :func:`store_lock`.

    Optuna creates them on the first use of a storage, checking then creating each table and
    then stamping its version: two processes doing so at once make one fail (a duplicate
    ``alembic_version`` row on SQLite, a duplicate type on PostgreSQL). Under the lock the
    second finds them made. A store that has them already is only read.
    """
    import optuna

    resolved = resolve_url(url)
    if _optuna_schema_ready(resolved):
        return
    path = sqlite_path(resolved)
    engine_kwargs: dict[str, Any] = (
        {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}} if path is not None else {}
    )
    with store_lock(resolved):
        if _optuna_schema_ready(resolved):
            return
        try:
            optuna.storages.RDBStorage(resolved, engine_kwargs=engine_kwargs).engine.dispose()
        except SQLAlchemyError as error:
            raise StoreError(
                f"cannot create Optuna's tables at {display_url(resolved)}: "
                f"{_reason(error, resolved)}"
            ) from None
