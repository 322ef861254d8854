"""Pilar Simlontar Rek. Returning stranded persons home (Simlontar Rek)."""
