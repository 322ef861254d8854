"""The payable population: a local projection of the registry's enrolments and persons."""
