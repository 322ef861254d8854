"""Settings of the shelter service (environment variables prefixed ``PILAR_``)."""

from pydantic import Field

from pilar_kernel.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "shelter"
    # Statistics show any count below this as "<N", so that no survivor can be singled out.
    small_count_threshold: int = Field(default=5, ge=2)
