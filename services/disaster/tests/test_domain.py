"""Pure rules of the disaster service: the status scheme, disaster kinds, first-expiring-first-out,
who receives household aid, and the identity-number hashes."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest

from disaster.incidents import domain as incidents
from disaster.people import domain as people
from disaster.stock import domain as stock
from pilar_kernel.pii import nik_hash

TODAY = date(2026, 3, 1)


def test_status_follows_the_national_scheme():
    assert incidents.can_move("alert", "emergency_response")
    assert incidents.can_move("emergency_response", "transition")
    assert incidents.can_move("transition", "recovery")
    assert incidents.can_move("recovery", "closed")
    assert incidents.can_move("emergency_response", "emergency_response")  # extended under a new decree
    assert incidents.can_move("alert", "closed")  # a false alarm
    assert not incidents.can_move("alert", "transition")  # no skipping the emergency
    assert not incidents.can_move("recovery", "emergency_response")  # never backwards
    assert not incidents.can_move("closed", "closed")


def test_declared_statuses_need_a_decree_and_its_authority():
    rules = {e["rule"] for e in incidents.check_decree("emergency_response", None, None, TODAY, TODAY - timedelta(days=1))}
    assert rules == {"status.decree", "status.authority", "status.period"}
    assert incidents.check_decree("recovery", None, None, TODAY, None) == []


def test_hazards_belong_to_their_category():
    assert incidents.check_kind("natural", "eruption") == []
    assert incidents.check_kind("non_natural", "fire") == [] and incidents.check_kind("natural", "fire") == []
    assert incidents.check_kind("social", "flood")[0]["rule"] == "incident.hazard"


def lot(expires: date | None, quantity: int) -> stock.Lot:
    return stock.Lot(uuid.uuid4(), expires, quantity)


def test_fefo_takes_the_first_expiring_lots_and_never_expired_ones():
    expired, soon, later, never = lot(TODAY - timedelta(days=1), 50), lot(TODAY + timedelta(days=5), 30), lot(TODAY + timedelta(days=90), 40), lot(None, 100)
    plan = stock.fefo("ready_meal", [never, later, expired, soon], 60, TODAY)
    assert plan == [(soon.id, 30), (later.id, 30)]
    assert stock.fefo("tent", [never], 100, TODAY) == [(never.id, 100)]
    with pytest.raises(stock.Shortage) as info:
        stock.fefo("ready_meal", [expired, soon], 31, TODAY)
    assert (info.value.wanted, info.value.available) == (31, 30)


def test_requests_move_draft_approved_shipped_received():
    assert stock.next_status("approve", "draft") == "approved"
    assert stock.next_status("ship", "approved") == "shipped"
    assert stock.next_status("receive", "shipped") == "received"
    with pytest.raises(stock.IllegalTransition):
        stock.next_status("ship", "draft")
    with pytest.raises(stock.IllegalTransition):
        stock.next_status("cancel", "shipped")


def test_household_aid_goes_to_the_registry_head_then_the_named_head_then_the_eldest_adult():
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    adult = date(1980, 1, 1)
    members = [people.Member(a, "wife", adult), people.Member(b, "head", date(1978, 1, 1)), people.Member(c, "child", date(2000, 1, 1), registry_head=True)]
    assert people.recipient(members, TODAY) == c
    assert people.recipient(members[:2], TODAY) == b
    assert people.recipient([people.Member(a, "wife", adult), people.Member(c, "parent", date(1950, 1, 1))], TODAY) == c
    # The dead and missing receive nothing; a child alone does not receive cash; unknown persons cannot.
    assert people.recipient([people.Member(b, "head", adult, condition="dead"), people.Member(a, "child", date(2015, 1, 1))], TODAY) is None
    assert people.recipient([people.Member(None, "head", adult)], TODAY) is None


def test_kk_hash_never_equals_a_nik_hash_of_the_same_digits():
    digits = "3508011234567890"
    assert people.kk_hash(digits, "k") != nik_hash(digits, "k")
    assert people.kk_hash("3508 0112 3456 7890", "k") == people.kk_hash(digits, "k")
    assert people.check_kk("12345", "kk")[0]["rule"] == "kk.length"
    assert people.check_kk("9999991234567890", "kk")[0]["rule"] == "kk.region"
    assert people.check_kk(digits, "kk") == []
