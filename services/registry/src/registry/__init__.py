"""Pilar beneficiary registry. Persons, households and programme enrolment: the source of truth for who the agency serves."""
