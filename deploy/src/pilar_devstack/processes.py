"""Process plumbing for the local stack, and the service processes themselves.

Every long-running child (the Kafka broker, each service) runs in its own process group
(``start_new_session``), writes stdout/stderr to ``<run_dir>/logs/<name>.log`` and has its
pid in ``<run_dir>/pids/<name>.pid``. Stopping sends SIGTERM to the whole group, waits, then
SIGKILLs it, so nothing is left behind even if a process spawned children.
A later invocation (``pilar-stack down`` after ``pilar-stack up`` exited) finds the
processes again through the pid files; a pid is only trusted when ``/proc/<pid>/cmdline``
still names what we started (pids get reused).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pilar_kernel.http import SERVER_KEEP_ALIVE_S

if TYPE_CHECKING:
    from .components import Component


T = TypeVar("T")


class StackError(RuntimeError):
    """A part of the stack could not be started or reached; the message says which and where its log is."""


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code, even inside a running event loop.

    It runs on a fresh loop in a worker thread, so a caller such as a pytest-asyncio session
    fixture (a running loop in this thread) is neither blocked from nesting nor disturbed.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pilar-devstack") as pool:
        return pool.submit(asyncio.run, coro).result()


# --------------------------------------------------------------------------- paths


def repo_root() -> Path:
    """The repository root: the folder holding ``deploy/kafka/pom.xml``.

    Walks up from this file (the workspace installs this package editable), then from the
    current directory; ``PILAR_REPO_ROOT`` overrides both.
    """
    explicit = os.environ.get("PILAR_REPO_ROOT")
    if explicit:
        return Path(explicit).resolve()
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for folder in (start, *start.parents):
            if (folder / "deploy" / "kafka" / "pom.xml").is_file():
                return folder
    raise StackError(
        "cannot find the Pilar repository (a folder holding deploy/kafka/pom.xml): "
        "run from inside it or set PILAR_REPO_ROOT"
    )


def ensure_ignored_dir(folder: Path) -> Path:
    """Create ``folder`` and make git ignore it (a ``.gitignore`` of ``*`` inside it)."""
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / ".gitignore"
    if not marker.exists():
        marker.write_text("# created by pilar-stack: generated data, never committed\n*\n")
    return folder


# --------------------------------------------------------------------------- ports

_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now and not handed out before by this process."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise StackError("could not find a free TCP port on 127.0.0.1")


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------- pids


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, process group) of a pid from /proc, or None when unknown."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()
    return fields[0], int(fields[2])


def _cmdline(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace")


def pid_alive(pid: int | None, marker: str | None = None) -> bool:
    """True when pid runs (zombies count as dead) and, if given, its command line holds marker."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, belongs to another user (e.g. the postgres postmaster)
    stat = _proc_stat(pid)
    if stat is not None and stat[0] in ("Z", "X"):
        return False
    if marker is not None:
        cmd = _cmdline(pid)
        if cmd is not None and marker not in cmd:
            return False
    return True


def group_alive(pgid: int) -> bool:
    """True while any non-zombie process is in process group pgid."""
    if not Path("/proc/self/stat").exists():  # not Linux: ask the kernel
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[1] == pgid and stat[0] not in ("Z", "X"):
                return True
    return False


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_group_gone(pgid: int, timeout: float, proc: subprocess.Popen | None) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None:
            proc.poll()  # reap our own child so it does not linger as a zombie
        if not group_alive(pgid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def terminate_group(pgid: int, timeout: float = 10.0, proc: subprocess.Popen | None = None) -> None:
    """SIGTERM the process group, wait up to ``timeout`` s, then SIGKILL whatever is left."""
    _signal_group(pgid, signal.SIGTERM)
    if not _wait_group_gone(pgid, timeout, proc):
        kill_group(pgid, proc)
    elif proc is not None:
        proc.wait(timeout=5)


def kill_group(pgid: int, proc: subprocess.Popen | None = None) -> None:
    """SIGKILL the process group and wait until it is gone."""
    _signal_group(pgid, signal.SIGKILL)
    _wait_group_gone(pgid, 10.0, proc)
    if proc is not None:
        proc.wait(timeout=5)


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def write_pid(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(path)


def remove_file(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


# --------------------------------------------------------------------------- spawning and logs


def spawn(cmd: Sequence[str], *, cwd: Path, env: Mapping[str, str], log_path: Path) -> subprocess.Popen:
    """Start cmd in its own process group with stdout+stderr appended to log_path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"\n=== {stamp} (cwd {cwd}) {shlex.join(cmd)}\n".encode())
        log.flush()
        return subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a text file ('' when it does not exist)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def failure(what: str, log_path: Path, lines: int = 20) -> StackError:
    """A StackError naming the failing part and its log file, with the log's last lines."""
    excerpt = tail(log_path, lines)
    message = f"{what}; see {log_path}"
    if excerpt:
        message += "\n--- last lines of " + log_path.name + " ---\n" + excerpt
    return StackError(message)


# --------------------------------------------------------------------------- secrets

SECRET_KEYS = ("PILAR_NIK_HASH_KEY", "PILAR_PII_KEY", "PILAR_INDEX_KEY")
PRIVATE_KEY_FILE = "jwt-private.pem"
JWKS_FILE = "jwks.json"


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    try:
        text = path.read_text()
    except FileNotFoundError:
        return values
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def ensure_secrets(secrets_dir: Path) -> dict[str, str]:
    """Development secrets, made once into ``secrets_dir`` and reused; returns their env vars.

    ``dev.env`` holds random 32-byte hex keys for the NIK hash and PII encryption; the JWT
    signing key pair comes from ``pilar_kernel.auth.write_dev_keys``.
    """
    secrets_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(secrets_dir, 0o700)
    dev_env = secrets_dir / "dev.env"
    values = _read_env_file(dev_env)
    if any(not values.get(key) for key in SECRET_KEYS):
        for key in SECRET_KEYS:
            values[key] = values.get(key) or secrets.token_hex(32)
        tmp = dev_env.with_suffix(".tmp")
        tmp.write_text(
            "# development-only secrets made by pilar-stack; never use them anywhere else\n"
            + "".join(f"{key}={values[key]}\n" for key in SECRET_KEYS)
        )
        os.chmod(tmp, 0o600)
        tmp.replace(dev_env)
    private_key, jwks = secrets_dir / PRIVATE_KEY_FILE, secrets_dir / JWKS_FILE
    if not (private_key.is_file() and jwks.is_file()):
        from pilar_kernel.auth import write_dev_keys

        private_key, jwks = write_dev_keys(secrets_dir)
    return {
        **{key: values[key] for key in SECRET_KEYS},
        "PILAR_JWT_PRIVATE_KEY_FILE": str(private_key),
        "PILAR_JWKS_FILE": str(jwks),
    }


# --------------------------------------------------------------------------- service processes


def service_command(package: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", f"{package}.app:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port),
        # Idle connections stay open well past our clients' idle expiry (pilar_kernel.http).
        "--timeout-keep-alive", str(SERVER_KEEP_ALIVE_S),
    ]  # fmt: skip


@dataclass
class ServiceStatus:
    name: str
    running: bool
    pid: int | None
    port: int
    ready: bool


class ServiceSupervisor:
    """Migrates, starts, watches and stops the service processes (one uvicorn each)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.logs_dir = run_dir / "logs"
        self.pids_dir = run_dir / "pids"
        self._procs: dict[str, subprocess.Popen] = {}

    def log_path(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def migrate_log_path(self, name: str) -> Path:
        return self.logs_dir / f"{name}-migrate.log"

    def pid_path(self, name: str) -> Path:
        return self.pids_dir / f"{name}.pid"

    @staticmethod
    def _marker(component: Component) -> str:
        return f"{component.package}.app:create_app"

    def pid(self, component: Component) -> int | None:
        """The pid of the running service, or None (a stale pid file is removed)."""
        path = self.pid_path(component.name)
        pid = read_pid(path)
        if pid is None:
            return None
        if pid_alive(pid, self._marker(component)):
            return pid
        proc = self._procs.pop(component.name, None)
        if proc is not None:
            proc.poll()
        remove_file(path)
        return None

    @staticmethod
    def is_ready(port: int, timeout: float = 2.0) -> bool:
        import httpx

        try:
            response = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=timeout)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def status(self, component: Component, port: int) -> ServiceStatus:
        pid = self.pid(component)
        ready = pid is not None and self.is_ready(port)
        return ServiceStatus(component.name, pid is not None, pid, port, ready)

    def start(
        self,
        planned: Iterable[tuple[Component, int, Path, dict[str, str]]],
        *,
        ready_timeout: float = 60.0,
        migrate_timeout: float = 180.0,
    ) -> list[str]:
        """Migrate and start each (component, port, cwd, env); wait until every one is ready.

        Returns the names actually started. A service that already runs and answers /ready is
        left alone; one that runs but does not answer is restarted.
        """
        to_start: list[tuple[Component, int, Path, dict[str, str]]] = []
        for component, port, cwd, env in planned:
            pid = self.pid(component)
            if pid is not None:
                if self.is_ready(port):
                    continue
                print(f"{component.name}: pid {pid} runs but is not ready; restarting it", file=sys.stderr)
                self.stop(component)
            if port_open(port):
                raise StackError(
                    f"{component.name}: port {port} is already in use by another program; "
                    f"stop it or set {component.port_env}"
                )
            if not cwd.is_dir():
                raise StackError(f"{component.name}: service folder {cwd} does not exist")
            to_start.append((component, port, cwd, env))
        if not to_start:
            return []

        self._migrate(to_start, migrate_timeout)

        for component, port, cwd, env in to_start:
            proc = spawn(
                service_command(component.package, port),
                cwd=cwd,
                env=env,
                log_path=self.log_path(component.name),
            )
            self._procs[component.name] = proc
            write_pid(self.pid_path(component.name), proc.pid)

        self._wait_ready(to_start, ready_timeout)
        return [component.name for component, *_ in to_start]

    def _migrate(self, to_start: list[tuple[Component, int, Path, dict[str, str]]], timeout: float) -> None:
        """Run every service's migrations side by side; fail naming the first that failed."""
        running: list[tuple[Component, subprocess.Popen]] = []
        for component, _port, cwd, env in to_start:
            if component.migrate_module is None:
                continue
            proc = spawn(
                [sys.executable, "-m", component.migrate_module],
                cwd=cwd,
                env=env,
                log_path=self.migrate_log_path(component.name),
            )
            running.append((component, proc))
        deadline = time.monotonic() + timeout
        failed: list[StackError] = []
        for component, proc in running:
            try:
                code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                kill_group(proc.pid, proc)
                failed.append(failure(f"{component.name}: migrations did not finish within {timeout:.0f} s",
                                      self.migrate_log_path(component.name)))
                continue
            if code != 0:
                failed.append(failure(f"{component.name}: migrations failed (exit code {code})",
                                      self.migrate_log_path(component.name)))
        if failed:
            raise failed[0]

    def _wait_ready(self, started: list[tuple[Component, int, Path, dict[str, str]]], timeout: float) -> None:
        import httpx

        from pilar_kernel.http import sync_client

        pending = {component.name: (component, port) for component, port, _cwd, _env in started}
        deadline = time.monotonic() + timeout
        with sync_client(timeout=2.0) as client:
            while pending:
                for name, (_component, port) in list(pending.items()):
                    proc = self._procs.get(name)
                    if proc is not None and proc.poll() is not None:
                        remove_file(self.pid_path(name))
                        raise failure(f"{name}: the service exited with code {proc.returncode} while starting",
                                      self.log_path(name))
                    try:
                        if client.get(f"http://127.0.0.1:{port}/ready").status_code == 200:
                            del pending[name]
                    except httpx.HTTPError:
                        pass
                if not pending:
                    return
                if time.monotonic() >= deadline:
                    name = next(iter(pending))
                    raise failure(
                        f"{name}: not ready after {timeout:.0f} s "
                        f"(GET http://127.0.0.1:{pending[name][1]}/ready never answered 200)",
                        self.log_path(name),
                    )
                time.sleep(0.25)

    def stop(self, component: Component, timeout: float = 10.0) -> None:
        self.stop_many([component], timeout)

    def stop_many(self, components: Iterable[Component], timeout: float = 10.0) -> None:
        """SIGTERM every service's process group at once, wait up to ``timeout`` s, SIGKILL the rest."""
        running: list[tuple[Component, int, subprocess.Popen | None]] = []
        for component in components:
            pid = self.pid(component)
            proc = self._procs.pop(component.name, None)
            if pid is not None:
                _signal_group(pid, signal.SIGTERM)
                running.append((component, pid, proc if proc is not None and proc.pid == pid else None))
            else:
                remove_file(self.pid_path(component.name))
        deadline = time.monotonic() + timeout
        for component, pid, proc in running:
            if not _wait_group_gone(pid, max(0.0, deadline - time.monotonic()), proc):
                kill_group(pid, proc)
            elif proc is not None:
                proc.wait(timeout=5)
            remove_file(self.pid_path(component.name))

    def kill(self, component: Component) -> None:
        """SIGKILL a service (for crash tests); its pid file stays until the next start or stop."""
        pid = self.pid(component)
        if pid is not None:
            proc = self._procs.get(component.name)
            kill_group(pid, proc if proc is not None and proc.pid == pid else None)


def service_urls(ports: Mapping[str, int]) -> str:
    """PILAR_SERVICE_URLS: JSON object of service name -> base URL."""
    return json.dumps({name: f"http://127.0.0.1:{port}" for name, port in ports.items()}, sort_keys=True)
