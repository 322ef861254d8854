"""Settings of the registry service (environment variables prefixed ``PILAR_``)."""

from pydantic import Field, model_validator

from pilar_kernel.settings import DEV_SECRET, Environment, ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "registry"
    # Key of the registry's own blind indexes (phone numbers); the NIK uses the
    # platform-wide nik_hash_key so that other services can match persons.
    index_key: str = DEV_SECRET
    # Trigram similarity of normalised names above which two records with the same birth
    # date and district are queued as probable duplicates (pg_trgm's own default is 0.3).
    name_match_threshold: float = 0.4
    # Pieces of an import job that one process applies at once, each on its own database
    # connection (see imports.service.ImportWorker).
    import_lanes: int = Field(default=2, ge=1, le=8)

    @model_validator(mode="after")
    def _refuse_default_index_key(self) -> "Settings":
        if self.env not in (Environment.development, Environment.test) and self.index_key == DEV_SECRET:
            raise ValueError(f"refusing to start in {self.env.value}: set PILAR_INDEX_KEY")
        return self
