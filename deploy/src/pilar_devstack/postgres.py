"""PostgreSQL for the local stack: our own cluster, or an external server.

Own cluster: ``initdb`` into ``<run_dir>/data/postgres`` (trust auth, UTF8, C locale), a
``pilar.conf`` included from postgresql.conf (listen on 127.0.0.1 only, the configured port,
the unix socket inside the data folder), ``pg_ctl -w start`` / ``pg_ctl -m fast stop``.
PostgreSQL refuses to run as root, so as root every server command runs as the ``postgres``
system user through ``runuser``, and the data folder is owned by that user.

External server: with ``PILAR_PG_ADMIN_URL`` (``postgresql://user:pw@host:5432/postgres``)
nothing is started; the role and databases are created on that server.

Either way, ``create_databases`` makes the login role ``pilar`` and one database per name,
owned by it, with the ``pg_trgm`` extension.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from .processes import (
    StackError,
    failure,
    pid_alive,
    port_open,
    read_pid,
    run_coroutine,
)

ROLE = "pilar"
SUPERUSER = "postgres"
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; leave room

INSTALL_HINT = (
    "install the PostgreSQL server (Debian: apt-get install postgresql), "
    "set PILAR_PG_BIN to its bin folder, or point PILAR_PG_ADMIN_URL at a running server"
)


def find_pg_bin() -> Path | None:
    """The folder with initdb and pg_ctl: PILAR_PG_BIN, the newest /usr/lib/postgresql/*/bin, PATH."""
    explicit = os.environ.get("PILAR_PG_BIN")
    if explicit:
        folder = Path(explicit)
        return folder if (folder / "initdb").is_file() else None
    candidates: list[Path] = []
    versions = Path("/usr/lib/postgresql")
    if versions.is_dir():
        numbered = [p for p in versions.iterdir() if p.name.isdigit()]
        candidates += [p / "bin" for p in sorted(numbered, key=lambda p: int(p.name), reverse=True)]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


class Postgres:
    """One PostgreSQL server for every service database."""

    def __init__(
        self,
        *,
        data_dir: Path,
        log_path: Path,
        port: int,
        password: str = "pilar",
        admin_url: str | None = None,
        bin_dir: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.password = password
        self.admin_url = admin_url or None
        self._bin_dir = bin_dir
        if self.admin_url:
            parts = urlsplit(self.admin_url.replace("+asyncpg", ""))
            self.host = parts.hostname or "127.0.0.1"
            self.port = parts.port or 5432
        else:
            self.host = "127.0.0.1"
            self.port = port

    # ------------------------------------------------------------------ addresses

    @property
    def external(self) -> bool:
        return self.admin_url is not None

    def database_url(self, name: str) -> str:
        """SQLAlchemy URL for the service role: postgresql+asyncpg://pilar:<pw>@host:port/<name>."""
        return f"postgresql+asyncpg://{ROLE}:{quote(self.password, safe='')}@{self.host}:{self.port}/{name}"

    def admin_dsn(self, database: str = "postgres") -> str:
        """A libpq/asyncpg URL with administrator rights on ``database``."""
        if self.admin_url:
            parts = urlsplit(self.admin_url.replace("+asyncpg", ""))
            return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    # ------------------------------------------------------------------ own cluster

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            found = find_pg_bin()
            if found is None:
                raise StackError(f"PostgreSQL binaries (initdb, pg_ctl) not found: {INSTALL_HINT}")
            self._bin_dir = found
        return self._bin_dir

    @staticmethod
    def _as_root() -> bool:
        return hasattr(os, "geteuid") and os.geteuid() == 0

    def _server_cmd(self, program: str, *args: str) -> list[str]:
        cmd = [str(self.bin_dir / program), *args]
        if self._as_root():
            return ["runuser", "-u", SUPERUSER, "--", *cmd]
        return cmd

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self._server_cmd(program, *args),
            cwd="/",
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        if check and result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise failure(f"postgres: {program} failed (exit code {result.returncode}): {output}", self.log_path)
        return result

    def check_prerequisites(self) -> None:
        if self.external:
            return
        self.bin_dir  # noqa: B018 - raises with the install hint
        if self._as_root():
            if shutil.which("runuser") is None:
                raise StackError("runuser not found: install util-linux (Debian: apt-get install util-linux)")
            try:
                pwd.getpwnam(SUPERUSER)
            except KeyError:
                raise StackError(
                    "running as root, but there is no `postgres` system user to run PostgreSQL as "
                    "(PostgreSQL refuses root): install the postgresql package or `useradd --system postgres`"
                ) from None

    def _prepare_ownership(self) -> None:
        """As root: the postgres user owns the data folder and log file and can reach them."""
        if not self._as_root():
            return
        user = pwd.getpwnam(SUPERUSER)
        for path in (self.data_dir, *self.data_dir.rglob("*")):
            if path.lstat().st_uid != user.pw_uid:
                os.lchown(path, user.pw_uid, user.pw_gid)
        os.lchown(self.log_path, user.pw_uid, user.pw_gid)
        # Folders above the data dir may be private to root (pytest's tmp folders are 0700):
        # grant the search bit only, never listing, so the postgres user can reach its files.
        probe = subprocess.run(
            ["runuser", "-u", SUPERUSER, "--", "test", "-w", str(self.data_dir), "-a", "-w", str(self.log_path)],
            cwd="/",
            capture_output=True,
        )
        if probe.returncode != 0:
            touched = []
            for folder in {*self.data_dir.parents, *self.log_path.parents}:
                mode = folder.stat().st_mode
                if not mode & 0o001:
                    os.chmod(folder, (mode & 0o7777) | 0o001)
                    touched.append(str(folder))
            if touched:
                print(f"postgres: granted others the search bit (o+x) on {', '.join(sorted(touched))} "
                      "so the postgres user can reach its data", file=sys.stderr)

    def _write_config(self) -> None:
        socket_dir = str(self.data_dir)
        if len(f"{socket_dir}/.s.PGSQL.{self.port}") > _SOCKET_PATH_MAX:
            socket_dir = ""  # path too long for a unix socket: TCP only
        (self.data_dir / "pilar.conf").write_text(
            "# written by pilar-stack at every start; edit the code in deploy/, not this file\n"
            "listen_addresses = '127.0.0.1'\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = '{socket_dir}'\n"
            "max_connections = 200\n"
            # Development only: no fsync. A killed server loses nothing (the kernel still holds the
            # written pages; commits stay synchronous), only a crash of the machine itself could.
            "fsync = off\n"
            "timezone = 'UTC'\n"
            "log_timezone = 'UTC'\n"
        )
        main_conf = self.data_dir / "postgresql.conf"
        include = "include_if_exists = 'pilar.conf'"
        if include not in main_conf.read_text():
            with open(main_conf, "a") as handle:
                handle.write(f"\n# pilar-stack settings\n{include}\n")

    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    def pid(self) -> int | None:
        """The postmaster's pid while it runs."""
        pid = read_pid(self.data_dir / "postmaster.pid")
        return pid if pid_alive(pid, "postgres") else None

    def is_running(self) -> bool:
        return self.pid() is not None

    def start(self) -> None:
        """initdb once, then start the server (idempotent); an external server is only checked."""
        if self.external:
            return
        self.check_prerequisites()
        if self.is_running():
            if port_open(self.port):
                return
            self.stop()  # runs with another configuration; restart with ours
        elif port_open(self.port):
            raise StackError(f"postgres: port {self.port} is already in use by another program; "
                             "stop it or set PILAR_PG_PORT")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.touch()
        self._prepare_ownership()
        if not self.initialized():
            self._run(
                "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust",
                "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
            )  # fmt: skip
        self._write_config()
        self._prepare_ownership()
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_path), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``; ``immediate`` is a crash-like stop); idempotent."""
        if self.external or not self.initialized() or not self.is_running():
            return
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, mode: str = "fast") -> None:
        """``pg_ctl restart`` (``fast``: roll back open transactions and drop every connection, as
        an operator's restart or a failover does); waits until the server accepts connections."""
        if self.external:
            raise StackError("postgres: an external server is not ours to restart")
        if not self.is_running():
            self.start()
            return
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_path), "-m", mode, "-w", "-t", "60", "restart")

    # ------------------------------------------------------------------ databases

    def create_databases(self, names: Iterable[str]) -> None:
        """Create the ``pilar`` role and each database (owned by it, with pg_trgm); idempotent."""
        wanted = list(dict.fromkeys(names))
        for name in wanted:
            if not _IDENTIFIER.match(name):
                raise ValueError(f"database name {name!r}: use lower-case letters, digits and _")
        run_coroutine(self._create_databases(wanted))

    async def _connect(self, database: str):  # -> asyncpg.Connection
        import asyncpg

        try:
            return await asyncpg.connect(self.admin_dsn(database), timeout=10)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            where = f"{self.host}:{self.port}/{database}"
            source = "PILAR_PG_ADMIN_URL" if self.external else f"the local cluster (log: {self.log_path})"
            raise StackError(f"postgres: cannot connect to {where} via {source}: {exc}") from exc

    async def _create_databases(self, names: list[str]) -> None:
        import asyncpg

        password = self.password.replace("'", "''")
        conn = await self._connect("postgres")
        try:
            if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", ROLE) is None:
                try:
                    await conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{password}'")
                except asyncpg.DuplicateObjectError:
                    pass
            try:
                await conn.execute(f"ALTER ROLE {ROLE} WITH LOGIN PASSWORD '{password}'")
            except asyncpg.InsufficientPrivilegeError as exc:
                print(f"postgres: could not set the password of role {ROLE}: {exc}", file=sys.stderr)
            for name in names:
                if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name) is None:
                    try:
                        await conn.execute(f'CREATE DATABASE "{name}" OWNER {ROLE}')
                    except asyncpg.DuplicateDatabaseError:
                        pass
        finally:
            await conn.close()
        for name in names:
            conn = await self._connect(name)
            try:
                try:
                    await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                except asyncpg.UniqueViolationError:
                    pass  # created concurrently
                try:
                    await conn.execute(f"GRANT ALL ON SCHEMA public TO {ROLE}")
                except asyncpg.InsufficientPrivilegeError:
                    pass  # PostgreSQL 15+: the owner of the database owns public already
            finally:
                await conn.close()
