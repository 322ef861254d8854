"""Tests of the gateway (a package, so that pytest does not shadow the ``gateway`` package)."""
