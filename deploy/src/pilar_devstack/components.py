"""The processes of the platform and the stack's settings (all from the environment).

| name            | package           | port | database          | folder                    |
|-----------------|-------------------|------|-------------------|---------------------------|
| gateway         | gateway           | 8000 | gateway           | gateway                   |
| registry        | registry          | 8001 | registry          | services/registry         |
| disbursement    | disbursement      | 8002 | disbursement      | services/disbursement     |
| shelter         | shelter           | 8003 | shelter           | services/shelter          |
| homeless-return | homeless_return   | 8004 | homeless_return   | services/homeless-return  |
| disaster        | disaster          | 8005 | disaster          | services/disaster         |
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .processes import StackError


@dataclass(frozen=True)
class Component:
    """One process of the platform: an ASGI app served by uvicorn from its own folder."""

    name: str
    package: str
    default_port: int
    database: str
    service_dir: str  # relative to the repository root (an absolute path is used as is)
    migrate_module: str | None = "pilar_kernel.prestart"  # run as `python -m ...` before start

    @property
    def env_name(self) -> str:
        return self.name.upper().replace("-", "_")

    @property
    def port_env(self) -> str:
        return f"PILAR_PORT_{self.env_name}"

    def port(self, environ: Mapping[str, str] | None = None) -> int:
        environ = os.environ if environ is None else environ
        return _int_env(environ, self.port_env, self.default_port)


COMPONENTS: tuple[Component, ...] = (
    Component("gateway", "gateway", 8000, "gateway", "gateway"),
    Component("registry", "registry", 8001, "registry", "services/registry"),
    Component("disbursement", "disbursement", 8002, "disbursement", "services/disbursement"),
    Component("shelter", "shelter", 8003, "shelter", "services/shelter"),
    Component("homeless-return", "homeless_return", 8004, "homeless_return", "services/homeless-return"),
    Component("disaster", "disaster", 8005, "disaster", "services/disaster"),
    # A stand-in for the paying bank (no database, no migrations): disbursement sends it batches.
    Component("banksim", "banksim", 8090, "banksim", "deploy/banksim", migrate_module=None),
)

# The platform's own services (the bank simulator is not one of them).
PLATFORM = tuple(c for c in COMPONENTS if c.migrate_module is not None)

GATEWAY = "gateway"


def select(components: Sequence[Component], names: Iterable[str] | None) -> list[Component]:
    """The components named (in table order), all of them for None; unknown names are an error."""
    if names is None:
        return list(components)
    wanted = list(dict.fromkeys(names))
    known = {component.name: component for component in components}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise StackError(f"unknown component(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [component for component in components if component.name in wanted]


def discover_topics(components: Iterable[Component]) -> list[str]:
    """Every topic the given components publish or consume.

    Importing ``<package>.events`` registers the service's event types with the kernel;
    ``pilar_kernel.events.all_topics()`` then lists their topics. A package without an
    ``events`` module contributes none.
    """
    imported = False
    for component in components:
        module = f"{component.package}.events"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue
            raise StackError(
                f"{component.name}: cannot import {module} ({exc}); is the workspace installed (uv sync)?"
            ) from exc
        imported = True
    if not imported:
        return []
    from pilar_kernel.events import all_topics

    return sorted(set(all_topics()))


def _int_env(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise StackError(f"{name}={raw!r} is not a number") from None


@dataclass
class StackConfig:
    """Where the stack lives and which ports it uses; ``from_env`` reads the PILAR_* variables."""

    run_dir: Path
    cache_dir: Path
    pg_port: int = 5433
    pg_password: str = "pilar"
    pg_admin_url: str | None = None  # an external server: create databases there, start none
    kafka_port: int = 9092
    controller_port: int = 9093
    partitions: int = 6
    component_ports: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_env(cls, repo: Path, environ: Mapping[str, str] | None = None,
                 components: Sequence[Component] = COMPONENTS) -> StackConfig:
        env = os.environ if environ is None else environ
        return cls(
            run_dir=Path(env.get("PILAR_RUN_DIR") or repo / ".run").resolve(),
            cache_dir=Path(env.get("PILAR_CACHE_DIR") or repo / ".cache").resolve(),
            pg_port=_int_env(env, "PILAR_PG_PORT", 5433),
            pg_password=env.get("PILAR_PG_PASSWORD") or "pilar",
            pg_admin_url=env.get("PILAR_PG_ADMIN_URL") or None,
            kafka_port=_int_env(env, "PILAR_KAFKA_PORT", 9092),
            controller_port=_int_env(env, "PILAR_KAFKA_CONTROLLER_PORT", 9093),
            partitions=_int_env(env, "PILAR_TOPIC_PARTITIONS", 6),
            component_ports={component.name: component.port(env) for component in components},
        )
