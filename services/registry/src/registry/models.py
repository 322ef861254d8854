"""All tables of the registry (the metadata Alembic compares against)."""

from sqlmodel import SQLModel

from .duplicates import models as _duplicates  # noqa: F401
from .persons import models as _persons  # noqa: F401
from .programmes import models as _programmes  # noqa: F401

metadata = SQLModel.metadata
