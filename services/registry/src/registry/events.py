"""Events the registry publishes: the contract models live in ``pilar_contracts.registry``
so that consumers in other services import the models, not the registry."""

from pilar_contracts.registry import *  # noqa: F401,F403
from pilar_contracts.registry import SOURCE  # noqa: F401
