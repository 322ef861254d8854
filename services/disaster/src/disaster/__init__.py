"""Pilar disaster response. Incidents, affected people, evacuation points, Tagana volunteers and buffer stock."""
