"""Bank statements matched against payments, and the per-round totals."""
