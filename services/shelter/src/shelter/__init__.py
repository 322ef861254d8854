"""Pilar shelter cases. Cases of women and children who are victims of violence, and shelter beds."""
