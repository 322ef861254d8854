"""Settings of the disaster service (environment variables prefixed ``PILAR_``)."""

from pilar_kernel.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "disaster"
    # Largest list page a client may ask for.
    max_page_size: int = 500
