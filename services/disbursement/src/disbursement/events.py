"""Events the disbursement service publishes and the handlers of those it consumes."""

SOURCE = "/pilar/disbursement"
