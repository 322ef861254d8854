"""Integration event contracts of the Pilar platform, one module per publishing service.

A service publishes the events of its own module; any service may consume any of them by
importing the model (never the publisher's code). Changing a model in a breaking way means a
new ``.vN`` class beside the old one. ``load_all()`` imports every module, which registers
the models for decoding, the stack's topic list and the AsyncAPI catalogue.
"""

import importlib

MODULES = ("registry", "disbursement", "shelter", "homeless_return", "disaster")


def load_all() -> None:
    for name in MODULES:
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
