"""Events the shelter service publishes and the handlers of those it consumes."""

SOURCE = "/pilar/shelter"
