"""Rules about persons, with no I/O: what a valid registration is, how names and phones
are normalised for matching, and which status changes are allowed."""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Any

from pilar_kernel import regions
from pilar_kernel.nik import parse_nik, validate_nik

# The 26 PPKS categories (Permensos), as stable slugs with their official names.
PPKS_CATEGORIES: dict[str, str] = {
    "anak_balita_telantar": "Anak balita telantar",
    "anak_telantar": "Anak telantar",
    "anak_berhadapan_dengan_hukum": "Anak berhadapan dengan hukum",
    "anak_jalanan": "Anak jalanan",
    "anak_dengan_kedisabilitasan": "Anak dengan kedisabilitasan",
    "anak_korban_tindak_kekerasan": "Anak korban tindak kekerasan",
    "anak_memerlukan_perlindungan_khusus": "Anak memerlukan perlindungan khusus",
    "lansia_telantar": "Lansia telantar",
    "penyandang_disabilitas": "Penyandang disabilitas",
    "tuna_susila": "Tuna susila",
    "gelandangan": "Gelandangan",
    "pengemis": "Pengemis",
    "pemulung": "Pemulung",
    "kelompok_minoritas": "Kelompok minoritas",
    "bekas_warga_binaan_lembaga_pemasyarakatan": "Bekas warga binaan lembaga pemasyarakatan",
    "odha": "Orang dengan HIV/AIDS (ODHA)",
    "korban_napza": "Korban penyalahgunaan NAPZA",
    "korban_trafficking": "Korban trafficking",
    "korban_tindak_kekerasan": "Korban tindak kekerasan",
    "pekerja_migran_bermasalah_sosial": "Pekerja migran bermasalah sosial",
    "korban_bencana_alam": "Korban bencana alam",
    "korban_bencana_sosial": "Korban bencana sosial",
    "perempuan_rawan_sosial_ekonomi": "Perempuan rawan sosial ekonomi",
    "fakir_miskin": "Fakir miskin",
    "keluarga_bermasalah_sosial_psikologis": "Keluarga bermasalah sosial psikologis",
    "komunitas_adat_terpencil": "Komunitas adat terpencil",
}

DISABILITY_TYPES = ("physical", "intellectual", "mental", "sensory_sight", "sensory_hearing", "sensory_speech", "multiple")
DISABILITY_SEVERITIES = ("mild", "moderate", "severe", "bedridden")

# Relationship to the head of family, as printed on the KK.
RELATIONSHIPS = (
    "head", "husband", "wife", "child", "child_in_law", "grandchild", "parent", "parent_in_law",
    "other_relative", "household_help", "other",
)

ACTIVE, DECEASED, MOVED_OUT, MERGED = "active", "deceased", "moved_out", "merged"
STATUSES = (ACTIVE, DECEASED, MOVED_OUT, MERGED)
_TRANSITIONS = {ACTIVE: {DECEASED, MOVED_OUT, MERGED}, MOVED_OUT: {ACTIVE, DECEASED, MERGED}, DECEASED: set(), MERGED: set()}


def can_transition(current: str, target: str) -> bool:
    return target in _TRANSITIONS.get(current, set())


def normalise_name(name: str) -> str:
    """Lower case, accents and punctuation removed, spaces collapsed: the form used for matching."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9 ]+", " ", text.lower())
    return " ".join(text.split())


def normalise_phone(phone: str) -> str:
    """Indonesian numbers in one form: digits only, national prefix 0 or +62 written as 62."""
    digits = re.sub(r"\D", "", phone)
    if digits.startswith("0"):
        digits = "62" + digits[1:]
    return digits


def error(field: str, message: str, rule: str) -> dict[str, str]:
    return {"field": field, "message": message, "rule": rule}


def check_registration(data: dict[str, Any], *, today: date | None = None) -> list[dict[str, str]]:
    """Every rule a new or updated person breaks (empty when valid). Fields are body paths."""
    errors: list[dict[str, str]] = []
    nik = data.get("nik")
    if nik is not None:
        for e in validate_nik(nik, birth_date=data.get("birth_date"), sex=data.get("sex"), today=today):
            errors.append(error("nik", e.message, e.rule))
    elif not data.get("provisional"):
        errors.append(error("nik", "a NIK is required unless the record is provisional", "nik.required"))
    birth = data.get("birth_date")
    if birth is not None and birth > (today or date.today()):
        errors.append(error("birth_date", "birth date is in the future", "birth_date.future"))
    village = data.get("village_code")
    if village is not None:
        region = regions.get(village)
        if region is None or region.level != "village":
            errors.append(error("village_code", "not a village code of the region data", "region.village"))
        elif not region.current:
            errors.append(error("village_code", "this village code is no longer in use", "region.historical"))
        elif not regions.is_jatim(village):
            errors.append(error("village_code", "the address must be in Jawa Timur", "region.jatim"))
    for category in data.get("ppks") or ():
        if category not in PPKS_CATEGORIES:
            errors.append(error("ppks", f"unknown PPKS category {category!r}", "ppks.category"))
    if (data.get("decile") is None) != (data.get("decile_date") is None):
        errors.append(error("decile_date", "a DTSEN decile needs its snapshot date (and the reverse)", "decile.snapshot"))
    if data.get("disability_severity") and not data.get("disability_type"):
        errors.append(error("disability_type", "a disability severity needs its type", "disability.type"))
    if data.get("kk_number") and not data.get("relationship"):
        errors.append(error("relationship", "a KK member needs a relationship to the head of family", "kk.relationship"))
    kk = data.get("kk_number")
    if kk is not None and regions.get(kk[:6]) is None:
        errors.append(error("kk_number", "a KK number starts with the code of the district that issued it", "kk.region"))
    return errors


def birth_date_from_nik(nik: str | None, *, today: date | None = None) -> date | None:
    """The birth date a valid NIK encodes (digits 7-12, DDMMYY, women +40 on the day), or None.

    The century is the latest that keeps the date out of the future (``pilar_kernel.nik``),
    so a person aged 100 or more needs the birth date given explicitly.
    """
    if not nik:
        return None
    try:
        return parse_nik(nik).birth_date(today=today)
    except ValueError:
        return None
