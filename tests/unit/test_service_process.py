"""How a service's own process is set up before it serves."""

from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry

from services.funding.bootstrap import SERVICE
from shared.messaging.subscriptions import GRACEFUL_STOP_SECONDS, Consumers
from shared.service import GC_THRESHOLDS, new_broker, tune_gc
from services.registry.settings import RegistrySettings
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


def test_the_registry_plans_its_statements_for_their_parameters_and_the_other_services_keep_postgresql_s_choice(
    monkeypatch,
):
    """tests/integration/test_query_plans.py shows what a plan kept from a nearly empty table does to the registry."""
    key = "a" * 43 + "="
    platform = PlatformSettings(jwt_secret="x" * 48, pseudonym_key="a" * 44)  # type: ignore[call-arg]
    registry = RegistrySettings(jwt_secret="x" * 48, pseudonym_key="a" * 44, nik_digest_key=key,
                                nik_encryption_key=key)  # type: ignore[call-arg]  # fmt: skip
    assert (platform.db_custom_plans, registry.db_custom_plans) == (False, True)
    monkeypatch.setenv("BERDAYA_DB_CUSTOM_PLANS", "false")
    assert not RegistrySettings(jwt_secret="x" * 48, pseudonym_key="a" * 44, nik_digest_key=key,
                                nik_encryption_key=key).db_custom_plans  # type: ignore[call-arg]  # fmt: skip
