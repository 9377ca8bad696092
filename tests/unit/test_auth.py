"""Tests bearer tokens: minting and verifying JWTs, and what the roles they carry allow."""

from __future__ import annotations

import uuid
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


def test_a_token_from_a_machine_whose_clock_is_seconds_off_is_taken_and_one_minutes_off_is_not() -> None:
    tokens = TokenService(SECRET)
    now = datetime.now(UTC)

    def issued(at: datetime, ttl: timedelta = timedelta(hours=8)) -> str:
        claims = {"sub": "petugas-oebobo-01", "roles": ["officer"], "iss": "berdaya", "iat": at, "exp": at + ttl}
        return jwt.encode(claims, SECRET, algorithm="HS256")

    assert tokens.verify(issued(now + timedelta(seconds=20))).subject == "petugas-oebobo-01"  # minted "in the future"
    assert tokens.verify(issued(now - timedelta(minutes=1), ttl=timedelta(seconds=40))).subject  # expired 20 s ago
    with pytest.raises(InvalidToken, match="not yet valid"):
        tokens.verify(issued(now + timedelta(minutes=5)))
    with pytest.raises(InvalidToken, match="expired"):
        tokens.verify(issued(now - timedelta(hours=8, minutes=2)))


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


def test_an_admin_has_every_role_but_may_not_see_personal_data() -> None:
    admin = Principal("a", frozenset({"admin"}))
    assert admin.has_any({"trainer"})
    assert not admin.may_see_personal_data


def test_only_an_officer_may_see_personal_data() -> None:
    assert Principal("o", frozenset({"officer"})).may_see_personal_data
    assert not Principal("v", frozenset({"viewer"})).may_see_personal_data
    assert not Principal("s", frozenset({"sponsor", "trainer"})).may_see_personal_data
    assert not Principal("op", frozenset({"operator"})).may_see_personal_data


def test_a_principal_without_a_wanted_role_does_not_have_it() -> None:
    assert not Principal("t", frozenset({"trainer"})).has_any({"officer", "operator"})
    assert Principal("t", frozenset({"trainer"})).has_any({"officer", "trainer"})


# ---------------------------------------------------------------------------------------------------------------
# What a token acts for: a sponsor, kecamatan
# ---------------------------------------------------------------------------------------------------------------

SPONSOR = uuid.UUID("00000000-0000-4000-8000-00000000b0b0")


def test_a_sponsor_token_verifies_to_the_sponsor_it_names() -> None:
    tokens = TokenService(SECRET)

    principal = tokens.verify(tokens.mint("bank-ntt", ["sponsor"], sponsor_id=SPONSOR))

    assert principal.sponsor_id == SPONSOR
    assert principal.acts_for_sponsor(SPONSOR)
    assert not principal.acts_for_sponsor(uuid.uuid4())


def test_a_sponsor_token_that_names_no_sponsor_is_refused_when_minting() -> None:
    with pytest.raises(ValueError, match="must name the sponsor"):
        TokenService(SECRET).mint("bank-ntt", ["sponsor"])


def test_a_token_whose_sponsor_is_not_an_id_is_refused() -> None:
    claims = {"sub": "x", "iss": "berdaya", "exp": datetime.now(UTC) + timedelta(hours=1), "roles": ["sponsor"],
              "sponsor": "bank-ntt"}  # fmt: skip

    with pytest.raises(InvalidToken, match="sponsor must be a sponsor id"):
        TokenService(SECRET).verify(jwt.encode(claims, SECRET, algorithm="HS256"))


def test_an_officer_token_naming_kecamatan_acts_only_in_them() -> None:
    tokens = TokenService(SECRET)

    principal = tokens.verify(tokens.mint("petugas-oebobo-01", ["officer"], kecamatan=["53.71.04", "53.71.04"]))

    assert principal.kecamatan_codes == frozenset({"53.71.04"})
    assert principal.acts_in_kecamatan("53.71.04")
    assert not principal.acts_in_kecamatan("53.71.01")


def test_an_officer_token_naming_no_kecamatan_acts_in_the_whole_city() -> None:
    assert Principal("o", frozenset({"officer"})).acts_in_kecamatan("53.71.01")


def test_an_admin_acts_for_every_sponsor_and_in_every_kecamatan() -> None:
    admin = Principal("a", frozenset({"admin"}), kecamatan_codes=frozenset({"53.71.04"}))
    assert admin.acts_for_sponsor(SPONSOR)
    assert admin.acts_in_kecamatan("53.71.01")


def test_a_token_whose_kecamatan_are_not_a_list_of_strings_is_refused() -> None:
    claims = {"sub": "x", "iss": "berdaya", "exp": datetime.now(UTC) + timedelta(hours=1), "roles": ["officer"],
              "kecamatan": "53.71.04"}  # fmt: skip

    with pytest.raises(InvalidToken, match="kecamatan must be a list"):
        TokenService(SECRET).verify(jwt.encode(claims, SECRET, algorithm="HS256"))


def test_a_principal_is_named_by_its_subject_in_events_and_the_audit_trail() -> None:
    assert Principal("petugas-oebobo-01", frozenset({"officer"})).actor == "petugas-oebobo-01"


@pytest.mark.parametrize("subject", ["", "   "])
def test_a_token_for_no_one_is_not_minted(subject: str) -> None:
    with pytest.raises(ValueError, match="--subject"):
        TokenService(SECRET).mint(subject, ["trainer"])


@pytest.mark.parametrize("code", ["", "5371040", "Oebobo", "53.71.4"])
def test_an_officer_token_naming_a_kecamatan_by_anything_but_its_kemendagri_code_is_not_minted(code: str) -> None:
    with pytest.raises(ValueError, match="53.71.04"):
        TokenService(SECRET).mint("petugas-oebobo-01", ["officer"], kecamatan=[code])


def test_a_token_naming_an_empty_kecamatan_is_refused_rather_than_acting_on_what_no_kecamatan_holds() -> None:
    now = datetime.now(UTC)
    claims = {"sub": "petugas", "roles": ["officer"], "iss": "berdaya", "iat": now, "exp": now + timedelta(hours=1),
              "kecamatan": [""]}  # fmt: skip

    with pytest.raises(InvalidToken, match="kecamatan"):
        TokenService(SECRET).verify(jwt.encode(claims, SECRET, algorithm="HS256"))


def test_a_kecamatan_code_written_in_other_digits_is_not_minted() -> None:
    with pytest.raises(ValueError, match="53.71.04"):
        TokenService(SECRET).mint("petugas-oebobo-01", ["officer"], kecamatan=["٥٣.٧١.٠٤"])
