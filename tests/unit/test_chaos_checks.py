"""How the chaos run judges the services' answers: an unexpected 5xx fails the run and says where to look."""

from __future__ import annotations

from chaos.load import LoadStats, ServerError
from chaos.run import Config, _service_lines

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
