"""Pure checks of the schema field types: the enums and patterns the document states are
exactly what the service accepts, and list cursors convert or are refused with a 422."""

from __future__ import annotations

import re
import typing
import uuid
from datetime import date

import pytest

from disaster import fields
from disaster.incidents import domain as incidents
from disaster.incidents.schemas import Hazard
from disaster.places import check_code
from disaster.tagana import domain as tagana
from disaster.tagana.schemas import Skill
from pilar_kernel.pagination import encode_cursor
from pilar_kernel.problems import Problem


def test_the_hazard_and_skill_enums_are_the_domains():
    assert set(typing.get_args(Hazard)) == {h for hazards in incidents.HAZARDS.values() for h in hazards}
    assert set(typing.get_args(Skill)) == set(tagana.SKILLS)


def test_a_regency_code_valid_by_the_pattern_is_a_current_jawa_timur_one():
    candidates = [f"35.{n:02d}" for n in range(100)] + [f"35{n:02d}" for n in range(100)] + ["36.01", "3601", "35.8", "350"]
    valid = {c for c in candidates if re.match(fields.REGENCY_PATTERN, c)}
    assert len(valid) == 2 * 38
    assert all(check_code(c, "regency", "f") == [] for c in valid)
    assert all(check_code(c, "regency", "f") for c in set(candidates) - valid)  # and the service refuses the others
    for pattern, code in ((fields.DISTRICT_PATTERN, "35.08.01"), (fields.DISTRICT_PATTERN, "350801"),
                          (fields.VILLAGE_PATTERN, "35.08.01.2001"), (fields.VILLAGE_PATTERN, "3508012001")):
        assert re.match(pattern, code)
    for pattern, code in ((fields.DISTRICT_PATTERN, "3508.01"), (fields.VILLAGE_PATTERN, "35.08.01.200"), (fields.VILLAGE_PATTERN, "36.01.01.2001")):
        assert not re.match(pattern, code)


def test_cursors_convert_to_their_types_or_are_refused():
    day, key = date(2026, 3, 1), uuid.uuid4()
    assert fields.cursor_values(encode_cursor([day.isoformat(), str(key)]), date, uuid.UUID) == [day, key]
    assert fields.cursor_values(None, str) is None
    for cursor, types in ((encode_cursor(["x"]), (date, uuid.UUID)), (encode_cursor(["x", "y"]), (date, uuid.UUID)),
                          (encode_cursor([1]), (str,)), (encode_cursor(["1" * 30]), (int,)), (encode_cursor(["a\x00"]), (str,)),
                          ("%%%", (str,)), (encode_cursor({"a": 1}), (str,))):
        with pytest.raises(Problem) as refused:
            fields.cursor_values(cursor, *types)
        assert refused.value.status == 422 and refused.value.errors[0]["field"] == "query.cursor"
