"""What the command line tells an officer when a service refuses: the service's own words, not its JSON."""

from __future__ import annotations

import httpx

from berdaya.cli_partners import problem_detail


def test_a_refusal_is_told_in_the_words_of_the_problem_document() -> None:
    refused = httpx.Response(404, json={"type": "urn:berdaya:problem:not_found", "title": "Not found", "status": 404,
                                        "detail": "no partner nosuch", "code": "not_found", "errors": []})  # fmt: skip
    assert problem_detail(refused) == "no partner nosuch"


def test_a_refusal_that_is_not_a_problem_document_is_told_as_it_came_and_cut_short() -> None:
    assert problem_detail(httpx.Response(502, text="Bad Gateway")) == "Bad Gateway"
    assert problem_detail(httpx.Response(500, json={"error": "x" * 1000})) == ('{"error":"' + "x" * 1000)[:300]
