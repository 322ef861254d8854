"""Tagana volunteers and their deployments to incidents."""
