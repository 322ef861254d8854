"""Settings of the disbursement service (environment variables prefixed ``PILAR_``)."""

from pydantic import Field, model_validator

from pilar_kernel.settings import DEV_SECRET, Environment, ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "disbursement"

    # The paying bank. Without a URL the bank sender does not run (post-office rounds still work).
    bank_url: str | None = None
    # Shared secret of the HMAC-SHA256 signatures on both directions (our batches, its callbacks).
    bank_hmac_secret: str = DEV_SECRET
    # Where the bank posts results: this service's callback route as the bank reaches it.
    bank_callback_url: str = "http://127.0.0.1:8002/v1/bank/callbacks"
    # A callback whose timestamp is further than this from our clock is refused (replay window).
    bank_callback_tolerance_s: int = 300
    bank_batch_size: int = 1000
    bank_max_in_flight: int = 4  # batches posted to the bank at the same time
    bank_idle_poll_s: float = 0.5  # how often an idle sender looks for new payments
    bank_resend_after_s: float = 30.0  # re-post a batch the bank has not acknowledged after this long
    bank_request_timeout_s: float = 30.0
    # A bank payment sent this long ago with no result (its callbacks lost) is asked about:
    # POST {bank}/v1/status-queries, signed like a batch. Asked again every interval until settled.
    bank_status_after_s: float = Field(default=600.0, gt=0)
    bank_status_interval_s: float = Field(default=300.0, gt=0)
    bank_status_poll_s: float = Field(default=10.0, gt=0)  # how often the status checker looks for such payments
    bank_status_batch_size: int = Field(default=500, ge=1, le=1000)  # instructions per status query

    @model_validator(mode="after")
    def _refuse_default_bank_secret(self) -> "Settings":
        if self.env not in (Environment.development, Environment.test) and self.bank_hmac_secret == DEV_SECRET:
            raise ValueError(f"refusing to start in {self.env.value}: set PILAR_BANK_HMAC_SECRET")
        return self
