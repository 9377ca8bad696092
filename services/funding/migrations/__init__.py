"""Funding's own schema, applied at start-up after the shared outbox/inbox schema."""
