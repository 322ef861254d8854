"""``python -m pilar_devstack up|down|status|logs``."""

from .cli import main

raise SystemExit(main())
