"""Region codes, NIK rules and personal-data protection (hash, encryption, blind index)."""

import hashlib
import hmac
import random
from datetime import date, timedelta

import pytest

from pilar_kernel import regions
from pilar_kernel.nik import (
    make_nik,
    mask_nik,
    normalise_nik,
    parse_nik,
    resolve_birth_year,
    validate_nik,
)
from pilar_kernel.pii import BlindIndex, PiiCipher, PiiDecryptError, nik_hash

# A woman born 1 January 1990 in Sukodono (35.15.14, Kabupaten Sidoarjo): day 01 + 40 = 41.
SUKODONO_WOMAN = "3515144101900001"
SUKODONO_MAN = "3515140101900002"
TODAY = date(2025, 6, 15)


def rules(errors):
    return [e.rule for e in errors]


# --- regions -------------------------------------------------------------------------


def _current(level):
    return regions.by_level(level, current_only=True)


def test_region_counts_match_the_domain_readme():
    assert len(regions.provinces(current_only=True)) == 38
    assert len(_current("regency")) == 514
    assert len(_current("district")) == 7285
    assert len(_current("village")) == 8494
    assert sum(1 for r in _current("district") if regions.is_jatim(r.code)) == 666
    assert len(regions.by_level("regency")) == 540  # 26 historical regencies besides
    with pytest.raises(ValueError):
        regions.by_level("kelurahan")


def test_jatim_has_29_regencies_and_9_cities():
    codes = [r.code for r in regions.jatim_regencies()]
    expected = [f"35.{n:02d}" for n in range(1, 30)] + [f"35.{n}" for n in range(71, 80)]
    assert codes == expected
    names = {r.code: r.name for r in regions.jatim_regencies()}
    assert names["35.78"] == "Kota Surabaya" and names["35.15"] == "Kabupaten Sidoarjo"
    assert sum(name.startswith("Kota ") for name in names.values()) == 9


def test_get_accepts_dotted_and_bare_forms():
    surabaya = regions.get("35.78")
    assert surabaya == regions.get("3578") == regions.get(" 35.78 ")
    assert surabaya.level == "regency" and surabaya.current and surabaya.last_listed is None
    assert regions.get("351514").name == "Sukodono"
    village = regions.get("3515142001")
    assert village.code == "35.15.14.2001" and village.level == "village" and village.name == "Wilayut"
    assert regions.get("35.99") is None
    assert regions.get("not a code") is None


def test_historical_codes_exist_but_not_as_current():
    merauke = regions.get("91.01")
    assert merauke is not None and not merauke.current and merauke.last_listed == 2022
    assert regions.exists("91.01")
    assert not regions.exists("91.01", current_only=True)
    assert regions.exists("35.15.14", current_only=True)
    assert not regions.exists("35.15.99")


@pytest.mark.parametrize(
    "raw, dotted",
    [
        ("35", "35"),
        ("3578", "35.78"),
        ("35.78", "35.78"),
        ("351514", "35.15.14"),
        ("35.15.14", "35.15.14"),
        ("3515142001", "35.15.14.2001"),
        ("35.15.14.2001", "35.15.14.2001"),
        ("  3578\n", "35.78"),
    ],
)
def test_normalise_forms(raw, dotted):
    assert regions.normalise(raw) == dotted


@pytest.mark.parametrize(
    "raw", ["", "3", "357", "35781", "35.7", "35.78.1", "35..78", "35.15.14.201", "35.15.14.2001.01", "35.7a", "３５"]
)
def test_normalise_rejects_malformed_codes(raw):
    with pytest.raises(ValueError):
        regions.normalise(raw)


def test_province_regency_and_jatim_helpers():
    assert regions.province_of("35.15.14.2001") == "35"
    assert regions.province_of("3578") == "35"
    assert regions.regency_of("351514") == "35.15"
    assert regions.regency_of("35.78") == "35.78"
    assert regions.regency_of("35") is None
    assert regions.is_jatim("35.78") and regions.is_jatim("3515142001")
    assert not regions.is_jatim("33.74") and not regions.is_jatim("junk")


def test_children_are_direct_and_sorted():
    sidoarjo = regions.children("35.15")
    assert all(r.level == "district" and r.code.startswith("35.15.") for r in sidoarjo)
    assert "35.15.14" in [r.code for r in sidoarjo]
    assert [r.code for r in sidoarjo] == sorted(r.code for r in sidoarjo)
    villages = regions.children("351514")
    assert villages[0].code == "35.15.14.2001" and all(r.level == "village" for r in villages)
    assert regions.children("33.74.01") == []  # villages are listed for Jawa Timur only
    assert regions.children("nonsense") == []
    # 35.07.24 has villages dropped from the list since 2016.
    assert len(regions.children("35.07.24", current_only=True)) < len(regions.children("35.07.24"))


# --- NIK -----------------------------------------------------------------------------


def test_valid_woman_and_man_from_sukodono():
    assert validate_nik(SUKODONO_WOMAN, birth_date=date(1990, 1, 1), sex="F", today=TODAY) == []
    assert validate_nik(SUKODONO_MAN, birth_date=date(1990, 1, 1), sex="M", today=TODAY) == []
    assert validate_nik("3515 1441 0190 0001") == []


def test_parse_nik_fields():
    p = parse_nik("3515 1441 0190 0001")
    assert (p.province, p.regency, p.district) == ("35", "35.15", "35.15.14")
    assert (p.birth_day, p.birth_month, p.birth_yy, p.female, p.serial) == (1, 1, 90, True, 1)
    assert p.birth_date(today=TODAY) == date(1990, 1, 1)
    assert parse_nik(SUKODONO_MAN).female is False
    with pytest.raises(ValueError):
        parse_nik("35151441019000")


@pytest.mark.parametrize(
    "nik, message",
    [
        ("351514410190001", "not 15"),
        ("35151441019000011", "not 17"),
        ("35151441019O0001", "digits only"),
        ("3515-1441-0190-0001", "digits only"),
        ("３５１５１４４１０１９００００１", "digits only"),  # full-width digits are not ASCII digits
        ("", "not 0"),
    ],
)
def test_length_rule_reports_only_itself(nik, message):
    errors = validate_nik(nik, birth_date=date(2000, 1, 1), sex="M")
    assert rules(errors) == ["nik.length"]
    assert message in errors[0].message


@pytest.mark.parametrize(
    "nik, what",
    [
        ("9915144101900001", "province code 99"),
        ("3599144101900001", "regency/city code 35.99"),
        ("3515994101900001", "district code 35.15.99"),
    ],
)
def test_region_rule(nik, what):
    errors = validate_nik(nik)
    assert rules(errors) == ["nik.region"]
    assert what in errors[0].message


def test_region_rule_accepts_other_provinces_and_historical_codes():
    assert validate_nik("3374010101900001") == []  # Semarang, Jawa Tengah
    assert not regions.exists("91.01.01", current_only=True)
    assert validate_nik("9101014101900001") == []  # Merauke under the pre-2022 Papua code


@pytest.mark.parametrize(
    "date_digits",
    ["000190", "320190", "400190", "720190", "010090", "011390", "300290", "310490", "290201", "690201"],
)
def test_birth_date_rule(date_digits):
    errors = validate_nik(f"351514{date_digits}0001", today=TODAY)
    assert rules(errors) == ["nik.birth_date"]


def test_leap_day_depends_on_the_resolved_year():
    assert validate_nik("3515142902000001", today=TODAY) == []  # 29 Feb 2000
    assert validate_nik("3515146902000001", today=TODAY) == []  # same, female
    assert rules(validate_nik("3515142902000001", today=date(1999, 6, 1))) == ["nik.birth_date"]  # 1900


def test_sex_rule():
    errors = validate_nik(SUKODONO_WOMAN, sex="M")
    assert rules(errors) == ["nik.sex"] and "woman" in errors[0].message
    errors = validate_nik(SUKODONO_MAN, sex="F")
    assert rules(errors) == ["nik.sex"] and "man" in errors[0].message
    assert validate_nik(SUKODONO_WOMAN) == []  # no sex given, nothing to compare
    with pytest.raises(ValueError):
        validate_nik(SUKODONO_WOMAN, sex="X")


def test_birth_date_mismatch_rule():
    assert rules(validate_nik(SUKODONO_WOMAN, birth_date=date(1990, 1, 2))) == ["nik.birth_date_mismatch"]
    assert rules(validate_nik(SUKODONO_WOMAN, birth_date=date(1990, 2, 1))) == ["nik.birth_date_mismatch"]
    assert rules(validate_nik(SUKODONO_WOMAN, birth_date=date(1991, 1, 1))) == ["nik.birth_date_mismatch"]
    # Only the two-digit year is in the NIK.
    assert validate_nik(SUKODONO_WOMAN, birth_date=date(1890, 1, 1)) == []


def test_serial_rule():
    errors = validate_nik("3515144101900000")
    assert rules(errors) == ["nik.serial"] and "0000" in errors[0].message


def test_all_failures_are_collected():
    # Unknown district, a woman's day with month 13, serial 0000; told male and another date.
    errors = validate_nik("3515994113900000", birth_date=date(1990, 1, 1), sex="M", today=TODAY)
    assert rules(errors) == ["nik.region", "nik.birth_date", "nik.sex", "nik.birth_date_mismatch", "nik.serial"]
    for error in errors:
        assert "3515994113900000" not in error.message and "411390" not in error.message


def test_sex_is_not_judged_when_the_day_is_meaningless():
    # Day 35 is neither a man's nor a woman's day: the date rule reports it, the sex rule stays quiet.
    assert rules(validate_nik("3515143501900001", sex="F")) == ["nik.birth_date"]


@pytest.mark.parametrize(
    "yy, month, day, year",
    [
        (90, 1, 1, 1990),
        (5, 1, 1, 2005),
        (25, 6, 15, 2025),  # today itself is not in the future
        (25, 6, 16, 1925),  # tomorrow would be, so the previous century
        (0, 2, 29, 2000),
        (24, 12, 31, 2024),
        (26, 1, 1, 1926),
    ],
)
def test_century_choice_keeps_birth_dates_out_of_the_future(yy, month, day, year):
    assert resolve_birth_year(yy, month, day, today=TODAY) == year


def test_century_choice_through_parse_and_validate():
    assert parse_nik("3515141506250001").birth_date(today=TODAY) == date(2025, 6, 15)
    assert parse_nik("3515141606250001").birth_date(today=TODAY) == date(1925, 6, 16)
    assert parse_nik("3515141606250001").birth_date(today=date(2025, 6, 16)) == date(2025, 6, 16)
    assert parse_nik("3515143102900001").birth_date(today=TODAY) is None


def test_mask_nik():
    assert mask_nik("3515014101900001") == "3515********0001"
    assert mask_nik("3515 0141 0190 0001") == "3515********0001"
    assert mask_nik("351501410190001") == "*" * 15  # malformed: hide everything
    assert mask_nik("") == ""


def test_normalise_nik_strips_all_whitespace():
    assert normalise_nik(" 3515 0141\t0190 0001\n") == "3515014101900001"


def test_make_nik_round_trip_over_random_districts_and_dates():
    rng = random.Random(20250615)
    districts = regions.by_level("district")
    today = date.today()
    span = (today - date(today.year - 99, today.month, 1)).days
    for _ in range(2000):
        district = rng.choice(districts)
        born = today - timedelta(days=rng.randrange(span))
        sex = rng.choice(["M", "F"])
        serial = rng.randint(1, 9999)
        code = district.code if rng.random() < 0.5 else district.code.replace(".", "")
        nik = make_nik(code, born, sex, serial)
        assert len(nik) == 16 and nik.isdigit()
        assert validate_nik(nik, birth_date=born, sex=sex) == [], (district.code, born, sex, serial)
        parsed = parse_nik(nik)
        assert parsed.district == district.code
        assert parsed.female == (sex == "F") and parsed.serial == serial
        assert parsed.birth_date() == born


def test_make_nik_matches_the_worked_example():
    assert make_nik("35.15.14", date(1990, 1, 1), "F", 1) == SUKODONO_WOMAN
    assert make_nik("351514", date(1990, 1, 1), "M", 2) == SUKODONO_MAN


@pytest.mark.parametrize(
    "args",
    [
        ("35.15", date(1990, 1, 1), "F", 1),  # a regency, not a district
        ("35.15.99", date(1990, 1, 1), "F", 1),
        ("35.15.14", date(1990, 1, 1), "X", 1),
        ("35.15.14", date(1990, 1, 1), "F", 0),
        ("35.15.14", date(1990, 1, 1), "F", 10000),
        ("35.15.14", date.today() + timedelta(days=1), "F", 1),
    ],
)
def test_make_nik_refuses_bad_input(args):
    with pytest.raises(ValueError):
        make_nik(*args)


# --- personal data -------------------------------------------------------------------

KEY_0 = bytes(range(32))
KEY_1 = bytes(range(100, 132))


def test_nik_hash_is_keyed_hmac_of_the_normalised_nik():
    expected = hmac.new(b"platform-key", SUKODONO_WOMAN.encode(), hashlib.sha256).hexdigest()
    assert nik_hash(SUKODONO_WOMAN, "platform-key") == expected
    assert nik_hash("3515 1441 0190 0001", b"platform-key") == expected
    assert nik_hash(f" {SUKODONO_WOMAN}\n", "platform-key") == expected
    assert nik_hash(SUKODONO_WOMAN, "another-key") != expected
    assert nik_hash(SUKODONO_MAN, "platform-key") != expected
    with pytest.raises(ValueError):
        nik_hash("   ", "platform-key")
    with pytest.raises(ValueError):
        nik_hash(SUKODONO_WOMAN, "")


def test_cipher_round_trip_with_fresh_nonces():
    cipher = PiiCipher({"k0": KEY_0}, "k0")
    a = cipher.encrypt("Siti Aminah", aad=b"person-1")
    b = cipher.encrypt("Siti Aminah", aad=b"person-1")
    assert a != b  # random nonce per encryption
    assert cipher.decrypt(a, aad=b"person-1") == cipher.decrypt(b, aad=b"person-1") == "Siti Aminah"
    assert cipher.decrypt(cipher.encrypt("")) == ""
    assert cipher.decrypt(cipher.encrypt("Jl. Raya Sukodono – RT 01", aad="p2"), aad=b"p2") == "Jl. Raya Sukodono – RT 01"


def test_ciphertext_layout():
    blob = PiiCipher({"key-2025": KEY_0}, "key-2025").encrypt("abc")
    assert blob[0] == 1
    assert blob[1] == len("key-2025") and blob[2:10] == b"key-2025"
    assert len(blob) == 1 + 1 + 8 + 12 + len("abc") + 16


def test_rotation_keeps_old_ciphertexts_readable():
    old = PiiCipher({"k0": KEY_0}, "k0")
    blob = old.encrypt("0812-3456-7890", aad=b"person-7")
    rotated = PiiCipher.from_env_value(f"k1:{KEY_1.hex()}, k0:{KEY_0.hex()}")
    assert rotated.current_key_id == "k1" and rotated.key_ids == {"k0", "k1"}
    assert rotated.decrypt(blob, aad=b"person-7") == "0812-3456-7890"
    assert rotated.needs_rotation(blob) and not old.needs_rotation(blob)
    fresh = rotated.rotate(blob, aad=b"person-7")
    assert rotated.key_id_of(fresh) == "k1" and not rotated.needs_rotation(fresh)
    assert rotated.decrypt(fresh, aad=b"person-7") == "0812-3456-7890"
    assert rotated.rotate(fresh, aad=b"person-7") == fresh
    # Once the old key is retired, its ciphertexts fail clearly.
    retired = PiiCipher({"k1": KEY_1}, "k1")
    with pytest.raises(PiiDecryptError, match="'k0'"):
        retired.decrypt(blob, aad=b"person-7")


def test_tampering_anywhere_is_detected():
    cipher = PiiCipher({"k0": KEY_0, "k1": KEY_1}, "k0")
    blob = cipher.encrypt("Siti Aminah", aad=b"person-1")
    for i in range(len(blob)):
        altered = bytearray(blob)
        altered[i] ^= 0x01  # "k0" becomes "j0" or "k1": either way the tag must fail
        with pytest.raises(PiiDecryptError):
            cipher.decrypt(bytes(altered), aad=b"person-1")
    for cut in (0, 1, 2, 4, 16, len(blob) - 1):
        with pytest.raises(PiiDecryptError):
            cipher.decrypt(blob[:cut], aad=b"person-1")
    with pytest.raises(PiiDecryptError, match="authentication"):
        cipher.decrypt(blob + b"\x00", aad=b"person-1")


def test_aad_binds_a_ciphertext_to_its_record():
    cipher = PiiCipher({"k0": KEY_0}, "k0")
    blob = cipher.encrypt("Siti Aminah", aad=b"person-1")
    with pytest.raises(PiiDecryptError, match="aad"):
        cipher.decrypt(blob, aad=b"person-2")  # value swapped onto another row
    with pytest.raises(PiiDecryptError):
        cipher.decrypt(blob)


@pytest.mark.parametrize(
    "value",
    [
        "",
        " , ",
        "k0",
        f"k0:{KEY_0.hex()[:-2]}",
        "k0:zz" + "0" * 62,
        f":{KEY_0.hex()}",
        f"k0:{KEY_0.hex()},k0:{KEY_1.hex()}",
        f"k:0:{KEY_0.hex()}",
    ],
)
def test_from_env_value_rejects_bad_lists(value):
    with pytest.raises(ValueError) as info:
        PiiCipher.from_env_value(value)
    assert KEY_0.hex() not in str(info.value)


def test_cipher_constructor_checks_and_repr_hides_keys():
    with pytest.raises(ValueError):
        PiiCipher({}, "k0")
    with pytest.raises(ValueError):
        PiiCipher({"k0": KEY_0[:16]}, "k0")
    with pytest.raises(ValueError):
        PiiCipher({"k0": KEY_0}, "k1")
    with pytest.raises(ValueError):
        PiiCipher({"bad id": KEY_0}, "bad id")
    text = repr(PiiCipher.from_env_value(f"k0:{KEY_0.hex()}"))
    assert "k0" in text and KEY_0.hex() not in text and str(KEY_0) not in text


def test_blind_index_is_deterministic_and_separated_per_field():
    phone = BlindIndex(KEY_0, field="phone")
    assert phone.of("081234567890") == BlindIndex(KEY_0, field="phone").of("081234567890")
    assert len(phone.of("081234567890")) == 64
    assert phone.of("081234567890") != phone.of("081234567891")
    assert phone.of("081234567890") != BlindIndex(KEY_0, field="kk").of("081234567890")
    assert phone.of("081234567890") != BlindIndex(KEY_1, field="phone").of("081234567890")
    assert BlindIndex(KEY_0).of("x") != BlindIndex(KEY_0, field="phone").of("x")
    assert BlindIndex("text key", field="phone").of("x") == BlindIndex(b"text key", field="phone").of("x")
    # Not the plain NIK hash either, even with the same key.
    assert BlindIndex(KEY_0, field="nik").of(SUKODONO_WOMAN) != nik_hash(SUKODONO_WOMAN, KEY_0)
    assert KEY_0.hex() not in repr(phone)
