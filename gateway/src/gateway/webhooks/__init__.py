"""Webhooks: agencies subscribe to event types and receive them as signed HTTP callbacks."""
