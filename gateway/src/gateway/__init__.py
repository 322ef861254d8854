"""Pilar API gateway. The one HTTP entry for integrating agencies: tokens, routing, limits, catalogue."""
