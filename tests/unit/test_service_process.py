"""How a service's own process is set up before it serves."""

from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry

from services.funding.bootstrap import SERVICE
from shared.messaging.subscriptions import GRACEFUL_STOP_SECONDS, Consumers
from shared.service import GC_THRESHOLDS, new_broker, tune_gc
from shared.settings import PlatformSettings


def test_a_service_process_freezes_what_start_up_made_and_collects_cycles_less_often():
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == GC_THRESHOLDS
        assert GC_THRESHOLDS[0] > before[0]
    finally:
        gc.unfreeze()  # the test process keeps collecting as it did
        gc.set_threshold(*before)


def test_a_stopping_service_waits_for_the_batches_being_applied_as_the_consumer_tests_prove():
    """tests/integration/test_consumer_delivery.py stops a consumer mid-batch with this wait; the services use it."""
    settings = PlatformSettings(jwt_secret="x" * 48, pseudonym_key="a" * 44)  # type: ignore[call-arg]
    broker = new_broker(SERVICE, settings, CollectorRegistry(), Consumers())
    assert broker.config.graceful_timeout == GRACEFUL_STOP_SECONDS > 0
