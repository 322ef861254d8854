"""The registry's consumer of the disaster service's affected-person events."""
