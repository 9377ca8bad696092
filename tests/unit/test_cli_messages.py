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

from berdaya import cli
from berdaya.cli_partners import problem_detail
from shared.messaging import dead_letters
from shared.messaging.dead_letters import DeadLetter


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


def test_dlq_redrive_of_a_letter_cut_short_says_why_and_still_redrives_the_others(
        screen: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    sent: list[str] = []

    class Producer:  # keeps where each record it publishes was re-driven from
        async def start(self) -> None:
            pass

        async def stop(self) -> None:
            pass

        async def send_and_wait(self, topic: str, value: bytes, key: bytes, headers: list) -> None:
            sent.append(dict(headers)["redriven_from"].decode())

    monkeypatch.setattr(dead_letters, "safe_producer", lambda kafka, client_id: Producer())
    cut = partner_letter(4, b"cut", **{"dlq.value_truncated_from": "1048600", "dlq.value_sha256": "9f86d081"})
    dead_letters_are(monkeypatch, partner_letter(3, b"whole"), cut, partner_letter(5, b"whole"))
    result = CliRunner().invoke(cli.app, ["dlq", "redrive", "partner.bri.outcomes.v1", "--yes"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # told, not a traceback
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
