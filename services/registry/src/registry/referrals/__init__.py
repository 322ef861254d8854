"""Referrals from other services that become enrolment proposals (the shelter's economic support)."""
