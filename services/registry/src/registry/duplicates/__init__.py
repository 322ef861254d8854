"""Probable duplicates: similar name, same birth date, same district; a review queue where a
reviewer merges the pair or dismisses it."""
