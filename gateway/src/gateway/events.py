"""Events: the gateway publishes none; it reads every service's, for the AsyncAPI catalogue
and for webhook subscriptions.

Importing ``pilar_contracts.<service>`` registers that service's event models with the
kernel. The contracts package is a dependency of the gateway, so a gateway image installed
alone still knows every event; a service without a contract module is named missing.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

import structlog

from pilar_kernel.events import TYPE_PREFIX, Event, event_types

SOURCE = "/pilar/gateway"

log = structlog.get_logger("gateway.events")


def service_of(ce_type: str) -> str | None:
    """The publishing service named in a ce_type (``...dinsos.<service>.<aggregate>...``)."""
    if not ce_type.startswith(TYPE_PREFIX):
        return None
    return ce_type[len(TYPE_PREFIX) :].split(".", 1)[0].replace("_", "-")


def import_service_events(services: Iterable[str]) -> list[str]:
    """Import each service's event contracts; returns the services that could not be imported."""
    missing = []
    for service in services:
        module = f"pilar_contracts.{service.replace('-', '_')}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if not (exc.name and module.startswith(exc.name)):
                log.error("event module failed to import", module=module, error=str(exc))
            missing.append(service)
        except Exception as exc:  # a broken module must not keep the platform's front door shut
            log.error("event module failed to import", module=module, error=f"{type(exc).__name__}: {exc}")
            missing.append(service)
    if missing:
        log.warning("event modules not installed; their events are not catalogued", services=missing)
    return missing


def platform_events(services: Iterable[str]) -> list[type[Event]]:
    """Registered event models published by the given services, by ce_type."""
    wanted = set(services)
    return sorted((cls for cls in event_types().values() if service_of(cls.ce_type) in wanted), key=lambda c: c.ce_type)
