"""The bank sender: a background worker that hands queued payments to the bank in batches.

Claiming a batch is one transaction: the payments become ``sent`` (next attempt), the batch
is recorded and the ``PaymentSent`` events go to the outbox. Only then is the batch posted,
signed, to the bank. A post that fails or goes unanswered leaves the batch ``pending`` and it
is posted again later with the same batch id, which the bank treats as the same batch; a
bank that refuses a batch outright fails its attempts, which can then be retried.
Several batches are posted at once (``bank_max_in_flight``) while the next is claimed.

The status checker (:class:`BankStatusChecker`, another worker) asks the bank about payments
whose result never came, with :func:`query_status`.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import datetime
from typing import Any, Literal

import httpx
import structlog
from fastapi import FastAPI
from prometheus_client import Counter, Gauge
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pilar_kernel.http import EXTERNAL_KEEPALIVE_EXPIRY_S, async_client

from . import service, signing

log = structlog.get_logger("disbursement.bank")

UNKNOWN_OUTCOMES = Gauge("pilar_disbursement_unknown_outcome_payments",
                         "Bank payments sent longer than PILAR_BANK_STATUS_AFTER_S ago with no result yet")
STATUS_ANSWERS = Counter("pilar_disbursement_bank_status_answers_total",
                         "Instructions the bank was asked about, by its answer (error: no believable answer)", ["answer"])


class BankSender:
    def __init__(self, app: FastAPI) -> None:
        self._settings = app.state.settings
        self._sessions = app.state.session_factory
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task] = set()
        self._last_repost_check = 0.0
        self._client: httpx.AsyncClient | None = None
        self._after: uuid.UUID | None = None  # where the queue scan resumes (see claim_bank_batch)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        # The bank is not our server: idle connections go before a common 5 s keep-alive.
        self._client = async_client(timeout=self._settings.bank_request_timeout_s, keepalive_expiry=EXTERNAL_KEEPALIVE_EXPIRY_S)
        try:
            while not self._stopping.is_set():
                if len(self._in_flight) >= self._settings.bank_max_in_flight:
                    await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                await self._repost_stale()
                claimed = await self._claim()
                if claimed is not None:
                    self._spawn(*claimed)
                    continue
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self._settings.bank_idle_poll_s)
                except TimeoutError:
                    pass
                self._wake.clear()
        finally:
            if self._in_flight:
                await asyncio.wait(self._in_flight, timeout=10)
            await self._client.aclose()

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def _spawn(self, batch_id: uuid.UUID, instructions: list[dict[str, Any]]) -> None:
        task = asyncio.create_task(self._post(batch_id, instructions))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _claim(self) -> tuple[uuid.UUID, list[dict[str, Any]]] | None:
        size = self._settings.bank_batch_size
        while True:
            async with self._sessions() as session, session.begin():
                claimed = await service.claim_bank_batch(session, size, self._after)
            if claimed is not None and len(claimed[1]) == size:
                self._after = max(uuid.UUID(i["payment_id"]) for i in claimed[1])
                return claimed
            # The end of the queue: start again from the front, where retries may wait.
            restarted, self._after = self._after is not None, None
            if claimed is not None or not restarted:
                return claimed

    async def _repost_stale(self) -> None:
        now = time.monotonic()
        if now - self._last_repost_check < 5:
            return
        self._last_repost_check = now
        async with self._sessions() as session, session.begin():
            stale = await service.batches_to_repost(session, self._settings.bank_resend_after_s)
            batches = [(batch_id, await service.batch_instructions(session, batch_id)) for batch_id in stale]
        for batch_id, instructions in batches:
            log.info("posting a batch again", batch_id=str(batch_id), instructions=len(instructions))
            self._spawn(batch_id, instructions)

    async def _post(self, batch_id: uuid.UUID, instructions: list[dict[str, Any]]) -> None:
        settings = self._settings
        body = json.dumps(
            {"batch_id": str(batch_id), "callback_url": settings.bank_callback_url, "instructions": instructions}, separators=(",", ":")
        ).encode()
        headers = {"content-type": "application/json", **signing.sign(settings.bank_hmac_secret, body)}
        error, accepted, rejected = None, False, None
        try:
            resp = await self._client.post(settings.bank_url.rstrip("/") + "/v1/batches", content=body, headers=headers)
            if resp.status_code < 300:
                accepted = True
            elif resp.status_code in (400, 409, 422):
                # The bank read the batch and said no: its instructions failed. Anything else
                # (our credentials, its outage) is no fault of the payments: post again later.
                rejected = f"HTTP {resp.status_code}: {resp.text[:300]}"
            else:
                error = f"HTTP {resp.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        try:
            async with self._sessions() as session, session.begin():
                if rejected:
                    log.error("bank refused a batch", batch_id=str(batch_id), error=rejected)
                    await service.reject_batch(session, batch_id, rejected)
                else:
                    await service.record_post(session, batch_id, accepted=accepted, error=error)
        except Exception as exc:  # the batch stays pending and is posted again later
            log.warning("could not record a batch post", batch_id=str(batch_id), error=str(exc))
        if error:
            log.warning("bank post failed; will post again", batch_id=str(batch_id), error=error)


# -- asking the bank about payments whose result never came --------------------------------


class BankAnswerInvalid(Exception):
    """The bank's answer to a status query was not signed by it, or not what it should be."""


class _StatusResult(BaseModel):
    model_config = ConfigDict(extra="ignore")

    instruction_id: str = Field(max_length=100)
    status: Literal["succeeded", "failed", "returned", "pending", "unknown"]
    reason: str | None = Field(default=None, max_length=500)
    reference: str | None = Field(default=None, max_length=100)
    at: datetime | None = None
    returned_amount: int | None = Field(default=None, gt=0, le=10**15)


class _StatusAnswer(BaseModel):
    results: list[_StatusResult] = Field(max_length=1000)


async def query_status(client: httpx.AsyncClient, settings: Any, instruction_ids: list[str]) -> dict[str, _StatusResult]:
    """Ask the bank what became of these instructions (``<payment_id>:<attempt>``).

    ``POST {bank}/v1/status-queries`` ``{"instructions": [...]}``, signed like a batch; the
    answer ``{"results": [{instruction_id, status, reason, reference, at, returned_amount}]}``
    must carry the bank's signature over its raw body, or it is not believed.
    """
    body = json.dumps({"instructions": instruction_ids}, separators=(",", ":")).encode()
    headers = {"content-type": "application/json", **signing.sign(settings.bank_hmac_secret, body)}
    resp = await client.post(settings.bank_url.rstrip("/") + "/v1/status-queries", content=body, headers=headers)
    if resp.status_code != 200:
        raise BankAnswerInvalid(f"HTTP {resp.status_code}: {resp.text[:300]}")
    try:
        signing.verify(settings.bank_hmac_secret, resp.content, resp.headers, tolerance_s=settings.bank_callback_tolerance_s)
        answer = _StatusAnswer.model_validate_json(resp.content)
    except (signing.SignatureProblem, signing.StaleSignature, ValidationError) as exc:
        raise BankAnswerInvalid(f"{type(exc).__name__}: {exc}"[:300]) from exc
    asked = set(instruction_ids)
    return {r.instruction_id: r for r in answer.results if r.instruction_id in asked}


class BankStatusChecker:
    """A background worker: bank payments ``sent`` longer than ``bank_status_after_s`` with no
    result (the bank's callbacks were lost, say while this service was down) are asked about,
    every ``bank_status_interval_s`` until they are settled. What the bank answers is applied
    like a callback (``service.apply_reports``), so a late callback racing it changes nothing twice.
    """

    def __init__(self, app: FastAPI) -> None:
        self._settings = app.state.settings
        self._sessions = app.state.session_factory
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        settings = self._settings
        async with async_client(timeout=settings.bank_request_timeout_s, keepalive_expiry=EXTERNAL_KEEPALIVE_EXPIRY_S) as client:
            while not self._stopping.is_set():
                asked = await self.check_once(client)
                if asked >= settings.bank_status_batch_size:
                    continue
                try:
                    await asyncio.wait_for(self._stopping.wait(), timeout=settings.bank_status_poll_s)
                except TimeoutError:
                    pass

    async def stop(self) -> None:
        self._stopping.set()

    async def check_once(self, client: httpx.AsyncClient) -> int:
        """One status query for the payments that are due; returns how many were asked about."""
        settings = self._settings
        async with self._sessions() as session, session.begin():
            UNKNOWN_OUTCOMES.set(await service.count_unknown_outcomes(session, settings.bank_status_after_s))
            due = await service.claim_status_checks(session, settings.bank_status_after_s, settings.bank_status_interval_s,
                                                    settings.bank_status_batch_size)
        if not due:
            return 0
        try:
            answers = await query_status(client, settings, [service.files.instruction_id(p, a) for p, a in due])
        except (httpx.HTTPError, BankAnswerInvalid) as exc:
            STATUS_ANSWERS.labels("error").inc(len(due))
            log.warning("bank status query failed; will ask again", payments=len(due), error=f"{type(exc).__name__}: {exc}"[:300])
            return 0
        for answer in answers.values():
            STATUS_ANSWERS.labels(answer.status).inc()
        async with self._sessions() as session, session.begin():
            summary = await service.apply_status_answers(session, due, answers)
        log.info("asked the bank about payments with no result", asked=len(due), **summary)
        return len(due)
