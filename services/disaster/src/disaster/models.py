"""All tables of the disaster service (the metadata Alembic compares against). The kernel's
outbox, inbox and idempotency tables are created by the first migration."""

from .base import Model
from .evacuation import models as _evacuation  # noqa: F401
from .incidents import models as _incidents  # noqa: F401
from .people import models as _people  # noqa: F401
from .stock import models as _stock  # noqa: F401
from .tagana import models as _tagana  # noqa: F401

metadata = Model.metadata
