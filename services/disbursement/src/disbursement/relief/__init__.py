"""Emergency cash for disaster-affected households (relief programmes and their grants)."""
