"""Settings of the registry service (environment variables prefixed ``PILAR_``)."""

from pilar_kernel.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "registry"
