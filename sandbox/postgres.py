"""A throwaway PostgreSQL cluster for the tests and the benchmark: Debian's initdb/pg_ctl (the Makefile installs the
``postgresql`` package when missing), a temporary directory, a free 127.0.0.1 port, no Unix
socket, trust authentication, fsync off; stopped and removed at the end.

PostgreSQL refuses to run as root: as root the cluster runs as an unprivileged user (``nobody``,
or ``kuroko-test``, created when neither exists); as anyone else it runs as that user."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg


def find_bin(name: str) -> Path:
    found = shutil.which(name)
    if found:
        return Path(found)
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    if not candidates:
        raise RuntimeError(f"no PostgreSQL {name} on PATH nor under /usr/lib/postgresql/*/bin: install Debian's "
                           "postgresql package (`make install` does)")
    return Path(candidates[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unprivileged_user() -> str | None:
    """The user the cluster runs as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("nobody", "kuroko-test"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "kuroko-test"],
                   check=True)
    return "kuroko-test"


class ThrowawayPostgres:
    def __init__(self) -> None:
        self.initdb = find_bin("initdb")
        self.pg_ctl = find_bin("pg_ctl")
        self.user = unprivileged_user()
        self.dir = Path(tempfile.mkdtemp(prefix="kuroko-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)

    def _as_user(self, *args: str | Path) -> list[str]:
        prefix = ["runuser", "-u", self.user, "--"] if self.user is not None else []
        return [*prefix, *map(str, args)]

    def start(self) -> ThrowawayPostgres:
        subprocess.run(self._as_user(self.initdb, "-D", self.data, "-U", "postgres", "--auth=trust",
                                     "--encoding=UTF8", "--locale=C.UTF-8"),
                       check=True, capture_output=True, cwd=self.dir)
        options = (f"-p {self.port} -h 127.0.0.1 -k '' -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off -c max_connections=200")
        started = subprocess.run(self._as_user(self.pg_ctl, "-D", self.data, "-o", options,
                                               "-l", self.dir / "postgres.log", "-w", "-t", "60", "start"),
                                 capture_output=True, text=True, cwd=self.dir)
        if started.returncode != 0:
            log = (self.dir / "postgres.log").read_text() if (self.dir / "postgres.log").exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {started.stderr}\n{log[-2000:]}")
        return self

    def stop(self) -> None:
        subprocess.run(self._as_user(self.pg_ctl, "-D", self.data, "-m", "immediate", "-w", "stop"),
                       capture_output=True, cwd=self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh empty database; its SQLAlchemy URL."""
        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
