"""Incidents: type, affected areas and the status history under the national scheme."""
