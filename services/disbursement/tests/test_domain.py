"""Pure rules, no stack: how channel reports move a payment, the round lifecycle, budget
arithmetic, the callback signature, and the post office's result file."""

from __future__ import annotations

import time
import uuid
from datetime import date

import pytest

from disbursement.payments import domain as payments
from disbursement.payments import files
from disbursement.payments.signing import SignatureProblem, StaleSignature, sign, verify
from disbursement.rounds import domain as rounds


@pytest.mark.parametrize(
    "status, attempt, reported, outcome, kind, steps",
    [
        ("sent", 1, 1, "succeeded", "apply", ("succeeded",)),
        ("sent", 1, 1, "failed", "apply", ("failed",)),
        ("sent", 1, 1, "returned", "apply", ("succeeded", "returned")),  # the return overtook the success
        ("succeeded", 1, 1, "succeeded", "duplicate", ()),
        ("succeeded", 1, 1, "returned", "apply", ("returned",)),
        ("succeeded", 1, 1, "failed", "anomaly", ()),
        ("returned", 1, 1, "succeeded", "duplicate", ()),
        ("returned", 1, 1, "returned", "duplicate", ()),
        ("failed", 1, 1, "failed", "duplicate", ()),
        ("failed", 1, 1, "succeeded", "anomaly", ()),
        ("created", 1, 1, "failed", "duplicate", ()),  # retry queued after the failure
        ("cancelled", 1, 1, "failed", "duplicate", ()),
        ("sent", 2, 1, "failed", "stale", ()),  # attempt 1's failure again, after attempt 2 went out
        ("sent", 2, 1, "succeeded", "anomaly", ()),
        ("sent", 1, 2, "succeeded", "unknown_attempt", ()),
        ("created", 0, 1, "succeeded", "unknown_attempt", ()),
    ],
)
def test_judging_a_channel_report(status, attempt, reported, outcome, kind, steps):
    verdict = payments.judge(status, attempt, reported, outcome)
    assert (verdict.kind, verdict.steps) == (kind, steps)


def test_retry_and_cancel_targets():
    assert payments.retry_target("failed") is True
    assert payments.retry_target("created") is payments.retry_target("sent") is False
    assert payments.cancel_target("created") and payments.cancel_target("failed") and not payments.cancel_target("cancelled")
    for status in ("succeeded", "returned", "cancelled"):
        with pytest.raises(payments.IllegalPaymentTransition):
            payments.retry_target(status)
    for status in ("sent", "succeeded", "returned"):
        with pytest.raises(payments.IllegalPaymentTransition):
            payments.cancel_target(status)


def test_round_lifecycle():
    assert rounds.next_status("snapshot", "draft") == "snapshot"
    assert rounds.next_status("snapshot", "snapshot") == "snapshot"  # may be taken again
    assert rounds.next_status("approve", "snapshot") == "approved"
    assert rounds.next_status("disburse", "approved") == "disbursing"
    assert rounds.next_status("close", "disbursing") == "closed"
    for action, status in [("approve", "draft"), ("snapshot", "approved"), ("disburse", "snapshot"), ("cancel", "disbursing"), ("close", "approved")]:
        with pytest.raises(rounds.IllegalTransition):
            rounds.next_status(action, status)


def test_budget_arithmetic_and_round_figures():
    assert rounds.slots(ceiling=4_500_000, amount=900_000) == 5
    assert rounds.slots(ceiling=4_499_999, amount=900_000) == 4
    assert rounds.slots(ceiling=1_000, amount=900, committed=900) == 0
    errors = rounds.check_round(amount=900_000, ceiling=100, period_start=date(2027, 2, 1), period_end=date(2027, 1, 1), year=2026)
    assert {e["rule"] for e in errors} == {"round.ceiling", "round.period", "round.period_year"}
    assert rounds.check_round(amount=1, ceiling=1, period_start=date(2026, 1, 1), period_end=date(2026, 1, 1), year=2026) == []


def test_signatures_cover_timestamp_and_raw_body():
    body = b'{"results":[]}'
    headers = sign("s3cret", body)
    assert verify("s3cret", body, headers, tolerance_s=300) == int(headers["X-Signature-Timestamp"])
    with pytest.raises(SignatureProblem):
        verify("s3cret", body + b" ", headers, tolerance_s=300)  # any change to the bytes
    with pytest.raises(SignatureProblem):
        verify("other", body, headers, tolerance_s=300)
    with pytest.raises(SignatureProblem):
        verify("s3cret", body, {**headers, "X-Signature-Timestamp": str(int(headers["X-Signature-Timestamp"]) + 1)}, tolerance_s=300)
    with pytest.raises(SignatureProblem):
        verify("s3cret", body, {}, tolerance_s=300)
    old = sign("s3cret", body, int(time.time()) - 301)
    with pytest.raises(StaleSignature):
        verify("s3cret", body, old, tolerance_s=300)


def test_the_post_office_result_file_is_checked_line_by_line():
    pid = uuid.uuid4()
    content = (
        "instruction_id,status,reason,reference,reported_at,returned_amount\n"
        f"{pid}:1,succeeded,,POS-1,2026-05-02T10:00:00+07:00,\n"
        f"{pid}:2,failed,,,,\n"
        "nonsense,succeeded,,,,\n"
        f"{pid}:3,returned,unclaimed,,yesterday,\n"
        f"{pid}:4,returned,unclaimed,,,half\n"
        f"{pid}:5,DIBAYAR,,,,\n"
    )
    reports, errors = files.parse_results(content)
    assert [(r.payment_id, r.attempt, r.outcome, r.reference) for r in reports] == [(pid, 1, "succeeded", "POS-1")]
    assert [e["field"] for e in errors] == ["line 3.reason", "line 4.instruction_id", "line 5.reported_at", "line 6.returned_amount",
                                             "line 7.status"]
    assert files.parse_results("payment,result\n")[1][0]["rule"] == "result_file.header"
    csv = files.write_export([{"payment_id": pid, "attempt": 2, "person_id": pid, "nik_hash": None, "regency_code": "35.15",
                               "programme_code": "KUBE", "year": 2026, "stage": 1, "amount": 2_000_000}])
    assert csv.splitlines()[1] == f"{pid}:2,{pid},2,{pid},,35.15,KUBE,2026,1,2000000"
