"""Benchmarks: figures printed against a baseline measured in the same run, on real PostgreSQL and Kafka."""
