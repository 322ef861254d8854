"""A property-based fuzz of every operation of the platform, through the gateway.

Schemathesis reads the merged OpenAPI document the gateway serves (``/v1/openapi.json``,
behind ``/docs/platform``) and generates requests for every operation of every service:
valid ones (positive mode) and ones that break the schema (negative mode), from a fixed seed
and a bounded number of examples per operation, so a run is repeatable and fits the test
budget. They are sent with the token of the province's console (every scope of the
services). A request that documents an ``Idempotency-Key`` header gets a fresh key, as a
client retrying safely would send it.

Every answer is checked against the document:

* no server error (5xx);
* its status code is one the operation documents;
* its content type is one documented for that status;
* its body matches the documented schema;
* a request valid by the schema is not refused with a 4xx other than 401, 403, 404 and 409
  (the record may be missing, or in a state that refuses the step). The one exception is a
  list's ``cursor``: an opaque token of the service's own making, so a generated one is
  rightly refused, with a 422 naming ``query.cursor`` (and only that). Valid data is
  generated without NUL characters, which the platform refuses by design (422 naming the
  field; ``test_bad_input.py`` checks it);

Findings are collected over the whole run (one request each, not shrunk) and reported
together, grouped by service, so that one run shows everything. The bank simulator, a
stand-in the local stack routes through the gateway, is not a platform service and is left
out.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, defaultdict
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from platform_testkit import Platform

pytestmark = pytest.mark.stack

SEED = 20261202
EXAMPLES = {GenerationMode.POSITIVE: 16, GenerationMode.NEGATIVE: 8}  # per operation
ACCEPTED_WHEN_VALID = ["2xx", "401", "403", "404", "409"]
NOT_FUZZED = ("/v1/banksim/",)  # the bank's stand-in (local stack only), not a platform service
CLIENT, USER = "dinsos-jatim", "officer.fuzz"
IDEMPOTENCY_KEY = "idempotency-key"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          positive_data_acceptance]
# About 5,000 requests: some 170 s on a busy machine of 2 cores (the system tests' timeout bounds it).


def _service(path: str) -> str:
    parts = path.split("/")
    return parts[2] if len(parts) > 3 and parts[1] == "v1" and parts[2] in SERVICES else "gateway"


SERVICES: set[str] = set()


@pytest.fixture(scope="module")
async def document(platform: Platform) -> dict:
    doc = (await platform.call("GET", "/v1/openapi.json")).json()
    assert all(state == "ok" for state in doc["x-pilar-services"].values()), doc["x-pilar-services"]
    SERVICES.clear()
    SERVICES.update(doc["x-pilar-services"])
    return doc


def _refuses_only_the_cursor(response) -> bool:
    """A 422 problem naming only ``query.cursor``: a cursor the service did not issue."""
    if response.status_code != 422:
        return False
    try:
        errors = response.json().get("errors") or []
    except ValueError:
        return False
    return bool(errors) and all(e.get("field") == "query.cursor" for e in errors)


class Fuzz:
    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.run = uuid.uuid4().hex[:8]
        self.sent = 0
        self.statuses: Counter = Counter()
        self.findings: dict[tuple, str] = {}  # (service, operation, check, status) -> first example

    def send(self, case: schemathesis.Case) -> None:
        declared = {p.get("name", "").lower() for p in case.operation.definition.raw.get("parameters", [])
                    if p.get("in") == "header"}
        if IDEMPOTENCY_KEY in declared:
            case.headers = {**(case.headers or {}), "Idempotency-Key": f"fuzz-{self.run}-{self.sent}"}
        for _ in range(30):
            self.sent += 1
            try:
                response = case.call(base_url=self.base_url, session=self.session, timeout=30)
            except requests.RequestException as exc:
                key = (_service(case.operation.path), case.operation.label, "No answer", type(exc).__name__)
                self.findings.setdefault(key, f"{case.as_curl_command()[:400]} -> {exc}"[:600])
                return
            if response.status_code != 429:
                break
            # The gateway's rate limit: wait as a well-behaved client does (headers are lists here).
            retry_after = response.headers.get("retry-after") or ["1"]
            time.sleep(float(retry_after[0] if isinstance(retry_after, list) else retry_after))
        self.statuses[response.status_code // 100] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            mode = case.meta.generation.mode.value if case.meta else "?"
            for failure in group.exceptions:
                if failure.title == "Schema-valid request rejected" and _refuses_only_the_cursor(response):
                    continue
                key = (_service(case.operation.path), case.operation.label, failure.title, response.status_code)
                if key not in self.findings:
                    body = response.text[:200].replace("\n", " ")
                    self.findings[key] = (f"[{mode}] {case.as_curl_command(headers={'Authorization': 'Bearer …'})[:400]}"
                                          f" -> {response.status_code} {response.headers.get('content-type')}: {body}"
                                          f" | {failure.message.splitlines()[0] if failure.message else ''}")

    def fuzz(self, operation, mode: GenerationMode, examples: int) -> None:
        @hypothesis_seed(SEED)
        @settings(max_examples=examples, database=None, deadline=None, derandomize=False, print_blob=False,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: schemathesis.Case) -> None:
            self.send(case)

        try:
            run()
        except Unsatisfiable:
            pass  # the schema allows too few distinct requests in this mode (e.g. no parameters to break)

    def report(self) -> str:
        by_service: dict[str, list[str]] = defaultdict(list)
        for (service, label, check, status), example in sorted(self.findings.items()):
            by_service[service].append(f"{label}: {check} ({status})\n      {example}")
        return "\n".join(f"{service} ({len(lines)}):\n    " + "\n    ".join(lines) for service, lines in sorted(by_service.items()))


async def test_every_operation_keeps_to_its_document(platform: Platform, document: dict):
    config = schemathesis.Config.from_dict({
        "seed": SEED,
        "base-url": platform.url("gateway"),
        # NUL characters are refused platform-wide by design (the kernel's guard, 422 naming the
        # field, docs/kernel.md), which JSON Schema cannot say; tests/test_bad_input.py checks
        # that refusal. Valid data here is data without them.
        "generation": {"allow-x00": False},
        "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED_WHEN_VALID}},
    })
    schema = schemathesis.openapi.from_dict(document, config=config)
    operations = []
    for result in schema.get_all_operations():
        operation = result.ok()  # a document schemathesis cannot read fails here
        if not operation.path.startswith(NOT_FUZZED):
            operations.append(operation)
    assert len(operations) > 150, "the merged document lists every service's operations"
    fuzz = Fuzz(platform.url("gateway"), await platform.token(CLIENT, user=USER))
    started = time.monotonic()

    def run_all() -> None:
        for operation in operations:
            for mode, examples in EXAMPLES.items():
                fuzz.fuzz(operation, mode, examples)

    await asyncio.to_thread(run_all)
    elapsed = time.monotonic() - started
    print(f"\n{fuzz.sent} requests over {len(operations)} operations in {elapsed:.0f} s; "
          f"answers by class: {dict(sorted((f'{k}xx', v) for k, v in fuzz.statuses.items()))}")
    if fuzz.findings:
        pytest.fail(f"{len(fuzz.findings)} kinds of finding (operation, check, status), with a first example each:\n"
                    + fuzz.report(), pytrace=False)
