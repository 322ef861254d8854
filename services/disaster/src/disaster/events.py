"""Events the disaster service publishes and the handlers of those it consumes."""

SOURCE = "/pilar/disaster"
