"""The registry's consumer of shelter discharges: a discharge with the survivor's consent to
economic support becomes an enrolment proposal, through the same ``propose`` use case (and
so the same eligibility rules) as a proposal made by a regency office.

The shelter sends only the registry ``person_id`` and the programme. The proposal names a
neutral proposer (``system:social-referral``), never the shelter, so that nobody reading
enrolments learns that the person was a shelter's client. A proposal that cannot be made
(unknown person, not eligible, already enrolled) is an outcome, not a failure: it is logged
with the rules it broke, without the person, and the consumer moves on. Only unexpected
errors are retried and, in the end, dead-lettered.
"""

from __future__ import annotations

import uuid

import structlog
from prometheus_client import Counter
from sqlmodel import select

from pilar_contracts.shelter import CaseDischarged
from pilar_kernel.auth import Principal
from pilar_kernel.consumer import Consumer
from pilar_kernel.events import Envelope
from pilar_kernel.problems import Problem

from ..persons.models import Person
from ..programmes.service import propose

log = structlog.get_logger("registry.referrals")

shelter_referrals = Consumer(name="registry.shelter-referrals")

# The proposer: province-wide (no region claim), acting as a system user.
REFERRER = Principal(subject="registry.shelter-referrals", scopes=frozenset(), region=None, claims={"user": "system:social-referral"})

OUTCOMES = Counter("pilar_registry_referrals_total", "Economic-support referrals handled, by outcome", ["source", "outcome"])

MAX_MERGE_HOPS = 10


async def current_person(session, person_id: uuid.UUID) -> uuid.UUID:
    """Follow merges to the surviving record (a referral may carry a merged-away id)."""
    for _ in range(MAX_MERGE_HOPS):
        into = (await session.exec(select(Person.merged_into).where(Person.id == person_id))).first()
        if into is None:
            return person_id
        person_id = into
    return person_id


@shelter_referrals.on(CaseDischarged)
async def propose_economic_support(session, event: CaseDischarged, envelope: Envelope) -> None:
    support = event.economic_support
    if support is None:
        return  # an ordinary discharge: nothing for the registry
    if support.person_id is None:
        OUTCOMES.labels("shelter", "no_person").inc()
        log.info("economic-support referral without a registry person: nothing to propose", ce_id=envelope.id,
                 programme=support.programme_code)
        return
    person_id = await current_person(session, support.person_id)
    try:
        async with session.begin_nested():  # a refused proposal leaves nothing behind
            enrolment = await propose(session, REFERRER, person_id, support.programme_code)
    except Problem as exc:
        rules = sorted({e.get("rule", "") for e in exc.errors or []})
        OUTCOMES.labels("shelter", exc.type).inc()
        log.warning("economic-support referral not proposed", ce_id=envelope.id, programme=support.programme_code,
                    problem=exc.type, rules=rules)
        return
    OUTCOMES.labels("shelter", "proposed").inc()
    log.info("economic-support referral proposed", ce_id=envelope.id, programme=support.programme_code, enrolment_id=str(enrolment.id))
