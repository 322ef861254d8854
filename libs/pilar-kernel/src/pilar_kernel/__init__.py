"""Pilar shared kernel: the only code the services share.

Modules keep one concern each: settings, db, events (CloudEvents envelope and the event
registry), outbox (transactional outbox and its relay), consumer (inbox-deduplicating
consumer runner with dead letters), auth, problems, idempotency, observability, health,
service (the app factory), asyncapi, migrations and prestart.
"""
