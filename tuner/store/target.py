"""Where a store function reads or writes: a Store or Engine (its own transaction), or the
caller's Session or Connection (the caller's transaction; commit it yourself)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from tuner.store.database import Store

Target = Store | Engine | Session | Connection
"""What every store function takes; see the module docstring for the transaction it gives."""


def _engine(target: Target) -> Engine | Session | Connection:
    if isinstance(target, Store):
        return target.engine
    if isinstance(target, (Engine, Session, Connection)):
        return target
    raise TypeError(f"expected a Store, Engine, Session or Connection, got {target!r}")


@contextmanager
def writing(target: Target) -> Iterator[Session | Connection]:
    """Something to ``execute`` on: a fresh transaction committed on exit, or the caller's."""
    resolved = _engine(target)
    if isinstance(resolved, Engine):
        with resolved.begin() as connection:
            yield connection
    else:
        yield resolved


@contextmanager
def reading(target: Target) -> Iterator[Session | Connection]:
    """Something to ``execute`` reads on: a fresh connection (no write, no commit), or the
    caller's own session or connection."""
    resolved = _engine(target)
    if isinstance(resolved, Engine):
        with resolved.connect() as connection:
            yield connection
    else:
        yield resolved
