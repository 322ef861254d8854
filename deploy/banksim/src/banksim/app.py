"""The bank simulator's HTTP app (``uvicorn banksim.app:create_app --factory``).

Routes:

* ``POST /v1/batches``: a signed batch of payment instructions. Answers 202 at once; the
  same batch id again is acknowledged and not paid twice. Results follow by callback.
* ``POST /v1/status-queries``: a signed list of instruction ids; the signed answer says what
  became of each (``succeeded``, ``failed``, ``returned``, ``pending`` or ``unknown``), for a
  payer whose callbacks never arrived.
* ``GET /v1/statement``: every debit (paid), credit (returned) and failed instruction so far,
  as the CSV bank statement Pilar imports.
* ``GET /v1/stats``, ``GET /v1/config``, ``PUT /v1/config``: what it did, and its knobs
  (tests change them between runs).
* ``GET /health``, ``GET /ready``.

Every knob has an environment variable ``BANKSIM_<NAME>`` (see :class:`Config`).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import hmac
import io
import json
import os
import random
import time
from collections import Counter
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

FAILURE_REASONS = ("account_not_found", "account_closed", "name_mismatch", "account_dormant")


@dataclass
class Config:
    hmac_secret: str = "insecure-development-secret-change-me"
    # How the bank authenticates to Pilar: a fixed bearer token, or client credentials at a token URL.
    callback_token: str = ""
    token_url: str = ""
    client_id: str = ""
    client_secret: str = ""
    token_scope: str = "disbursement:bank-callback"
    latency_ms_min: int = 20  # before a batch's results are reported
    latency_ms_max: int = 100
    failure_rate: float = 0.0  # share of each batch's first attempts that fail (exactly rounded)
    fail_retries: bool = False  # whether attempts after the first may fail too
    duplicate_rate: float = 0.0  # share of callbacks delivered a second time
    out_of_order: bool = False  # shuffle results across callbacks and deliver them concurrently
    bad_signature_rate: float = 0.0  # share of callbacks first delivered with a broken signature
    return_rate: float = 0.0  # share of paid instructions later reported returned
    chunk_size: int = 500  # results per callback
    report_results: bool = True  # false: accept batches and stay silent (nothing is paid yet)
    deliver_callbacks: bool = True  # false: pay, but the callbacks never arrive (the payer was down past our retries)
    callback_attempts: int = 8  # deliveries of one callback before the bank gives up on it
    statement_failures: bool = True  # list failed instructions on the statement (status "failed", no amount)
    max_concurrent_callbacks: int = 4
    seed: int | None = None

    @classmethod
    def from_env(cls) -> Config:
        cfg = cls()
        for f in fields(cls):
            raw = os.environ.get(f"BANKSIM_{f.name.upper()}")
            if raw is not None:
                setattr(cfg, f.name, _coerce(f.type, raw))
        return cfg

    def update(self, changes: dict[str, Any]) -> None:
        known = {f.name: f.type for f in fields(self)}
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
        for name, value in changes.items():
            setattr(self, name, _coerce(known[name], value) if isinstance(value, str) else value)


def _coerce(kind: Any, raw: str) -> Any:
    kind = str(kind)
    if kind.startswith("bool"):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if kind.startswith("int"):
        return int(raw) if raw.strip() else None
    if kind.startswith("float"):
        return float(raw)
    return raw


def sign(secret: str, body: bytes, ts: int) -> dict[str, str]:
    digest = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Signature": "sha256=" + digest, "X-Signature-Timestamp": str(ts)}


def verify(secret: str, body: bytes, headers, tolerance_s: int = 300) -> bool:
    try:
        ts = int(headers.get("x-signature-timestamp", ""))
    except ValueError:
        return False
    expected = sign(secret, body, ts)["X-Signature"]
    return hmac.compare_digest(expected, headers.get("x-signature", "")) and abs(time.time() - ts) <= tolerance_s


class Bank:
    """The simulator's state: batches seen, the ledger of what it paid, counters."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.batches: set[str] = set()
        self.ledger: list[dict[str, Any]] = []  # statement lines
        self.paid: dict[str, dict[str, Any]] = {}  # instruction id -> its debit line
        self.received: set[str] = set()  # instruction ids of accepted batches
        self.outcomes: dict[str, dict[str, Any]] = {}  # instruction id -> its latest result, as a callback reports it
        self.stats: Counter[str] = Counter()
        self.responses: Counter[str] = Counter()  # callback HTTP statuses received
        self.tasks: set[asyncio.Task] = set()
        self._reference = 0
        self._token: tuple[str, float] | None = None
        self._send_gate = asyncio.Semaphore(config.max_concurrent_callbacks)
        # Idle connections are dropped well before the services' 65 s keep-alive.
        self.client = httpx.AsyncClient(timeout=30, limits=httpx.Limits(keepalive_expiry=30))

    def spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def next_reference(self) -> str:
        self._reference += 1
        return f"BSIM{self._reference:010d}"

    async def token(self) -> str:
        cfg = self.config
        if cfg.callback_token:
            return cfg.callback_token
        if not cfg.token_url:
            return ""
        if self._token and self._token[1] > time.time() + 30:
            return self._token[0]
        resp = await self.client.post(
            cfg.token_url, data={"grant_type": "client_credentials", "scope": cfg.token_scope}, auth=(cfg.client_id, cfg.client_secret)
        )
        resp.raise_for_status()
        body = resp.json()
        self._token = (body["access_token"], time.time() + int(body.get("expires_in", 300)))
        return self._token[0]

    # -- paying a batch ---------------------------------------------------------------------

    async def process(self, batch: dict[str, Any]) -> None:
        cfg = self.config
        if not cfg.report_results:
            self.stats["batches_unreported"] += 1
            return
        await asyncio.sleep(self.rng.uniform(cfg.latency_ms_min, max(cfg.latency_ms_min, cfg.latency_ms_max)) / 1000)
        instructions = batch["instructions"]
        first_tries = [i for i in instructions if i["attempt"] == 1 or cfg.fail_retries]
        failing = {i["instruction_id"] for i in self.rng.sample(first_tries, round(cfg.failure_rate * len(first_tries)))}
        today = datetime.now(UTC)
        results, returns = [], []
        for ins in instructions:
            result = {"payment_id": ins["payment_id"], "attempt": ins["attempt"], "at": today.isoformat()}
            if ins["instruction_id"] in failing:
                result.update(status="failed", reason=self.rng.choice(FAILURE_REASONS))
                self.stats["failed"] += 1
                if cfg.statement_failures:
                    self.ledger.append({"value_date": today.date().isoformat(), "bank_reference": "", "instruction_id": ins["instruction_id"],
                                        "debit": "", "credit": "", "description": result["reason"], "status": "failed"})
            else:
                reference = self.next_reference()
                result.update(status="succeeded", reference=reference)
                line = {"value_date": today.date().isoformat(), "bank_reference": reference, "instruction_id": ins["instruction_id"],
                        "debit": ins["amount"], "credit": "", "description": ins.get("remark", ""), "status": "paid"}
                self.ledger.append(line)
                self.paid[ins["instruction_id"]] = line
                self.stats["succeeded"] += 1
                if self.rng.random() < cfg.return_rate:
                    returns.append((ins, reference))
            results.append(result)
            self.outcomes[ins["instruction_id"]] = result
        await self.deliver(batch, results)
        if returns:
            await asyncio.sleep(self.rng.uniform(cfg.latency_ms_min, max(cfg.latency_ms_min, cfg.latency_ms_max)) / 1000)
            returned = []
            for ins, reference in returns:
                returned.append({"payment_id": ins["payment_id"], "attempt": ins["attempt"], "status": "returned", "reason": "account_closed",
                                 "reference": reference, "returned_amount": ins["amount"], "at": datetime.now(UTC).isoformat()})
                self.outcomes[ins["instruction_id"]] = returned[-1]
                self.ledger.append({"value_date": datetime.now(UTC).date().isoformat(), "bank_reference": reference,
                                    "instruction_id": ins["instruction_id"], "debit": "", "credit": ins["amount"], "description": "RETUR",
                                    "status": "returned"})
                self.stats["returned"] += 1
            await self.deliver(batch, returned)

    async def deliver(self, batch: dict[str, Any], results: list[dict[str, Any]]) -> None:
        cfg = self.config
        if not cfg.deliver_callbacks:
            self.stats["callbacks_lost"] += 1
            return
        if cfg.out_of_order:
            results = results[:]
            self.rng.shuffle(results)
        chunks = [results[i : i + cfg.chunk_size] for i in range(0, len(results), max(1, cfg.chunk_size))]
        sends = [self.send_chunk(batch, chunk) for chunk in chunks]
        if cfg.out_of_order:
            await asyncio.gather(*sends)
        else:
            for send in sends:
                await send

    async def send_chunk(self, batch: dict[str, Any], chunk: list[dict[str, Any]]) -> None:
        cfg = self.config
        body = json.dumps({"batch_id": batch["batch_id"], "results": chunk}, separators=(",", ":")).encode()
        url = batch["callback_url"]
        if self.rng.random() < cfg.bad_signature_rate:
            headers = sign(cfg.hmac_secret, body, int(time.time()))
            headers["X-Signature"] = headers["X-Signature"][:-4] + "0000"
            self.stats["bad_signatures_sent"] += 1
            await self.post(url, body, headers, retry=False)
        headers = sign(cfg.hmac_secret, body, int(time.time()))
        await self.post(url, body, headers)
        self.stats["callbacks"] += 1
        if self.rng.random() < cfg.duplicate_rate:
            self.stats["duplicates_sent"] += 1
            # Half the duplicates are the very same signed message, half are signed afresh.
            again = headers if self.rng.random() < 0.5 else sign(cfg.hmac_secret, body, int(time.time()))
            self.spawn(self.post_later(url, body, again))

    async def post_later(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        await asyncio.sleep(self.rng.uniform(0.01, 0.2))
        await self.post(url, body, headers)

    async def post(self, url: str, body: bytes, headers: dict[str, str], *, retry: bool = True) -> int | None:
        delay = 0.2
        for _ in range(max(1, self.config.callback_attempts) if retry else 1):
            try:
                token = await self.token()
                all_headers = {"content-type": "application/json", **headers}
                if token:
                    all_headers["Authorization"] = f"Bearer {token}"
                async with self._send_gate:
                    resp = await self.client.post(url, content=body, headers=all_headers)
                self.responses[str(resp.status_code)] += 1
                if resp.status_code < 500:
                    return resp.status_code
            except httpx.HTTPError:
                self.responses["unreachable"] += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5)
        self.stats["callbacks_given_up"] += 1
        return None

    def status_of(self, instruction_id: str) -> dict[str, Any]:
        """What became of one instruction, as a status query answers it."""
        payment_id, _, attempt = instruction_id.partition(":")
        known = self.outcomes.get(instruction_id)
        if known is not None:
            return {"instruction_id": instruction_id, **known}
        status = "pending" if instruction_id in self.received else "unknown"
        return {"instruction_id": instruction_id, "payment_id": payment_id, "attempt": int(attempt) if attempt.isdigit() else None,
                "status": status}

    def statement_csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=["value_date", "bank_reference", "instruction_id", "debit", "credit", "description", "status"],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.ledger)
        return out.getvalue()


def create_app(config: Config | None = None) -> FastAPI:
    config = config or Config.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.bank = Bank(config)
        try:
            yield
        finally:
            bank: Bank = app.state.bank
            for task in list(bank.tasks):
                task.cancel()
            await bank.client.aclose()

    app = FastAPI(title="Bank simulator (stand-in for the paying bank)", lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "service": "banksim"}

    @app.get("/ready")
    async def ready() -> dict:
        return {"status": "ready", "service": "banksim"}

    @app.post("/v1/batches", status_code=202)
    async def accept_batch(request: Request):
        bank: Bank = request.app.state.bank
        raw = await request.body()
        if not verify(bank.config.hmac_secret, raw, request.headers):
            bank.stats["batches_refused_signature"] += 1
            return JSONResponse({"error": "bad or stale signature"}, status_code=401)
        try:
            batch = json.loads(raw)
            instructions = batch["instructions"]
            str(batch["batch_id"]), str(batch["callback_url"])
            bad = [i.get("instruction_id") for i in instructions if not isinstance(i.get("amount"), int) or i["amount"] <= 0]
        except (ValueError, KeyError, TypeError, AttributeError):
            return JSONResponse({"error": "not a batch: batch_id, callback_url and instructions are needed"}, status_code=400)
        if bad:
            return JSONResponse({"error": "instructions with no positive amount", "instructions": bad[:20]}, status_code=422)
        if batch["batch_id"] in bank.batches:
            bank.stats["batches_repeated"] += 1
            return JSONResponse({"batch_id": batch["batch_id"], "accepted": len(instructions), "repeat": True}, status_code=200)
        bank.batches.add(batch["batch_id"])
        bank.received.update(str(i.get("instruction_id")) for i in instructions)
        bank.stats["batches"] += 1
        bank.stats["instructions"] += len(instructions)
        bank.spawn(bank.process(batch))
        return {"batch_id": batch["batch_id"], "accepted": len(instructions)}

    @app.post("/v1/status-queries")
    async def status_query(request: Request):
        """Signed like a batch: ``{"instructions": ["<payment_id>:<attempt>", ...]}`` (at most 1000); the answer is signed too."""
        bank: Bank = request.app.state.bank
        raw = await request.body()
        if not verify(bank.config.hmac_secret, raw, request.headers):
            bank.stats["status_queries_refused_signature"] += 1
            return JSONResponse({"error": "bad or stale signature"}, status_code=401)
        try:
            ids = [str(i) for i in json.loads(raw)["instructions"]]
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "not a status query: instructions (a list of instruction ids) is needed"}, status_code=400)
        if not 1 <= len(ids) <= 1000:
            return JSONResponse({"error": "ask about 1 to 1000 instructions at a time"}, status_code=422)
        bank.stats["status_queries"] += 1
        bank.stats["status_queried_instructions"] += len(ids)
        body = json.dumps({"results": [bank.status_of(i) for i in ids]}, separators=(",", ":")).encode()
        headers = sign(bank.config.hmac_secret, body, int(time.time()))
        return Response(content=body, media_type="application/json", headers=headers)

    @app.get("/v1/statement", response_class=PlainTextResponse)
    async def statement(request: Request):
        return PlainTextResponse(request.app.state.bank.statement_csv(), media_type="text/csv")

    @app.get("/v1/stats")
    async def stats(request: Request) -> dict:
        bank: Bank = request.app.state.bank
        return {**bank.stats, "callback_responses": dict(bank.responses), "busy_tasks": len(bank.tasks)}

    @app.get("/v1/config")
    async def get_config(request: Request) -> dict:
        cfg = asdict(request.app.state.bank.config)
        cfg["hmac_secret"] = cfg["client_secret"] = "***"
        cfg["callback_token"] = "***" if cfg["callback_token"] else ""
        return cfg

    @app.put("/v1/config")
    async def put_config(request: Request) -> JSONResponse:
        bank: Bank = request.app.state.bank
        try:
            bank.config.update(await request.json())
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)
        if bank.config.seed is not None:
            bank.rng.seed(bank.config.seed)
        return JSONResponse({"ok": True})

    return app
