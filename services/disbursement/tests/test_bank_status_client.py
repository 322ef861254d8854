"""The bank status query client on its own (no stack): it signs what it asks, and believes
only an answer the bank signed over the raw body, about what was asked."""

from __future__ import annotations

import json
from types import SimpleNamespace

import httpx
import pytest

from disbursement.payments.bank import BankAnswerInvalid, query_status
from disbursement.payments.signing import sign, verify

SECRET = "unit-test-secret"
SETTINGS = SimpleNamespace(bank_url="http://bank.test", bank_hmac_secret=SECRET, bank_callback_tolerance_s=300)
ASKED = ["7c9e6679-7425-40de-944b-e07fc1f90ae7:1"]


def bank(answer: dict, *, signer=lambda body: sign(SECRET, body), status: int = 200):
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        verify(SECRET, request.content, request.headers, tolerance_s=300)  # what we ask is signed
        seen["asked"] = json.loads(request.content)["instructions"]
        body = json.dumps(answer).encode()
        return httpx.Response(status, content=body, headers={"content-type": "application/json", **signer(body)})

    return httpx.AsyncClient(transport=httpx.MockTransport(handler)), seen


async def test_a_signed_answer_is_believed_and_only_about_what_was_asked():
    client, seen = bank({"results": [{"instruction_id": ASKED[0], "status": "succeeded", "reference": "B1"},
                                     {"instruction_id": "other:1", "status": "failed"}]})
    async with client:
        answers = await query_status(client, SETTINGS, ASKED)
    assert seen["asked"] == ASKED
    assert list(answers) == ASKED and answers[ASKED[0]].status == "succeeded" and answers[ASKED[0]].reference == "B1"


@pytest.mark.parametrize("signer", [
    lambda body: {},  # unsigned
    lambda body: sign("another-secret", body),  # forged
    lambda body: sign(SECRET, body + b" "),  # another body
    lambda body: sign(SECRET, body, timestamp=1),  # replayed from long ago
])
async def test_an_answer_not_signed_by_the_bank_is_not_believed(signer):
    client, _ = bank({"results": [{"instruction_id": ASKED[0], "status": "failed", "reason": "x"}]}, signer=signer)
    async with client:
        with pytest.raises(BankAnswerInvalid):
            await query_status(client, SETTINGS, ASKED)


async def test_a_refusal_or_a_malformed_answer_is_not_believed():
    client, _ = bank({"error": "bad"}, status=401)
    async with client:
        with pytest.raises(BankAnswerInvalid, match="HTTP 401"):
            await query_status(client, SETTINGS, ASKED)
    client, _ = bank({"results": [{"instruction_id": ASKED[0], "status": "paid-maybe"}]})
    async with client:
        with pytest.raises(BankAnswerInvalid):
            await query_status(client, SETTINGS, ASKED)
