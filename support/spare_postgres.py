"""A throw-away PostgreSQL cluster on this host, for tests that restart the database or cut its
connections without disturbing the shared one on 5432: `initdb` and `pg_ctl` from
`pg_config --bindir`, run as the `postgres` OS user, with data, socket and log in a folder
of its own, listening on 127.0.0.1 at a free port. About 2 s to start."""

import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Literal

import psycopg

from support.owned_folder import owned_folder
from support.services import ServiceMissing, free_port

StopMode = Literal["smart", "fast", "immediate"]
"""pg_ctl's shutdown modes: wait for clients, disconnect them, or abort like a crash."""


class SparePostgres:
    """A running throw-away cluster: `url` reaches its `postgres` database as superuser."""

    def __init__(self, folder: Path, port: int, bindir: Path) -> None:
        self.folder, self.port, self._bindir = folder, port, bindir
        self.data = folder / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until it accepts connections."""
        log = self.folder / "postgres.log"
        self._as_postgres(
            "pg_ctl", "-D", str(self.data), "-l", str(log), "-w", "-t", str(int(timeout)), "start"
        )

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop the server; "fast" disconnects every client, "immediate" aborts like a crash."""
        self._as_postgres("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, down_for: float = 1.0, mode: StopMode = "fast") -> None:
        """Stop, stay down for `down_for` seconds, start again."""
        self.stop(mode)
        time.sleep(down_for)
        self.start()

    def cut_connections(self, dbname: str | None = None) -> int:
        """Terminate every client connection (to `dbname` only, if given) but the one asking,
        waiting until each has gone; how many were cut."""
        query = (
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        params: tuple[str, ...] = ()
        if dbname is not None:
            query, params = query + " AND datname = %s", (dbname,)
        with psycopg.connect(self.url, autocommit=True) as connection:
            return sum(1 for (cut,) in connection.execute(query, params).fetchall() if cut)

    def _as_postgres(self, program: str, *args: str, timeout: float = 90.0) -> str:
        command = ["runuser", "-u", "postgres", "--", str(self._bindir / program), *args]
        done = subprocess.run(command, cwd=self.folder, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stdout}{done.stderr}")
        return done.stdout


def _bindir() -> Path:
    if shutil.which("pg_config") is None or shutil.which("runuser") is None:
        raise ServiceMissing("pg_config and runuser are needed to start a spare PostgreSQL")
    found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
    return Path(found.stdout.strip())


def _conf_line(name: str, value: str | int) -> str:
    quoted = str(value).replace("'", "''")
    return f"{name} = '{quoted}'\n"


@contextmanager
def spare_postgres(settings: Mapping[str, str | int] | None = None) -> Iterator[SparePostgres]:
    """A fresh cluster for the length of the block (`settings`, e.g. {"max_connections": 20},
    go into its postgresql.conf before the first start); stopped and removed afterwards."""
    bindir = _bindir()
    with owned_folder("renewals-pg-", "postgres") as folder:
        server = SparePostgres(folder, free_port(), bindir)
        initdb = ["-D", str(server.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C"]
        server._as_postgres("initdb", *initdb, "--no-sync")
        own = {
            "port": server.port,
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(folder),
            "fsync": "off",  # thrown away afterwards: no need to survive a power cut
            **(settings or {}),
        }
        with (server.data / "postgresql.conf").open("a") as conf:
            conf.writelines(_conf_line(name, value) for name, value in own.items())
        try:
            server.start()
            yield server
        finally:
            with suppress(RuntimeError, subprocess.TimeoutExpired):  # already stopped by the test
                server.stop("immediate")
