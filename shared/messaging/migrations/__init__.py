"""Schema of the outbox and inbox tables, applied in every service's database."""
