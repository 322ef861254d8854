"""Events the homeless-return service publishes and the handlers of those it consumes."""

SOURCE = "/pilar/homeless-return"
