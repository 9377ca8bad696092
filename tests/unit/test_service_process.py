"""How a service's own process is set up before it serves."""

from __future__ import annotations

import gc

from shared.service import GC_THRESHOLDS, tune_gc


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
