"""Request and response models of the shelter API.

Responses to POSTs that create are receipts without survivor data: an ``Idempotency-Key``
stores the response in clear for replay, so it must hold nothing sensitive. The full
records are read back with GET, which is audited.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from pilar_kernel import regions
from pilar_kernel.types import PositiveInt32

ShelterKind = Literal["women", "children"]
Role = Literal["caseworker", "supervisor"]
Sex = Literal["F", "M"]
ReferralSource = Literal["upt_ppa", "police", "hospital", "hotline", "walk_in"]
ViolenceType = Literal["physical", "psychological", "sexual", "neglect", "exploitation", "trafficking"]
Relationship = Literal[
    "spouse", "former_spouse", "partner", "parent", "step_parent", "sibling", "other_relative",
    "employer", "teacher", "acquaintance", "stranger", "other", "unknown",
]
ServiceKind = Literal["medical", "psychosocial", "legal_aid", "education", "safe_housing"]
ConsentKind = Literal["services", "partner_sharing", "registry_enrolment"]
ConsentGiver = Literal["survivor", "guardian", "legal_representative"]
PartnerKind = Literal["upt_ppa", "police", "hospital", "lks", "legal_aid", "other"]
ClosureReason = Literal["reintegrated", "referred", "other"]
ReopenReason = Literal["new_incident", "reintegration_failed", "survivor_request", "other"]
Answer = Literal["yes", "no", "unknown"]
CaseStatus = Literal["intake", "assessment", "plan_pending", "in_service", "closure_pending", "closed"]
ProgrammeCode = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{1,31}$")]
# The `user` claim of a staff member's tokens: ASCII, so lower() is case-folding.
USER_ID_PATTERN = r"^[A-Za-z0-9._@:-]+$"
UserRef = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=USER_ID_PATTERN)]
# A version read from the record (starts at 1).
Version = Annotated[PositiveInt32, Field(description="the version you read; a stale one is refused with 409")]
NIK_PATTERN = r"^[0-9]{16}$"
PHONE_PATTERN = r"^\+?[0-9 -]{8,20}$"
EARLIEST_DAY = date(1900, 1, 1)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _regency(code: str) -> str:
    region = regions.get(code)
    if region is None or region.level != "regency" or not region.current:
        raise ValueError(f"{code} is not a current regency/city code (35.xx)")
    return region.code


def _not_future(day: date) -> date:
    if day > date.today():
        raise ValueError("cannot be in the future")
    return day


RegencyCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{2}\.?[0-9]{2}$"), AfterValidator(_regency)]
# A day that has happened: from 1900 (PostgreSQL keeps date.min as -infinity) to today.
PastDate = Annotated[date, Field(ge=EARLIEST_DAY, json_schema_extra={"pattern": r"^(19|20)[0-9]{2}-"}), AfterValidator(_not_future)]


# -- facilities and staff -----------------------------------------------------------------


class ShelterIn(_In):
    name: str = Field(min_length=3, max_length=200)
    kind: ShelterKind
    regency_code: RegencyCode = Field(description="regency/city of the shelter, e.g. 35.78")
    capacity: int = Field(ge=0, le=1000, description="number of beds")


class ShelterPatch(_In):
    version: Version
    name: str | None = Field(default=None, min_length=3, max_length=200)
    capacity: int | None = Field(default=None, ge=0, le=1000)
    active: bool | None = None


class ShelterOut(BaseModel):
    id: uuid.UUID
    name: str
    kind: str
    regency_code: str
    capacity: int
    occupied: int | str = Field(description='beds in use; "<5" for analysts when fewer than 5')
    active: bool
    version: int


class StaffIn(_In):
    user_id: UserRef = Field(description="the `user` claim of the staff member's tokens; kept case-folded (QA.Prep is qa.prep)")
    name: str = Field(min_length=1, max_length=200)
    role: Role
    shelter_id: uuid.UUID

    @field_validator("user_id")
    @classmethod
    def _fold(cls, v: str) -> str:
        return v.casefold()


class StaffPatch(_In):
    version: Version
    name: str | None = Field(default=None, min_length=1, max_length=200)
    role: Role | None = None
    shelter_id: uuid.UUID | None = None
    active: bool | None = None


class StaffOut(BaseModel):
    user_id: str
    name: str
    role: str
    shelter_id: uuid.UUID
    active: bool
    version: int


# -- cases --------------------------------------------------------------------------------


class SurvivorIn(_In):
    name: str = Field(min_length=1, max_length=200)
    nik: str | None = Field(default=None, pattern=NIK_PATTERN)
    birth_date: PastDate | None = None
    age_estimate: int | None = Field(default=None, ge=0, le=120, description="when the birth date is unknown")
    sex: Sex
    regency_code: RegencyCode = Field(description="home regency/city (35.xx, or another province's regency)")
    address: str | None = Field(default=None, max_length=300)
    phone: str | None = Field(default=None, pattern=PHONE_PATTERN)
    guardian_name: str | None = Field(default=None, max_length=200)
    guardian_contact: str | None = Field(default=None, max_length=100)
    notes: str | None = Field(default=None, max_length=4000)


class SurvivorPatch(_In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    nik: str | None = Field(default=None, pattern=NIK_PATTERN)
    birth_date: PastDate | None = None
    age_estimate: int | None = Field(default=None, ge=0, le=120)
    regency_code: RegencyCode | None = None
    address: str | None = Field(default=None, max_length=300)
    phone: str | None = Field(default=None, pattern=PHONE_PATTERN)
    guardian_name: str | None = Field(default=None, max_length=200)
    guardian_contact: str | None = Field(default=None, max_length=100)
    notes: str | None = Field(default=None, max_length=4000)


class ConsentIn(_In):
    kind: ConsentKind
    granted: bool
    given_by: ConsentGiver


class CaseIn(_In):
    survivor: SurvivorIn
    referral_source: ReferralSource
    referral_note: str | None = Field(default=None, max_length=2000)
    registry_person_id: uuid.UUID | None = Field(default=None, description="the survivor's registry person, if any")
    caseworker_id: UserRef | None = Field(default=None, description="a supervisor assigns a caseworker of the shelter; a caseworker takes the case")
    consents: list[ConsentIn] = Field(default_factory=list, max_length=3, description="at most one per kind")


class CasePatch(_In):
    version: Version
    survivor: SurvivorPatch | None = None
    registry_person_id: uuid.UUID | None = None
    referral_note: str | None = Field(default=None, max_length=2000)


class CaseReceipt(BaseModel):
    id: uuid.UUID
    status: str
    shelter_id: uuid.UUID
    caseworker_id: str
    child: bool
    version: int
    opened_at: datetime


class CaseSummary(CaseReceipt):
    sex: str
    regency_code: str
    referral_source: str
    closed_at: datetime | None
    closure_reason: str | None
    risk_level: str | None
    admitted: bool


class ConsentState(BaseModel):
    granted: bool
    given_by: str
    recorded_by: str
    recorded_at: datetime


class CaseOut(CaseSummary):
    survivor: dict[str, Any]
    referral_note: str | None
    registry_person_id: uuid.UUID | None
    consents: dict[str, ConsentState]
    allowed_actions: list[str]


class CasePage(BaseModel):
    items: list[CaseSummary]
    next_cursor: str | None


class ConsentOut(BaseModel):
    kind: str
    granted: bool
    given_by: str
    recorded_by: str
    recorded_at: datetime


class IncidentIn(_In):
    violence_types: list[ViolenceType] = Field(min_length=1, max_length=6)
    perpetrator_relationship: Relationship
    occurred_on: PastDate | None = None
    regency_code: RegencyCode = Field(description="where it happened (regency/city)")
    narrative: str | None = Field(default=None, max_length=10000)


class IncidentReceipt(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID
    recorded_at: datetime


class IncidentOut(IncidentReceipt):
    violence_types: list[str]
    perpetrator_relationship: str
    occurred_on: date | None
    regency_code: str
    narrative: str | None
    recorded_by: str


class AssessmentIn(_In):
    answers: dict[Annotated[str, StringConstraints(max_length=50)], Answer] = Field(
        max_length=100, description="an answer to every question of GET /v1/risk-questions")


class AssessmentReceipt(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID
    level: str
    score: int
    assessed_at: datetime


class AssessmentOut(AssessmentReceipt):
    questionnaire: str
    answers: dict[str, str]
    assessed_by: str


class PlanIn(_In):
    goals: str = Field(min_length=1, max_length=10000)
    planned_services: list[ServiceKind] = Field(min_length=1, max_length=5)


class PlanReceipt(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID
    status: str
    planned_services: list[str]


class PlanOut(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID
    status: str
    planned_services: list[str]
    goals: str
    submitted_by: str
    submitted_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    note: str | None


class DecisionIn(_In):
    note: str | None = Field(default=None, max_length=4000)


class ServiceIn(_In):
    kind: ServiceKind
    provider: str = Field(min_length=1, max_length=200)
    delivered_on: PastDate
    outcome: str = Field(min_length=1, max_length=4000)



class ServiceReceipt(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID
    kind: str
    delivered_on: date


class ServiceOut(ServiceReceipt):
    provider: str
    outcome: str
    recorded_by: str
    recorded_at: datetime


class ClosureIn(_In):
    reason: ClosureReason
    note: str | None = Field(default=None, max_length=4000)


class ReopenIn(_In):
    reason: ReopenReason


class TransferIn(_In):
    caseworker_id: UserRef
    shelter_id: uuid.UUID | None = Field(default=None, description="another shelter; leave out to stay in this one")
    reason: str = Field(min_length=3, max_length=1000)
    version: Version | None = None


class AssignmentOut(BaseModel):
    shelter_id: uuid.UUID
    caseworker_id: str
    assigned_by: str
    reason: str | None
    started_at: datetime
    ended_at: datetime | None


class DischargeIn(_In):
    economic_support_programme: ProgrammeCode | None = Field(default=None, description="a registry programme code, e.g. KUBE; needs consent to registry enrolment")


class StayOut(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID
    shelter_id: uuid.UUID
    admitted_at: datetime
    discharged_at: datetime | None
    economic_support_programme: str | None


class ReferralIn(_In):
    partner_kind: PartnerKind
    partner_name: str = Field(min_length=2, max_length=200)
    purpose: str = Field(min_length=1, max_length=4000)


class ReferralReceipt(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID
    partner_kind: str
    status: str
    version: int


class ReferralOut(ReferralReceipt):
    partner_name: str
    purpose: str
    successful: bool | None
    reason: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime


class ReferralActionIn(_In):
    reason: str | None = Field(default=None, min_length=3, max_length=2000)
    successful: bool | None = Field(default=None, description="for complete: whether the referral achieved its purpose")
    version: Version | None = None


class AuditOut(BaseModel):
    id: int
    at: datetime
    subject: str
    user_id: str | None
    role: str | None
    action: str
    outcome: str
    case_id: uuid.UUID
    detail: dict[str, Any]
    correlation_id: str | None


class AuditPage(BaseModel):
    items: list[AuditOut]
    next_cursor: str | None
