"""The chaos run: the services as real processes under a realistic load while processes, the database and the broker
are killed, frozen, cut off and restarted; then an invariant checker compares every service's state with its source
of truth. `python -m chaos` runs it on a PostgreSQL and Kafka of its own; tests/e2e/test_chaos_short.py runs a short
version on the test session's."""
