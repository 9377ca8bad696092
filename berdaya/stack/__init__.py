"""Bringing up real PostgreSQL and Kafka on a machine without Docker, and Berdaya's services on top of them."""
