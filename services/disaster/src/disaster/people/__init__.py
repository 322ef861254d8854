"""Rapid assessment: affected households and persons, matched to the registry by NIK hash."""
