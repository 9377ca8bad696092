"""Reliable messaging every service uses: transactional outbox and relay, idempotent inbox, retries and dead letters."""
