"""The append-only audit log of every read and change of a case.

An entry names who (client, staff member, role), when, what (the action and, in ``detail``,
field names or statuses, never survivor data) and which case, with the case's shelter at
that moment: the supervisors of that shelter read the entries. Entries are written in the
request's transaction, so a change and its entry commit together; a refused attempt is
written in a transaction of its own, because the request's is rolled back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from structlog.contextvars import get_contextvars

from .models import AuditEntry, Case

if TYPE_CHECKING:
    from .access import Actor


def _entry(actor: "Actor", case: Case, action: str, outcome: str, detail: dict[str, Any]) -> AuditEntry:
    return AuditEntry(
        subject=actor.principal.subject, user_id=actor.user_id, role=actor.role, action=action, outcome=outcome,
        case_id=case.id, shelter_id=case.shelter_id, detail=detail, correlation_id=get_contextvars().get("correlation_id"),
    )


def record(session, actor: "Actor", case: Case, action: str, **detail: Any) -> None:
    session.add(_entry(actor, case, action, "ok", detail))


async def record_denied(actor: "Actor", case: Case, action: str) -> None:
    async with actor.sessions() as session, session.begin():
        session.add(_entry(actor, case, action, "denied", {}))
