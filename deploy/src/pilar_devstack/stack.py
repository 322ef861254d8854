"""LocalStack: PostgreSQL, Kafka and the platform's processes, started and stopped together.

Used by the ``pilar-stack`` command and by test suites (which start the infrastructure once
per run on free ports in a temporary folder). Constructing one starts nothing.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .components import (
    COMPONENTS,
    GATEWAY,
    Component,
    StackConfig,
    discover_topics,
    select,
)
from pilar_kernel.kafka import ensure_topics

from .kafka import KafkaBroker, broker_answers, fetch_jars, find_java
from .postgres import Postgres
from .processes import (
    ServiceSupervisor,
    ensure_ignored_dir,
    ensure_secrets,
    port_open,
    repo_root,
    run_coroutine,
    service_urls,
)

STATE_FILE = "stack.json"


@dataclass
class Status:
    name: str
    state: str  # running | stopped | external
    pid: int | None
    port: int | None
    ready: bool


class LocalStack:
    """The local development stack; every argument left out comes from the PILAR_* environment."""

    def __init__(
        self,
        run_dir: Path | str | None = None,
        *,
        pg_port: int | None = None,
        kafka_port: int | None = None,
        controller_port: int | None = None,
        partitions: int | None = None,
        pg_password: str | None = None,
        pg_admin_url: str | None = None,  # "" forces our own cluster even when PILAR_PG_ADMIN_URL is set
        component_ports: Mapping[str, int] | None = None,
        components: Sequence[Component] = COMPONENTS,
        repo: Path | str | None = None,
        cache_dir: Path | str | None = None,
        stop_at_exit: bool = False,
    ) -> None:
        self.repo = Path(repo).resolve() if repo is not None else repo_root()
        self.components = tuple(components)
        config = StackConfig.from_env(self.repo, components=self.components)
        self.run_dir = Path(run_dir).resolve() if run_dir is not None else config.run_dir
        self.cache_dir = Path(cache_dir).resolve() if cache_dir is not None else config.cache_dir
        self.pg_port = pg_port if pg_port is not None else config.pg_port
        self.kafka_port = kafka_port if kafka_port is not None else config.kafka_port
        self.controller_port = controller_port if controller_port is not None else config.controller_port
        self.partitions = partitions if partitions is not None else config.partitions
        self.pg_password = pg_password if pg_password is not None else config.pg_password
        self.pg_admin_url = (pg_admin_url if pg_admin_url is not None else config.pg_admin_url) or None
        self.ports = {**config.component_ports, **(component_ports or {})}

        self.logs_dir = self.run_dir / "logs"
        self.pids_dir = self.run_dir / "pids"
        self.secrets_dir = self.run_dir / "secrets"
        self.postgres = Postgres(
            data_dir=self.run_dir / "data" / "postgres",
            log_path=self.logs_dir / "postgres.log",
            port=self.pg_port,
            password=self.pg_password,
            admin_url=self.pg_admin_url,
        )
        self.kafka = KafkaBroker(
            data_dir=self.run_dir / "data" / "kafka",
            libs_dir=self.cache_dir / "kafka" / "libs",
            log_path=self.logs_dir / "kafka.log",
            pid_path=self.pids_dir / "kafka.pid",
            log4j_config=self.repo / "deploy" / "kafka" / "log4j2.yaml",
            port=self.kafka_port,
            controller_port=self.controller_port,
            partitions=self.partitions,
        )
        self.services = ServiceSupervisor(self.run_dir)
        self._extra_env: dict[str, dict[str, str]] = {}  # per component, as last started (restart_component)
        if stop_at_exit:
            atexit.register(self.stop)

    @classmethod
    def from_saved(cls, run_dir: Path | str | None = None) -> LocalStack:
        """The stack as last started in run_dir: ports from its ``stack.json``, unless a PILAR_*
        variable sets them explicitly; the environment's defaults when nothing was saved.
        So ``up``, ``status`` and ``down`` keep talking to the processes that actually run."""
        probe = cls(run_dir)
        try:
            saved = json.loads((probe.run_dir / STATE_FILE).read_text())
        except (OSError, ValueError):
            return probe
        env = os.environ

        def pick(variable: str, key: str) -> int | None:
            return None if env.get(variable) else saved.get(key)

        by_name = {c.name: c for c in probe.components}
        ports = {
            name: port
            for name, port in (saved.get("component_ports") or {}).items()
            if name in by_name and not env.get(by_name[name].port_env)
        }
        return cls(
            probe.run_dir,
            pg_port=pick("PILAR_PG_PORT", "pg_port"),
            kafka_port=pick("PILAR_KAFKA_PORT", "kafka_port"),
            controller_port=pick("PILAR_KAFKA_CONTROLLER_PORT", "controller_port"),
            partitions=pick("PILAR_TOPIC_PARTITIONS", "partitions"),
            component_ports=ports,
        )

    def _save_state(self) -> None:
        ensure_ignored_dir(self.run_dir)
        state = {
            "pg_port": self.pg_port if not self.postgres.external else None,
            "kafka_port": self.kafka_port,
            "controller_port": self.controller_port,
            "partitions": self.partitions,
            "component_ports": self.ports,
        }
        (self.run_dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")

    # ------------------------------------------------------------------ prerequisites

    @property
    def pom(self) -> Path:
        return self.repo / "deploy" / "kafka" / "pom.xml"

    def check_prerequisites(self) -> None:
        """Raise a StackError saying exactly what to install when java or PostgreSQL is missing."""
        find_java()
        self.postgres.check_prerequisites()

    def fetch_kafka(self) -> bool:
        """Fetch the broker jars once (needs mvn only then); True when it fetched."""
        ensure_ignored_dir(self.cache_dir)
        return fetch_jars(self.pom, self.kafka.libs_dir)

    # ------------------------------------------------------------------ PostgreSQL

    def start_postgres(self) -> None:
        ensure_ignored_dir(self.run_dir)
        self.postgres.start()
        self._save_state()

    def stop_postgres(self, mode: str = "fast") -> None:
        """Stop our cluster (``immediate`` for a crash-like stop); nothing for an external server."""
        self.postgres.stop(mode)

    def restart_postgres(self, mode: str = "fast") -> None:
        """Restart our cluster (``pg_ctl restart -m fast``: every connection is dropped); returns
        once it accepts connections again. Not for an external server."""
        self.postgres.restart(mode)

    def create_databases(self, names: Iterable[str] | None = None) -> None:
        """Create databases (default: one per component) owned by role pilar, with pg_trgm."""
        names = [c.database for c in self.components] if names is None else list(names)
        self.postgres.create_databases(names)

    def database_url(self, name: str) -> str:
        return self.postgres.database_url(name)

    @property
    def admin_url(self) -> str:
        """A superuser URL (libpq/asyncpg form) for the ``postgres`` database."""
        return self.postgres.admin_dsn()

    # ------------------------------------------------------------------ Kafka

    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka.bootstrap

    def start_kafka(self, timeout: float = 90.0) -> None:
        """Start the broker (fetching its jars if needed) and wait until it answers."""
        ensure_ignored_dir(self.run_dir)
        self.fetch_kafka()
        self.kafka.start(timeout)
        self._save_state()

    def kill_kafka(self) -> None:
        """SIGKILL the broker, as in a crash; start_kafka() restarts it on the same data and ports."""
        self.kafka.kill()

    def stop_kafka(self) -> None:
        self.kafka.stop()

    def ensure_topics(self, topics: Iterable[str], partitions: int | None = None) -> list[str]:
        """Create missing topics (blocking; safe inside a running event loop); returns those created."""
        return run_coroutine(ensure_topics(self.kafka_bootstrap, list(topics), partitions or self.partitions))

    # ------------------------------------------------------------------ services

    def component(self, name: str) -> Component:
        return select(self.components, [name])[0]

    def port(self, name: str) -> int:
        return self.ports.get(name, self.component(name).default_port)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port(name)}"

    def component_env(self, component: Component, secrets: Mapping[str, str]) -> dict[str, str]:
        services = {c.name: self.port(c.name) for c in self.components if c.name != GATEWAY}
        env = dict(os.environ)
        env.update(
            {
                "PILAR_ENV": "development",
                "PILAR_DATABASE_URL": self.database_url(component.database),
                "PILAR_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
                "PILAR_TOPIC_PARTITIONS": str(self.partitions),
                **secrets,
                "PILAR_SERVICE_URLS": service_urls(services),
                "PILAR_GATEWAY_URL": self.url(GATEWAY),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self._wiring(component, secrets))
        return env

    def _wiring(self, component: Component, secrets: Mapping[str, str]) -> dict[str, str]:
        """Per-component settings that connect the local processes to each other."""
        if component.name == "disbursement" and any(c.name == "banksim" for c in self.components):
            return {"PILAR_BANK_URL": self.url("banksim"), "PILAR_BANK_CALLBACK_URL": f"{self.url('disbursement')}/v1/bank/callbacks"}
        if component.name == "banksim":
            from pilar_kernel.auth import SigningKey

            # The simulated bank calls back with a development token of its own.
            key = SigningKey.from_files(Path(secrets["PILAR_JWT_PRIVATE_KEY_FILE"]))
            return {"BANKSIM_CALLBACK_TOKEN": key.mint("bank-simulator", ["disbursement:bank-callback"], ttl_s=30 * 86400)}
        return {}

    def start_components(
        self,
        names: Iterable[str] | None = None,
        extra_env: Mapping[str, str] | None = None,
        *,
        ready_timeout: float = 60.0,
    ) -> list[str]:
        """Create their topics, migrate and start the components, wait until each is ready.

        Components already running and ready are left alone. Returns the names started.
        """
        ensure_ignored_dir(self.run_dir)
        chosen = select(self.components, names)
        topics = discover_topics(chosen)
        if topics:
            self.ensure_topics(topics)
        secrets = ensure_secrets(self.secrets_dir)
        planned = []
        for component in chosen:
            env = self.component_env(component, secrets)
            env.update(extra_env or {})
            self._extra_env[component.name] = dict(extra_env or {})
            planned.append((component, self.port(component.name), self.repo / component.service_dir, env))
        self._save_state()
        return self.services.start(planned, ready_timeout=ready_timeout)

    def stop_components(self, names: Iterable[str] | None = None) -> None:
        """SIGTERM the components (all at once), SIGKILL any still running after 10 s."""
        self.services.stop_many(select(self.components, names))

    def kill_component(self, name: str) -> None:
        """SIGKILL one component (a crash); start_components([name]) brings it back."""
        self.services.kill(self.component(name))

    def restart_component(self, name: str, *, ready_timeout: float = 60.0) -> None:
        """Start a component again (after a kill) with the extra environment it was last started
        with, as a process supervisor would: migrations, then the process; waits until ready."""
        self.start_components([name], self._extra_env.get(name), ready_timeout=ready_timeout)

    # ------------------------------------------------------------------ whole stack

    def stop(self) -> None:
        """Stop the components, then Kafka, then PostgreSQL; idempotent."""
        self.stop_components()
        self.stop_kafka()
        self.stop_postgres()

    def wipe(self) -> None:
        """Delete the data folders (PostgreSQL and Kafka) of a stopped stack."""
        shutil.rmtree(self.run_dir / "data", ignore_errors=True)

    def status(self) -> list[Status]:
        rows: list[Status] = []
        if self.postgres.external:
            rows.append(Status("postgres", "external", None, self.postgres.port, port_open(self.postgres.port,
                                                                                       self.postgres.host)))
        else:
            pid = self.postgres.pid()
            rows.append(Status("postgres", "running" if pid else "stopped", pid, self.pg_port,
                               pid is not None and port_open(self.pg_port)))
        kafka_pid = self.kafka.pid()
        kafka_ready = kafka_pid is not None and port_open(self.kafka_port) and broker_answers(self.kafka_bootstrap, 3.0)
        rows.append(Status("kafka", "running" if kafka_pid else "stopped", kafka_pid, self.kafka_port, kafka_ready))
        for component in self.components:
            service = self.services.status(component, self.port(component.name))
            rows.append(Status(component.name, "running" if service.running else "stopped", service.pid,
                               service.port, service.ready))
        return rows

    def log_path(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"
