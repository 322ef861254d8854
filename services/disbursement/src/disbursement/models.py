"""All tables of the disbursement service (the metadata Alembic compares against). The
kernel's outbox, inbox and idempotency tables are created by the first migration."""

from .base import Model
from .payments import models as _payments  # noqa: F401
from .population import models as _population  # noqa: F401
from .reconciliation import models as _reconciliation  # noqa: F401
from .relief import models as _relief  # noqa: F401
from .rounds import models as _rounds  # noqa: F401

metadata = Model.metadata
