"""Events the registry service publishes and the handlers of those it consumes."""

SOURCE = "/pilar/registry"
