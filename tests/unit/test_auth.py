"""Tests bearer tokens: minting and verifying JWTs, and what the roles they carry allow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from shared.auth import InvalidToken, Principal, TokenService

SECRET = "kupang-unit-test-signing-secret-of-32+bytes"
OTHER_SECRET = "another-unit-test-signing-secret-32+bytes!"


def test_a_minted_token_verifies_to_its_subject_and_roles() -> None:
    tokens = TokenService(SECRET)

    principal = tokens.verify(tokens.mint("petugas-oebobo-01", ["officer", "viewer"]))

    assert principal == Principal("petugas-oebobo-01", frozenset({"officer", "viewer"}))


def test_an_expired_token_is_refused_saying_it_expired() -> None:
    tokens = TokenService(SECRET)
    token = tokens.mint("petugas-oebobo-01", ["officer"], ttl=timedelta(minutes=-5))

    with pytest.raises(InvalidToken, match="expired"):
        tokens.verify(token)


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = TokenService(OTHER_SECRET).mint("petugas-oebobo-01", ["admin"])

    with pytest.raises(InvalidToken, match="invalid token"):
        TokenService(SECRET).verify(token)


def test_a_token_from_another_issuer_is_refused() -> None:
    token = TokenService(SECRET, issuer="someone-else").mint("petugas-oebobo-01", ["officer"])

    with pytest.raises(InvalidToken):
        TokenService(SECRET).verify(token)


def test_an_unknown_role_is_refused_when_minting() -> None:
    with pytest.raises(ValueError, match=r"unknown role\(s\) \['walikota'\]"):
        TokenService(SECRET).mint("petugas-oebobo-01", ["officer", "walikota"])


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c"])
def test_something_that_is_not_a_jwt_is_refused(token: str) -> None:
    with pytest.raises(InvalidToken):
        TokenService(SECRET).verify(token)


def test_a_token_without_a_subject_is_refused() -> None:
    now = datetime.now(UTC)
    token = jwt.encode({"iss": "berdaya", "exp": now + timedelta(hours=1), "roles": ["officer"]}, SECRET, algorithm="HS256")

    with pytest.raises(InvalidToken):
        TokenService(SECRET).verify(token)


def test_a_token_whose_roles_are_not_a_list_of_strings_is_refused() -> None:
    now = datetime.now(UTC)
    claims = {"sub": "x", "iss": "berdaya", "exp": now + timedelta(hours=1), "roles": "admin"}

    with pytest.raises(InvalidToken, match="roles must be a list of strings"):
        TokenService(SECRET).verify(jwt.encode(claims, SECRET, algorithm="HS256"))


def test_roles_the_service_does_not_know_are_dropped_from_a_verified_token() -> None:
    now = datetime.now(UTC)
    claims = {"sub": "x", "iss": "berdaya", "exp": now + timedelta(hours=1), "roles": ["viewer", "superuser"]}

    principal = TokenService(SECRET).verify(jwt.encode(claims, SECRET, algorithm="HS256"))

    assert principal.roles == frozenset({"viewer"})


def test_a_token_signed_with_the_none_algorithm_is_refused() -> None:
    now = datetime.now(UTC)
    claims = {"sub": "x", "iss": "berdaya", "exp": now + timedelta(hours=1), "roles": ["admin"]}

    with pytest.raises(InvalidToken):
        TokenService(SECRET).verify(jwt.encode(claims, None, algorithm="none"))


def test_an_admin_has_every_role_and_may_see_personal_data() -> None:
    admin = Principal("a", frozenset({"admin"}))
    assert admin.has_any({"trainer"})
    assert admin.may_see_personal_data


def test_an_officer_may_see_personal_data_but_a_viewer_or_sponsor_may_not() -> None:
    assert Principal("o", frozenset({"officer"})).may_see_personal_data
    assert not Principal("v", frozenset({"viewer"})).may_see_personal_data
    assert not Principal("s", frozenset({"sponsor", "trainer"})).may_see_personal_data


def test_a_principal_without_a_wanted_role_does_not_have_it() -> None:
    assert not Principal("t", frozenset({"trainer"})).has_any({"officer", "operator"})
    assert Principal("t", frozenset({"trainer"})).has_any({"officer", "trainer"})
