"""Fixtures several integration test modules share: the notifier's gateways served on local ports."""

from tests.gateways.notifier import cloud, sms

__all__ = ["cloud", "sms"]
