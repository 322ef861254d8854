from gateway.models import metadata
from pilar_kernel.migrations import run_alembic

run_alembic(metadata)
