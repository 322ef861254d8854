"""Settings of the homeless-return service (environment variables prefixed ``PILAR_``)."""

from pilar_kernel.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "homeless-return"
