"""All tables of the registry (the metadata Alembic compares against)."""

from .aid import models as _aid  # noqa: F401
from .duplicates import models as _duplicates  # noqa: F401
from .imports import models as _imports  # noqa: F401
from .persons import models as _persons  # noqa: F401
from .programmes import models as _programmes  # noqa: F401
from .tables import Table

metadata = Table.metadata
