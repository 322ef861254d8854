"""Evacuation points: capacity, headcounts over time, vulnerable groups, public kitchens."""
