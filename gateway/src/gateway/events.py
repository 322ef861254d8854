"""Events the gateway service publishes and the handlers of those it consumes."""

SOURCE = "/pilar/gateway"
