"""Pure rules: the working-day departure standard with a holiday calendar, the status
machine, relay routes, the repeat window and intake checks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from homeless_return import domain
from homeless_return.settings import Settings
from pilar_kernel.nik import make_nik

NONE = domain.HolidayCalendar.of()
# A long holiday with cuti bersama (test data), and yearly fixed days.
CAL = domain.HolidayCalendar.of(
    [date(2026, 3, 19), date(2026, 3, 20), date(2026, 3, 23), date(2026, 3, 24)], ["01-01", "08-17", "12-25"]
)


@pytest.mark.parametrize(
    "intake, due",
    [
        (date(2026, 5, 4), date(2026, 5, 5)),  # Monday -> Tuesday
        (date(2026, 5, 8), date(2026, 5, 11)),  # Friday -> Monday
        (date(2026, 5, 9), date(2026, 5, 11)),  # Saturday -> Monday
        (date(2026, 5, 10), date(2026, 5, 11)),  # Sunday -> Monday
    ],
)
def test_due_day_is_the_next_working_day_over_weekends(intake, due):
    assert domain.departure_due_on(intake, NONE) == due


def test_holidays_are_not_working_days():
    # Wednesday 18 March 2026: Thu, Fri, the weekend, Mon and Tue are off.
    assert domain.departure_due_on(date(2026, 3, 18), CAL) == date(2026, 3, 25)
    # Sunday 16 August: Monday 17 August is Independence Day, every year.
    assert domain.departure_due_on(date(2026, 8, 16), CAL) == date(2026, 8, 18)
    assert domain.departure_due_on(date(2027, 8, 16), CAL) == date(2027, 8, 18)
    # Thursday 24 December: Christmas Friday, then the weekend.
    assert domain.departure_due_on(date(2026, 12, 24), CAL) == date(2026, 12, 28)
    assert not CAL.is_working_day(date(2026, 1, 1)) and CAL.is_working_day(date(2026, 1, 2))


def test_a_ship_leg_moves_the_due_day_to_the_ship_only_when_later():
    assert domain.departure_due_on(date(2026, 5, 4), NONE, first_sea_leg_on=date(2026, 5, 9)) == date(2026, 5, 9)
    assert domain.departure_due_on(date(2026, 5, 4), NONE, first_sea_leg_on=date(2026, 5, 4)) == date(2026, 5, 5)


def test_overdue_counts_only_cases_not_yet_departed():
    due = date(2026, 5, 5)
    assert domain.is_overdue("in_care", due, date(2026, 5, 6))
    assert not domain.is_overdue("in_care", due, date(2026, 5, 5))
    assert not domain.is_overdue("in_transit", due, date(2026, 6, 1))
    assert not domain.is_overdue("returned", due, date(2026, 6, 1))


def test_a_calendar_of_nothing_but_holidays_is_refused():
    every_day = domain.HolidayCalendar.of(date(2026, 1, 1) + timedelta(days=i) for i in range(400))
    with pytest.raises(ValueError):
        domain.next_working_day(date(2026, 1, 1), every_day)


@pytest.mark.parametrize("bad", ["8-17", "13-01", "02-30", "xx-yy"])
def test_yearly_holidays_are_month_days(bad):
    with pytest.raises(ValueError):
        domain.parse_month_day(bad)
    with pytest.raises(ValueError):
        Settings(env="test", yearly_holidays=[bad])


def test_status_machine():
    path = ["reported", "in_care", "verified", "scheduled", "in_transit", "returned"]
    for a, b in zip(path, path[1:]):
        assert domain.can_transition(a, b)
    for illegal in [("reported", "verified"), ("reported", "scheduled"), ("in_care", "in_transit"), ("verified", "returned"),
                    ("returned", "unresolved"), ("refused", "in_care"), ("unresolved", "returned"), ("reported", "refused")]:
        assert not domain.can_transition(*illegal)
    for state in ("in_care", "verified", "scheduled", "in_transit"):
        assert domain.can_transition(state, "refused") and domain.can_transition(state, "unresolved")


def _route(code):
    return [(h.from_code, h.to_code) for h in domain.plan_route(code, domain.DEFAULT_RELAY_PARTNERS)]


def test_routes_follow_the_relay_partners():
    assert _route("35.10") == [("35", "35.10")]  # Banyuwangi: straight to the regency office
    assert _route("33.74") == [("35", "33.74")]  # Semarang: Jawa Tengah is its own partner
    assert _route("34.71") == [("35", "34.71")]
    assert _route("31.71") == [("35", "33"), ("33", "31.71")]  # DKI via Jawa Tengah
    assert _route("12.71") == [("35", "33"), ("33", "12.71")]  # Medan via Jawa Tengah
    assert _route("32.73") == [("35", "34"), ("34", "32.73")]  # Bandung via DIY
    assert _route("63.71") == [("35", "63.71")]  # Banjarmasin: direct
    assert _route("64.72") == [("35", "63"), ("63", "64.72")]  # Samarinda via Kalimantan Selatan
    assert _route("91.71") == [("35", "73"), ("73", "91.71")]  # Jayapura via Sulawesi Selatan
    assert _route("53.71") == [("35", "51"), ("51", "53.71")]  # Kupang via Bali
    hops = domain.plan_route("64.72", domain.DEFAULT_RELAY_PARTNERS)
    assert hops[0].receiving_office == "Dinas Sosial Kalimantan Selatan" and hops[1].seq == 2


def test_routes_are_data():
    partners = {**domain.DEFAULT_RELAY_PARTNERS, "31": "31"}
    assert [(h.from_code, h.to_code) for h in domain.plan_route("31.71", partners)] == [("35", "31.71")]
    del partners["31"]
    with pytest.raises(ValueError, match="31"):
        domain.plan_route("31.71", partners)
    with pytest.raises(ValueError):
        Settings(env="test", relay_partners={"31": "31.71"})


def test_every_province_outside_jatim_has_a_partner():
    from pilar_kernel import regions

    assert {p.code for p in regions.provinces()} - {"35"} == set(domain.DEFAULT_RELAY_PARTNERS)


def test_months_before_clamps_to_the_month_end():
    assert domain.months_before(date(2026, 5, 31), 3) == date(2026, 2, 28)
    assert domain.months_before(date(2026, 1, 15), 12) == date(2025, 1, 15)
    assert domain.months_before(date(2026, 3, 10), 14) == date(2025, 1, 10)


NOW = datetime(2026, 5, 4, 3, 0, tzinfo=UTC)


def _intake(**kw):
    data = {"direction": "outbound", "found_place_code": "35.78.01", "found_at": NOW - timedelta(hours=2), "referred_by": "police",
            "birth_date": date(1990, 1, 2), "sex": "M"}
    data.update(kw)
    return {e["rule"] for e in domain.check_intake(data, now=NOW)}


def test_intake_checks():
    assert _intake() == set()
    assert _intake(found_place_code="33.74") == {"region.jatim"}
    assert _intake(found_place_code="35") == {"region.jatim"}
    assert _intake(found_at=NOW + timedelta(hours=1)) == {"date.future"}
    assert _intake(origin_code="99.99") == {"region.unknown"}
    assert _intake(destination_code="35") == {"region.regency"}
    assert _intake(nik=make_nik("63.71.01", date(1990, 1, 2), "M", 5)) == set()
    assert _intake(nik=make_nik("63.71.01", date(1990, 1, 2), "F", 5)) == {"nik.sex"}
    assert _intake(nik="123") == {"nik.length"}
    assert _intake(sending_province_code="33") == {"outbound.sender"}


def test_inbound_intake_checks():
    assert _intake(direction="inbound", referred_by="other_province", sending_province_code="33", destination_code="35.15") == set()
    assert _intake(direction="inbound", referred_by="police", sending_province_code="35", destination_code="63.71") == {
        "inbound.sender", "inbound.referrer", "inbound.destination"}
