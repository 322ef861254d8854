"""Settings of the homeless-return service (environment variables prefixed ``PILAR_``)."""

from pydantic import Field, field_validator, model_validator

from pilar_kernel import regions
from pilar_kernel.settings import DEV_SECRET, Environment, ServiceSettings

from .domain import DEFAULT_RELAY_PARTNERS, parse_month_day


class Settings(ServiceSettings):
    service_name: str = "homeless-return"
    # Key of this service's blind index (name and birth date, to spot repeat claimants).
    index_key: str = DEV_SECRET
    # A person returned again within this many months is flagged as a repeat claimant.
    repeat_window_months: int = Field(default=12, ge=1, le=120)
    # Holidays on the same date every year (MM-DD); moving ones live in the holiday table.
    yearly_holidays: list[str] = Field(default_factory=lambda: ["01-01", "05-01", "06-01", "08-17", "12-25"])
    # Destination province -> partner province of the first handover (JSON in PILAR_RELAY_PARTNERS).
    relay_partners: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_RELAY_PARTNERS))
    # How often the overdue gauge is recounted, in seconds.
    overdue_refresh_s: float = Field(default=30.0, gt=0)

    @field_validator("yearly_holidays")
    @classmethod
    def _month_days(cls, value: list[str]) -> list[str]:
        for item in value:
            parse_month_day(item)
        return value

    @field_validator("relay_partners")
    @classmethod
    def _provinces(cls, value: dict[str, str]) -> dict[str, str]:
        for destination, partner in value.items():
            for code in (destination, partner):
                region = regions.get(code)
                if region is None or region.level != "province":
                    raise ValueError(f"relay_partners: {code!r} is not a province code")
        return value

    @model_validator(mode="after")
    def _refuse_default_index_key(self) -> "Settings":
        if self.env not in (Environment.development, Environment.test) and self.index_key == DEV_SECRET:
            raise ValueError(f"refusing to start in {self.env.value}: set PILAR_INDEX_KEY")
        return self
