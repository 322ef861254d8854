"""Pilar aid disbursement. Programme budgets, payment rounds, the bank channel and reconciliation."""
