"""Tables of the registry service (SQLModel). The kernel's outbox, inbox and
idempotency tables are created by the first migration."""

from sqlmodel import SQLModel

metadata = SQLModel.metadata
