"""Persons and households: registration, NIK rules, privacy, status changes, merges."""
