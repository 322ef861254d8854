"""Programme settings, yearly budgets and payment rounds (tahap): snapshot, approval, payees."""
