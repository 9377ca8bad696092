"""What the command line tells an officer or operator: a service's refusal in its own words, not its JSON; dead letters
and errors as they are, never read as markup; no password on the screen."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from berdaya import cli, cli_partners
from berdaya.importer import ImportRefused, count_rows
from berdaya.problems import problem_detail
from shared.messaging import dead_letters
from shared.messaging.dead_letters import DeadLetter
from tests.unit.test_messaging_helpers import FakeProducer


def test_a_refusal_is_told_in_the_words_of_the_problem_document() -> None:
    refused = httpx.Response(404, json={"type": "urn:berdaya:problem:not_found", "title": "Not found", "status": 404,
                                        "detail": "no partner nosuch", "code": "not_found", "errors": []})  # fmt: skip
    assert problem_detail(refused) == "no partner nosuch"


def test_a_refusal_that_is_not_a_problem_document_is_told_as_it_came_and_cut_short() -> None:
    assert problem_detail(httpx.Response(502, text="Bad Gateway")) == "Bad Gateway"
    assert problem_detail(httpx.Response(500, json={"error": "x" * 1000})) == ('{"error":"' + "x" * 1000)[:300]


# ---------------------------------------------------------------------------------------------------------------
# Dead letters on the screen: a partner's text is shown as it is, never read as markup
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def screen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> io.StringIO:
    """What the command line prints, wide enough that nothing is folded; its stack reaches no Kafka."""
    out = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=out, width=400))
    monkeypatch.setenv("BERDAYA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    return out


def partner_letter(offset: int, value: bytes, **headers: str) -> DeadLetter:
    """A record a partner wrote to its outcomes topic, dead-lettered: what is in it is the partner's choice."""
    return DeadLetter("partner.bri.outcomes.v1.dlq", 0, offset, b"k", value,
                      {"dlq.original_topic": "partner.bri.outcomes.v1", "dlq.consumer": "funding-partners",
                       "dlq.error": "ContractError: not an envelope: [/x] hello", **headers})  # fmt: skip


def dead_letters_are(monkeypatch: pytest.MonkeyPatch, *letters: DeadLetter) -> None:
    monkeypatch.setattr(cli, "_dead_letters", lambda topic: list(letters))


def test_dlq_show_prints_a_value_and_headers_that_look_like_markup_as_they_are(
        screen: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    dead_letters_are(monkeypatch, partner_letter(3, b"[/x] hello [bold]", **{"[red]": "[/red]\\"}))
    result = CliRunner().invoke(cli.app, ["dlq", "show", "partner.bri.outcomes.v1", "3"])
    assert result.exit_code == 0, result.exception
    shown = screen.getvalue()
    assert "[/x] hello [bold]" in shown and "[red]: [/red]\\" in shown
    assert "dlq.error: ContractError: not an envelope: [/x] hello" in shown


def test_dlq_list_prints_errors_and_consumers_that_look_like_markup_as_they_are(
        screen: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    dead_letters_are(monkeypatch, partner_letter(3, b"x", **{"dlq.consumer": "[bold]funding"}))
    result = CliRunner().invoke(cli.app, ["dlq", "list", "partner.bri.outcomes.v1"])
    assert result.exit_code == 0, result.exception
    assert "[/x] hello" in screen.getvalue() and "[bold]funding" in screen.getvalue()


@pytest.mark.parametrize(("choice", "said"), [
    (["--offset", "5", "--offset", "12"], ["no dead letter at offset(s) 12 of partner.bri.outcomes.v1"]),
    (["--consumer", "funding-view"], ["no dead letter of consumer 'funding-view'",
                                      "those there are of 'funding-partners'"]),
])  # fmt: skip
def test_dlq_redrive_of_an_offset_or_a_consumer_with_no_dead_letter_names_it_and_redrives_nothing(
        screen: io.StringIO, monkeypatch: pytest.MonkeyPatch, choice: list[str], said: list[str]) -> None:  # fmt: skip
    dead_letters_are(monkeypatch, partner_letter(5, b"x"))
    monkeypatch.setattr("shared.messaging.dead_letters.redrive", _never_redriven)
    result = CliRunner().invoke(cli.app, ["dlq", "redrive", "partner.bri.outcomes.v1", *choice, "--yes"])
    assert result.exit_code == 1
    assert all(s in screen.getvalue() for s in said), screen.getvalue()
    assert "Nothing was re-driven" in screen.getvalue()


def test_dlq_redrive_with_nobody_at_a_terminal_asks_for_yes_rather_than_prompting(
        screen: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    dead_letters_are(monkeypatch, partner_letter(5, b"x"))
    monkeypatch.setattr("shared.messaging.dead_letters.redrive", _never_redriven)
    monkeypatch.setattr(cli_partners, "console", cli.console)
    result = CliRunner().invoke(cli.app, ["dlq", "redrive", "partner.bri.outcomes.v1"], input="y\n")
    assert result.exit_code == 1
    assert "Re-drive 1 dead letter(s) to partner.bri.outcomes.v1?" in screen.getvalue()
    assert "pass --yes to go ahead without asking" in screen.getvalue()


async def _never_redriven(*_: object) -> int:
    raise AssertionError("nothing may be re-driven")


def test_dlq_redrive_of_a_letter_cut_short_says_why_and_still_redrives_the_others(
        screen: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    producer = FakeProducer()
    monkeypatch.setattr(dead_letters, "safe_producer", lambda kafka, client_id: producer)
    cut = partner_letter(4, b"cut", **{"dlq.value_truncated_from": "1048600", "dlq.value_sha256": "9f86d081"})
    dead_letters_are(monkeypatch, partner_letter(3, b"whole"), cut, partner_letter(5, b"whole"))
    result = CliRunner().invoke(cli.app, ["dlq", "redrive", "partner.bri.outcomes.v1", "--yes"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # told, not a traceback
    sent = [dict(headers)["redriven_from"].decode() for headers in producer.headers]
    assert sent == ["partner.bri.outcomes.v1.dlq:0:3", "partner.bri.outcomes.v1.dlq:0:5"]
    said = screen.getvalue()
    assert "2 of 3 dead letter(s) re-driven" in said and "0:4 was 1048600 bytes (sha256 9f86d081)" in said
    assert "producer must send each such event again" in said


# ---------------------------------------------------------------------------------------------------------------
# What `berdaya up` shows
# ---------------------------------------------------------------------------------------------------------------


def test_the_berdaya_is_running_panel_shows_the_postgresql_url_without_its_password(
        screen: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("BERDAYA_POSTGRES_URL", "postgresql://berdaya:Sup3rS3cret@db.example:5432/postgres")
    monkeypatch.setenv("BERDAYA_PROMETHEUS_PORT", "1")  # nobody there: not asked twice
    monkeypatch.setenv("BERDAYA_ALERTMANAGER_PORT", "2")
    cli._print_urls(cli._stack())
    assert "PostgreSQL postgresql://berdaya:***@db.example:5432/postgres" in screen.getvalue()
    assert "Sup3rS3cret" not in screen.getvalue()


def test_an_error_quoting_what_looks_like_markup_is_printed_as_it_is(screen: io.StringIO) -> None:
    with pytest.raises(typer.Exit):
        cli._fail("row 3: [/x] is not a name")
    assert screen.getvalue() == "error: row 3: [/x] is not a name\n"


# ---------------------------------------------------------------------------------------------------------------
# Text from outside (Kafka, the services, file names, the environment, what was typed) is printed as it is
# ---------------------------------------------------------------------------------------------------------------

# A closing tag with no opening one, a style, an emoji code, a final backslash.
HOSTILE = "[/x] [bold]loud :thumbs_up: C:\\dir\\"


def test_an_error_quoting_emoji_codes_and_a_final_backslash_is_printed_as_it_is(screen: io.StringIO) -> None:
    with pytest.raises(typer.Exit):
        cli._fail(HOSTILE)
    assert screen.getvalue() == f"error: {HOSTILE}\n"


@pytest.mark.parametrize("raised", [
    lambda: __import__("confluent_kafka").KafkaException(
        __import__("confluent_kafka").KafkaError(__import__("confluent_kafka").KafkaError._TRANSPORT, HOSTILE)),
    lambda: TimeoutError(HOSTILE),
], ids=["kafka", "timeout"])  # fmt: skip
def test_what_kafka_said_when_a_command_fails_is_printed_as_it_is(
        screen: io.StringIO, monkeypatch: pytest.MonkeyPatch, raised) -> None:  # noqa: ANN001  # fmt: skip
    def app() -> None:
        raise raised()

    monkeypatch.setattr(cli, "app", app)
    with pytest.raises(SystemExit) as ended:
        cli.main()
    assert ended.value.code == 1
    said = screen.getvalue()
    assert said.startswith("error: ") and HOSTILE in said and "127.0.0.1:1" in said


def test_an_import_names_a_file_and_quotes_the_registry_s_reasons_as_they_are(
        screen: io.StringIO, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # fmt: skip
    monkeypatch.setenv("BERDAYA_TOKEN", "t")
    data = tmp_path / "[bold]kupang [red]:thumbs_up:.csv"  # a name has no '/', so no closing tag: markup mangles it
    data.write_text("nama_usaha\n[/x]\n")

    def import_file(file: Path, *, summary, progress, **_: object) -> None:  # noqa: ANN001
        summary.received = 1
        summary.errors.append({"line": 2, "field": "[bold]nama_usaha", "code": "x", "message": HOSTILE})
        progress(1)

    monkeypatch.setattr(cli, "import_file", import_file)
    result = CliRunner().invoke(cli.app, ["import", str(data)])
    assert result.exit_code == 2, result.exception
    said = screen.getvalue()
    assert "Importing [bold]kupang [red]:thumbs_up:.csv" in said
    assert "Importof[bold]kupang[red]:thumbs_up:.csv" in "".join(said.split())  # the table's title, folded to its width
    assert f"line 2, [bold]nama_usaha: {HOSTILE}" in said
    assert f"1 row(s) need fixing; each is listed in {data.with_suffix('.errors.csv')}" in said


def test_a_kecamatan_the_registry_names_is_printed_as_it_is(screen: io.StringIO) -> None:
    from berdaya.views import print_coverage

    print_coverage(cli.console, {"registered": 1, "with_nib": 0, "coverage": 0.0, "by_kecamatan": [
        {"kecamatan": "[/x] Oebobo [bold]", "code": "53.71.01", "bps_code": "[red]", "registered": 1, "with_nib": 0,
         "coverage": 0.0}]})  # fmt: skip
    assert "[/x] Oebobo [bold]" in screen.getvalue() and "[red]" in screen.getvalue()


def test_what_the_stack_says_as_it_starts_and_why_it_stopped_are_printed_as_they_are(
        screen: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    class Stack:
        base = Path("/nowhere")

        def up(self, say) -> None:  # noqa: ANN001
            say(f"Kafka: using {HOSTILE}")
            raise RuntimeError(f"registry /ready did not come up; its log ends: {HOSTILE}")

    monkeypatch.setattr(cli, "_stack", Stack)
    result = CliRunner().invoke(cli.app, ["up"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    said = screen.getvalue()
    assert f"  Kafka: using {HOSTILE}\n" in said and f"its log ends: {HOSTILE}" in said


def test_the_berdaya_is_running_panel_shows_paths_and_addresses_from_the_environment_as_they_are(
        screen: io.StringIO, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # fmt: skip
    monkeypatch.setenv("BERDAYA_HOME", str(tmp_path / "[/x] [bold]home"))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "[red]kafka:9092")
    monkeypatch.setenv("BERDAYA_PROMETHEUS_PORT", "1")
    monkeypatch.setenv("BERDAYA_ALERTMANAGER_PORT", "2")
    cli._print_urls(cli._stack())
    said = screen.getvalue()
    assert "Kafka [red]kafka:9092" in said and "[/x] [bold]home" in said
    assert "berdaya token --subject <your e-mail>" in said and "registry  API docs http://127.0.0.1:" in said


def test_dlq_list_of_a_topic_typed_like_markup_and_a_redrive_to_a_topic_a_header_names_print_them_as_they_are(
        screen: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(dead_letters, "safe_producer", lambda kafka, client_id: FakeProducer())
    dead_letters_are(monkeypatch, partner_letter(3, b"x", **{"dlq.original_topic": "[/x]topic"}))
    listed = CliRunner().invoke(cli.app, ["dlq", "list", "[/x][bold]"])
    assert listed.exit_code == 0, listed.exception
    assert "1 dead letter(s) of [/x][bold]" in screen.getvalue()
    redriven = CliRunner().invoke(cli.app, ["dlq", "redrive", "[/x][bold]", "--yes"])
    assert redriven.exit_code == 0, redriven.exception
    assert "1 dead letter(s) published again to [/x]topic." in screen.getvalue()


# ---------------------------------------------------------------------------------------------------------------
# `berdaya replay` on the deployment's namespace
# ---------------------------------------------------------------------------------------------------------------


def test_replay_rebuilds_the_consumer_groups_of_the_namespace_the_services_run_in(
        screen: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    asked: list[str] = []

    async def rebuild(view, *, database_url: str, kafka, namespace: str) -> dict[str, int]:  # noqa: ANN001
        asked.append(namespace)
        return {}

    monkeypatch.setattr(cli, "rebuild", rebuild)
    monkeypatch.setenv("BERDAYA_TOPIC_NAMESPACE", "kupang")
    args = ["replay", "funding-view", "--no-restart", "--database-url", "postgresql://127.0.0.1:1/x"]
    assert CliRunner().invoke(cli.app, args).exit_code == 0
    assert CliRunner().invoke(cli.app, [*args, "--namespace", "other"]).exit_code == 0  # said on the command line
    assert asked == ["kupang", "other"]


def test_replay_whose_service_does_not_start_again_says_so_and_that_the_view_is_rebuilt_when_it_does(
        screen: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from berdaya.stack.local import LocalStack

    async def rebuild(view, **_: object) -> dict[str, int]:  # noqa: ANN001
        return {"funding_businesses": 3}

    def start_service(self, spec) -> None:  # noqa: ANN001
        raise RuntimeError("port 8002 for funding is taken by another program; stop it first")

    monkeypatch.setattr(cli, "rebuild", rebuild)
    monkeypatch.setattr(LocalStack, "start_service", start_service)
    result = CliRunner().invoke(cli.app, ["replay", "funding-view", "--database-url", "postgresql://127.0.0.1:1/x"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    said = screen.getvalue()
    assert "error: funding-view was emptied and is rebuilt from the beginning of its topics when funding next" in said
    assert "port 8002 for funding is taken" in said


@pytest.mark.parametrize(("environment", "option", "running_in", "told"), [
    ("", "kota", None, "the local stack starts funding in no namespace"),  # --namespace, not the environment
    ("", "", "kota", "funding is running in topic namespace kota, not (none)"),  # a shell without the variable
    ("kota", "kota", "", "funding is running in topic namespace (none), not kota"),
])  # fmt: skip
def test_replay_in_a_namespace_other_than_the_local_services_stops_and_empties_nothing(
        environment: str, option: str, running_in: str | None, told: str, screen: io.StringIO,
        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from berdaya.stack.local import LocalStack

    done: list[str] = []

    async def rebuild(view, **_: object) -> dict[str, int]:  # noqa: ANN001
        done.append("emptied")
        return {}

    monkeypatch.setattr(cli, "rebuild", rebuild)
    monkeypatch.setattr(LocalStack, "stop_service", lambda self, spec: done.append("stopped") or True)
    monkeypatch.setattr(LocalStack, "running", lambda self, spec: running_in is not None)
    monkeypatch.setattr(LocalStack, "running_namespace", lambda self, spec: running_in)
    monkeypatch.setenv("BERDAYA_TOPIC_NAMESPACE", environment)
    result = CliRunner().invoke(cli.app, ["replay", "funding-view", "--namespace", option,
                                          "--database-url", "postgresql://127.0.0.1:1/x"])  # fmt: skip

    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert told in " ".join(screen.getvalue().split()) and "Nothing was stopped or emptied" in screen.getvalue()
    assert done == []


# ---------------------------------------------------------------------------------------------------------------
# A rebuild that holds back: the command waits for the settling too
# ---------------------------------------------------------------------------------------------------------------


def test_a_rebuild_is_told_complete_only_once_what_was_held_back_is_settled(screen, monkeypatch) -> None:
    from services.training.replay import TRAINING_VIEW

    left = iter([2, 1, 0])

    async def still_held(view, database_url):  # noqa: ANN001, ANN202
        return next(left)

    monkeypatch.setattr(cli, "still_held", still_held)
    monkeypatch.setattr(cli.time, "sleep", lambda _: None)

    assert cli._settled(TRAINING_VIEW, "postgresql://x/training", "training")
    assert next(left, "all asked") == "all asked"


def test_settling_that_outlasts_the_wait_is_said_to_carry_on_without_the_command(screen, monkeypatch) -> None:
    from services.training.replay import TRAINING_VIEW

    async def still_held(view, database_url):  # noqa: ANN001, ANN202
        return 1234

    monkeypatch.setattr(cli, "still_held", still_held)
    monkeypatch.setattr(cli.time, "sleep", lambda _: None)

    assert not cli._settled(TRAINING_VIEW, "postgresql://x/training", "training", timeout=0)
    assert "training is still settling after 0 minutes (1,234 to go)" in screen.getvalue()


def test_a_token_is_minted_only_for_someone_named_so_two_trainers_never_share_one_subject() -> None:
    refused = CliRunner().invoke(cli.app, ["token", "--role", "trainer"])

    assert refused.exit_code != 0 and "--subject" in refused.output


def test_an_import_stopped_by_ctrl_c_keeps_the_errors_found_in_the_files_own_delimiter_and_says_what_was_taken(
        screen: io.StringIO, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # fmt: skip
    monkeypatch.setenv("BERDAYA_TOKEN", "t")
    data = tmp_path / "umkm.csv"
    data.write_text("business_name;owner_name\nKopi;Nus\nKué;Ina\n", encoding="utf-8")

    def import_file(file: Path, *, summary, progress, **_: object) -> None:  # noqa: ANN001
        summary.received, summary.registered = 2, 1
        summary.errors.append({"line": 3, "field": "owner_name", "code": "x", "message": "Kué; nama terlalu pendek"})
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "import_file", import_file)
    result = CliRunner().invoke(cli.app, ["import", str(data)])

    assert result.exit_code == 130
    said = " ".join(screen.getvalue().split())
    assert "stopped" in said and "The 1 row(s) the registry took before this point are in" in said
    report = data.with_suffix(".errors.csv").read_bytes()
    assert report.startswith("\ufeff".encode()) and 'line;field;code;message\r\n3;owner_name;x;"Kué; nama' in (
        report.decode("utf-8-sig"))  # fmt: skip


def test_an_import_refused_before_any_error_leaves_no_earlier_runs_list_of_rows_to_fix(
        screen: io.StringIO, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # fmt: skip
    monkeypatch.setenv("BERDAYA_TOKEN", "t")
    data = tmp_path / "umkm.csv"
    data.write_text("business_name,owner_name\nKopi,Nus\n", encoding="utf-8")
    stale = data.with_suffix(".errors.csv")
    stale.write_text("line,field,code,message\n2,x,y,an earlier run's\n", encoding="utf-8")

    def import_file(file: Path, **_: object) -> None:
        raise ImportRefused("the header has an unknown column")

    monkeypatch.setattr(cli, "import_file", import_file)
    result = CliRunner().invoke(cli.app, ["import", str(data)])

    assert result.exit_code == 1 and not stale.exists()
    assert "The registry reported no row taken" in " ".join(screen.getvalue().split())


def test_a_file_whose_lines_end_in_a_carriage_return_alone_counts_its_rows_for_the_progress_bar(tmp_path: Path) -> None:
    data = tmp_path / "mac.csv"
    data.write_bytes(b"business_name,owner_name\rKopi,Nus\rKue,Ina\r")

    assert count_rows(data) == 2


def test_status_says_in_one_line_why_the_coverage_could_not_be_read_rather_than_a_traceback(
        screen: io.StringIO, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # fmt: skip
    from berdaya.stack.local import LocalStack

    monkeypatch.setenv("BERDAYA_HOME", str(tmp_path))
    stack = LocalStack()
    monkeypatch.setattr(stack, "status", lambda: {"registry": "ready"})
    monkeypatch.setattr(stack, "ready", lambda spec: True)
    monkeypatch.setattr(stack.monitoring, "status", lambda: {"prometheus": "down"})
    monkeypatch.setattr(cli, "_stack", lambda: stack)
    monkeypatch.setattr(cli.httpx, "get", lambda url, timeout: httpx.Response(
        503, json={"code": "database_unavailable"}, request=httpx.Request("GET", url)))  # fmt: skip

    result = CliRunner().invoke(cli.app, ["status"])

    assert result.exit_code == 0, result.exception
    said = " ".join(screen.getvalue().split())
    assert "error: the registry's NIB coverage could not be read (HTTPStatusError" in said
    assert f"Home {tmp_path}" in said


def test_a_token_for_a_kecamatan_the_city_does_not_have_is_refused_naming_the_citys_codes(screen: io.StringIO) -> None:
    refused = CliRunner().invoke(cli.app, ["token", "--subject", "maria@kupangkota.go.id", "--kecamatan", "53.71.09"])

    said = " ".join(screen.getvalue().split())
    assert refused.exit_code == 1 and "53.71.09 are none of the city's" in said and "53.71.04 (Oebobo)" in said
