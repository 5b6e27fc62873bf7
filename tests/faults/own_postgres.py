"""A PostgreSQL server of the test's own, which the test may stop and start: ``initdb`` and
``pg_ctl`` (Debian's postgresql packages) run as the ``postgres`` user, since PostgreSQL refuses
to run as root, on a free port of 127.0.0.1, in a folder removed afterwards. Tests that use it
are skipped, with the reason, where that is impossible."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from server_fixtures import free_port


def _as_postgres(*command: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "postgres", "--", *command], capture_output=True,
                          text=True, timeout=timeout)


class OwnPostgres:
    """The server: ``url`` of its database ``tuner`` (:meth:`url_at` another of its
    addresses); :meth:`stop` and :meth:`start`."""

    def __init__(self, folder: Path, port: int, listen: Sequence[str] = ()) -> None:
        self.folder, self.port = folder, port
        self.listen = ",".join(["127.0.0.1", *listen])
        self.data = folder / "data"
        self.url = self.url_at("127.0.0.1")

    def url_at(self, address: str) -> str:
        """The URL of the database ``tuner`` at ``address``, one the server listens on."""
        return f"postgresql+psycopg://postgres@{address}:{self.port}/tuner"

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses={self.listen} "
                   "-c fsync=off -c full_page_writes=off")
        done = _as_postgres("pg_ctl", "-D", str(self.data), "-o", options, "-l",
                            str(self.folder / "log"), "-w", "start")
        assert done.returncode == 0, done.stderr + (self.folder / "log").read_text()

    def stop(self, mode: str = "fast") -> None:
        done = _as_postgres("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        assert done.returncode == 0, done.stderr


@contextmanager
def own_postgres(listen: Sequence[str] = (), clients: Sequence[str] = ()
                 ) -> Iterator[OwnPostgres]:
    """A fresh server with an empty database ``tuner``, stopped and removed afterwards;
    listening on ``listen`` too (addresses this host has), trusting ``clients`` too
    (addresses, ``10.1.2.2/32``)."""
    missing = [tool for tool in ("initdb", "pg_ctl", "runuser") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (Debian's postgresql packages)")
    if os.geteuid() != 0:
        pytest.skip("needs root, to run PostgreSQL as the postgres user")
    try:
        owner = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("needs the postgres user")
    folder = Path(tempfile.mkdtemp(prefix="tuner-own-pg-"))
    os.chown(folder, owner.pw_uid, owner.pw_gid)
    server = OwnPostgres(folder, free_port(), listen)
    try:
        made = _as_postgres("initdb", "-D", str(server.data), "-A", "trust", "-U", "postgres",
                            "--no-sync")
        assert made.returncode == 0, made.stderr
        with open(server.data / "pg_hba.conf", "a") as hba:
            hba.writelines(f"host all all {client} trust\n" for client in clients)
        server.start()
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{server.port}/postgres",
                             autocommit=True) as admin:
            admin.execute("CREATE DATABASE tuner")
        yield server
    finally:
        if (server.data / "postmaster.pid").exists():
            _as_postgres("pg_ctl", "-D", str(server.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)
