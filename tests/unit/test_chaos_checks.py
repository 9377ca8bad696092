"""How the chaos run judges the services' answers and dead letters: an unexpected 5xx or an event a consumer gave up
on fails the run and says where to look."""

from __future__ import annotations

import uuid

from chaos.checker import DEAD, Facts, _dead_letters
from chaos.load import LoadStats, ServerError
from chaos.run import Config, _service_lines
from shared.messaging.dead_letters import DeadLetter

FIVE_XX = "HTTP answers 5xx other than 503"
REPLICAS = {"http://127.0.0.1:8102": "funding-2"}
A_500 = ServerError("offers", 500, "Internal Server Error", 41.6, "http://127.0.0.1:8102")


def _line(stats: LoadStats):
    lines = _service_lines(Config.short(), [], [], stats, REPLICAS)
    return next(line for line in lines if line.label.startswith(FIVE_XX))


def test_a_500_fails_the_run_even_though_the_retry_then_succeeded():
    stats = LoadStats(server_errors=[A_500])

    line = _line(stats)

    assert line.failed and line.value == 1


def test_the_evidence_names_the_replica_whose_log_has_the_traceback():
    stats = LoadStats(server_errors=[A_500])

    assert _line(stats).evidence == ["offers -> 500 from funding-2 at 42s: Internal Server Error"]


def test_a_replica_the_run_does_not_know_is_named_by_its_address():
    stats = LoadStats(server_errors=[ServerError("register", 502, "Bad Gateway", 3.0, "http://127.0.0.1:9")])

    assert _line(stats).evidence == ["register -> 502 from http://127.0.0.1:9 at 3s: Bad Gateway"]


def test_a_run_whose_only_failures_were_503s_passes_this_check():
    assert not _line(LoadStats()).failed


def _letter(consumer: str, event_id: uuid.UUID) -> DeadLetter:
    return DeadLetter("registry.business.v1.dlq", 0, 3, b"k", b"{}", {
        "event_id": str(event_id), "dlq.consumer": consumer, "dlq.error": "RecordRefused: never heard of the business",
        "dlq.original_partition": "1", "dlq.original_offset": "7"})  # fmt: skip


def test_a_dead_letter_its_consumer_applied_since_is_counted_apart_and_one_still_missing_fails_the_run():
    # The relay sends an event again behind the registration it overtook; the copy applies, the dead letter stays.
    applied, missing = uuid.uuid4(), uuid.uuid4()
    inbox = [{"consumer": "funding-view", "event_id": str(applied)}, {"consumer": "notifier", "event_id": str(missing)}]
    facts = Facts(registry={"inbox": []}, funding={"inbox": inbox}, notifier={"inbox": []},
                  dead_letters={"registry.business.v1.dlq": [_letter("funding-view", applied),
                                                             _letter("funding-view", missing)]})  # fmt: skip

    still, since = _dead_letters(facts)

    assert (still.section, still.value, still.failed) == (DEAD, 1, True)
    assert still.evidence == [
        "funding-view: RecordRefused: never heard of the business (from registry.business.v1[1]@7)"]
    assert (since.value, since.failed) == (1, False) and "applied since" in since.label


def test_dead_letters_all_applied_since_pass_the_run():
    applied = uuid.uuid4()
    facts = Facts(registry={"inbox": []}, funding={"inbox": [{"consumer": "funding-view", "event_id": str(applied)}]},
                  notifier={"inbox": []}, dead_letters={"registry.business.v1.dlq": [_letter("funding-view", applied)]})

    assert [line.failed for line in _dead_letters(facts)] == [False, False]
