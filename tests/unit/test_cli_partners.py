"""`berdaya partner`: its topics named and made as the services make theirs, what it shows a partner's engineers is
what the cluster grants, and what others wrote (the registry's reply, an id as typed, a name on the cluster) is shown
as text, never read as markup. No Kafka here: the cluster's users and ACLs are a fake's."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner, Result

from berdaya import cli, cli_partners, partners
from shared.contracts.topics import PUBLIC_BUSINESS, PUBLIC_PLEDGE
from shared.messaging.acl import Grant, partner_grants, partner_links
from shared.messaging.kafka import KafkaAccess

ADMIN = KafkaAccess("127.0.0.1:1", "admin", "admin-password")


class FakeSecurity:
    """The cluster's SCRAM users and ALLOW ACLs, as `KafkaSecurity` tells them; one cluster per test."""

    users_: set[str]
    acls: dict[str, set[Grant]]

    def __init__(self, admin: KafkaAccess) -> None:
        pass

    def users(self) -> list[str]:
        return sorted(self.users_)

    def set_password(self, user: str, password: str) -> None:
        self.users_.add(user)

    def remove_user(self, user: str) -> bool:
        found = user in self.users_
        self.users_.discard(user)
        return found

    def grants(self, user: str | None = None) -> dict[str, list[Grant]]:
        return {u: sorted(g) for u, g in sorted(self.acls.items()) if g and (user is None or u == user)}

    def grant(self, user: str, grants) -> None:  # noqa: ANN001
        self.acls.setdefault(user, set()).update(grants)

    def revoke(self, user: str, grants=None) -> int:  # noqa: ANN001
        held = self.acls.setdefault(user, set())
        going = set(held) if grants is None else held & set(grants)
        held -= going
        return len(going)


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> type[FakeSecurity]:
    monkeypatch.setattr(FakeSecurity, "users_", set(), raising=False)
    monkeypatch.setattr(FakeSecurity, "acls", {}, raising=False)
    monkeypatch.setattr(partners, "KafkaSecurity", FakeSecurity)
    monkeypatch.setattr(partners, "enforce_compaction", lambda kafka, specs: [])  # topics' settings: nothing to do
    monkeypatch.setattr(partners, "outcomes_unread", lambda admin, partner_id, namespace: 0)  # funding read them all
    return FakeSecurity


@pytest.fixture
def screen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> io.StringIO:
    """What `berdaya partner` prints, wide enough that nothing is folded; the deployment's settings are the
    defaults unless a test sets them, and the stack reaches nothing."""
    out = io.StringIO()
    monkeypatch.setattr(cli_partners, "console", Console(file=out, width=400))
    monkeypatch.setenv("BERDAYA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    for name in ("BERDAYA_TOPIC_NAMESPACE", "BERDAYA_TOPIC_PARTITIONS", "BERDAYA_TOPIC_REPLICATION_FACTOR"):
        monkeypatch.delenv(name, raising=False)
    return out


class Stack:
    def url(self, spec) -> str:  # noqa: ANN001
        return "http://registry.test"


@pytest.fixture
def context(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_partners, "_context", lambda: (Stack(), ADMIN, lambda role, subject: "token"))


def berdaya_partner(*args: str) -> Result:
    return CliRunner().invoke(cli.app, ["partner", *args])


def recording_add(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """`partners.add` as the command calls it: what it was asked for, nothing done."""
    calls: list[dict] = []

    async def add(admin: KafkaAccess, partner_id: str, **asked) -> partners.PartnerAccess:  # noqa: ANN003
        calls.append(asked)
        return partners.access_of(admin, partner_id, asked.get("namespace", ""), "pw",
                                  partner_grants(partner_id, asked.get("namespace", "")))  # fmt: skip

    monkeypatch.setattr(partners, "add", add)
    return calls


# ---------------------------------------------------------------------------------------------------------------
# Topics named and made as the services name and make theirs
# ---------------------------------------------------------------------------------------------------------------


def test_partner_add_makes_topics_in_the_deployment_s_namespace_with_its_partitions_and_replication_factor(
        screen: io.StringIO, context: None, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("BERDAYA_TOPIC_NAMESPACE", "kupang")
    monkeypatch.setenv("BERDAYA_TOPIC_PARTITIONS", "12")
    monkeypatch.setenv("BERDAYA_TOPIC_REPLICATION_FACTOR", "3")
    calls = recording_add(monkeypatch)
    result = berdaya_partner("add", "bri", "--name", "Bank Rakyat Indonesia")
    assert result.exit_code == 0, screen.getvalue()
    assert len(calls) == 1
    assert (calls[0]["namespace"], calls[0]["partitions"], calls[0]["replication_factor"]) == ("kupang", 12, 3)
    assert "kupang.partner-bri" in screen.getvalue()


def test_partner_add_without_those_settings_uses_the_services_defaults(
        screen: io.StringIO, context: None, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("TOPIC_NAMESPACE", "other")  # not a name the services read
    monkeypatch.setenv("TOPIC_REPLICATION_FACTOR", "7")
    calls = recording_add(monkeypatch)
    assert berdaya_partner("add", "bri", "--name", "BRI").exit_code == 0, screen.getvalue()
    assert (calls[0]["namespace"], calls[0]["partitions"], calls[0]["replication_factor"]) == ("", 6, 1)


@pytest.mark.parametrize(("variable", "value"), [
    ("BERDAYA_TOPIC_REPLICATION_FACTOR", "0"),
    ("BERDAYA_TOPIC_REPLICATION_FACTOR", "three"),
    ("BERDAYA_TOPIC_REPLICATION_FACTOR", ""),
    ("BERDAYA_TOPIC_PARTITIONS", "-1"),
    ("BERDAYA_TOPIC_NAMESPACE", "kupang.partner-bri"),  # a dot would let one namespace's names pass for another's
    ("BERDAYA_TOPIC_NAMESPACE", "Kupang"),
    ("BERDAYA_TOPIC_NAMESPACE", " kupang"),
    ("BERDAYA_TOPIC_NAMESPACE", "[bold]x[/bold]"),
    ("BERDAYA_TOPIC_NAMESPACE", "partner-bri"),  # its groups would be those of partner bri of no namespace
])  # fmt: skip
@pytest.mark.parametrize("command", [["add", "bri", "--name", "BRI"], ["rotate", "bri"], ["revoke", "bri", "--yes"],
                                     ["list"]])  # fmt: skip
def test_a_bad_topic_setting_is_refused_naming_the_variable_before_anything_is_done(
        variable: str, value: str, command: list[str], screen: io.StringIO, context: None, cluster: type[FakeSecurity],
        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    cluster.users_.add("partner-bri")
    monkeypatch.setenv(variable, value)
    calls = recording_add(monkeypatch)
    result = berdaya_partner(*command)
    said = screen.getvalue()
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), said
    assert said.startswith(f"error: {variable}=") and "The services read the same setting" in said
    assert value in said  # as it was typed, not read as markup
    assert calls == [] and cluster.users_ == {"partner-bri"}


@pytest.mark.parametrize("command", [["rotate", "bri"], ["revoke", "bri", "--yes"], ["list"]])
def test_rotate_revoke_and_list_look_in_the_deployment_s_namespace(
        command: list[str], screen: io.StringIO, context: None, cluster: type[FakeSecurity],
        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("BERDAYA_TOPIC_NAMESPACE", "kupang")
    monkeypatch.setattr(cli_partners, "_registry_call", lambda *a, **k: lambda partner_id: None)
    cluster.users_.update({"partner-bri", "kupang.partner-bri"})
    cluster.acls.update({"partner-bri": set(partner_grants("bri")),
                         "kupang.partner-bri": set(partner_grants("bri", "kupang"))})  # fmt: skip
    result = berdaya_partner(*command)
    assert result.exit_code == 0, screen.getvalue()
    said = screen.getvalue()
    if command[0] == "revoke":
        assert cluster.users_ == {"partner-bri"} and cluster.acls["partner-bri"]  # the other deployment's is kept
        assert not cluster.acls["kupang.partner-bri"]
    elif command[0] == "rotate":
        assert "kupang.partner-bri" in said and "kupang.public.registry.business.v1" in said
    else:
        assert "kupang.public." in said and "READ topic public." not in said


def test_a_partner_s_topics_the_cluster_refuses_to_make_are_told_with_the_settings_they_were_made_with(
        cluster: type[FakeSecurity], monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    async def refused(kafka: KafkaAccess, specs: list) -> None:
        raise RuntimeError("could not create topic partner.bri.referral.v1: error 38 Replication factor: 3 larger "
                           "than available brokers: 1.")  # fmt: skip

    monkeypatch.setattr(partners, "ensure_topics", refused)
    with pytest.raises(partners.PartnerRefused, match="replication factor 3: BERDAYA_TOPIC_PARTITIONS and "
                                                      "BERDAYA_TOPIC_REPLICATION_FACTOR"):  # fmt: skip
        asyncio.run(partners.add(ADMIN, "bri", partitions=6, replication_factor=3))
    assert cluster.users_ == set()  # no user made for a partner without topics


async def _topics_made(kafka: KafkaAccess, specs: list) -> None:
    pass


def test_a_partner_may_read_nothing_until_the_registry_has_its_record_and_the_services_may_write_for_it_before(
        cluster: type[FakeSecurity], monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    # Admitted again, the registry answers once the withdrawals made meanwhile are on the partner's topic, written
    # with the registry's grant: a partner able to read before that answer could read a referral without them.
    monkeypatch.setattr(partners, "ensure_topics", _topics_made)
    seen: list[tuple[set[str], dict]] = []
    asyncio.run(partners.add(ADMIN, "bri", register=lambda p: seen.append((set(cluster.users_), cluster(ADMIN).grants()))))
    [(users, grants)] = seen
    assert "partner-bri" not in users and "partner-bri" not in grants
    assert all(set(links) <= set(grants[user]) for user, links in partner_links("bri").items())
    assert "partner-bri" in cluster.users_ and cluster(ADMIN).grants("partner-bri")


def test_a_registry_that_refuses_the_partner_leaves_it_no_user_no_grant_and_the_next_add_shows_its_password(
        cluster: type[FakeSecurity], monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(partners, "ensure_topics", _topics_made)

    def refused(partner_id: str) -> None:
        raise partners.PartnerRefused("the registry refused (422): name too short")

    with pytest.raises(partners.PartnerRefused, match="name too short"):
        asyncio.run(partners.add(ADMIN, "bri", register=refused))
    assert cluster.users_ == set() and not cluster(ADMIN).grants("partner-bri")
    again = asyncio.run(partners.add(ADMIN, "bri", register=lambda p: None))
    assert again.password and "partner-bri" in cluster.users_


def test_adding_a_partner_again_replaces_the_group_prefix_of_its_bare_id_keeping_its_password_and_topics(
        cluster: type[FakeSecurity], monkeypatch: pytest.MonkeyPatch, screen: io.StringIO,
        context: None) -> None:  # fmt: skip
    # Given before its groups had to start with its user's name: `bri.` also reaches the groups of a deployment whose
    # namespace is bri.
    monkeypatch.setattr(partners, "ensure_topics", _topics_made)
    cluster.users_.add("partner-bri")
    old = Grant("group", "bri.", "READ", prefixed=True)
    given = {*partner_grants("bri", "", [PUBLIC_PLEDGE]), old} - {Grant("group", "partner-bri.", "READ", True)}
    cluster.acls["partner-bri"] = set(given)
    assert berdaya_partner("list").exit_code == 0
    assert "bri.* is the old form of its groups: run `berdaya partner add bri --name ...` again" in screen.getvalue()
    again = asyncio.run(partners.add(ADMIN, "bri", register=lambda p: None))
    assert old not in cluster(ADMIN).grants("partner-bri")["partner-bri"]
    assert again.groups == ["partner-bri.*"] and again.password is None
    # Run again to bring it up to date, the add keeps the public topics it was given rather than give it all.
    assert again.reads == [PUBLIC_PLEDGE, "partner.bri.referral.v1"]
    screen.truncate(0)
    assert berdaya_partner("list").exit_code == 0
    assert "partner-bri." in screen.getvalue() and "old form" not in screen.getvalue()


def test_adding_again_a_partner_whose_user_lost_its_grants_asks_for_its_topics_and_does_nothing(
        cluster: type[FakeSecurity], monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    # A revoke that stopped after taking the grants, before the user: every public topic would be a guess.
    made: list = []

    async def topics_made(admin: KafkaAccess, specs: list) -> None:
        made.append(specs)

    monkeypatch.setattr(partners, "ensure_topics", topics_made)
    cluster.users_.add("partner-bri")
    with pytest.raises(partners.PartnerRefused, match="no grant to read a public topic.*--topics"):
        asyncio.run(partners.add(ADMIN, "bri", register=lambda p: made.append(p)))
    assert made == [] and cluster(ADMIN).grants() == {}
    given = asyncio.run(partners.add(ADMIN, "bri", register=lambda p: None, topics=[PUBLIC_PLEDGE]))
    assert given.reads == [PUBLIC_PLEDGE, "partner.bri.referral.v1"]


@pytest.mark.parametrize(("detail", "exit_code"), [("no partner bri", 0), ("Not Found", 1)])
def test_revoking_a_partner_the_registry_never_had_finishes_but_another_server_s_404_does_not(
        detail: str, exit_code: int, screen: io.StringIO, context: None, cluster: type[FakeSecurity],
        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    cluster.acls.update({user: set(links) for user, links in partner_links("bri").items()})

    def request(method: str, url: str, **kwargs) -> httpx.Response:  # noqa: ANN003
        return httpx.Response(404, json={"type": "about:blank", "status": 404, "detail": detail})

    monkeypatch.setattr(cli_partners.httpx, "request", request)
    result = berdaya_partner("revoke", "bri", "--yes")
    assert result.exit_code == exit_code, screen.getvalue()
    # The services' links go only once the registry has nothing left to send the partner.
    assert bool(cluster(ADMIN).grants()) == (exit_code == 1)


@pytest.mark.parametrize(("tls", "protocol"), [(True, "SASL_SSL"), (False, "SASL_PLAINTEXT")])
def test_a_partner_is_told_to_connect_over_tls_when_the_cluster_is_reached_over_tls(
        tls: bool, protocol: str, cluster: type[FakeSecurity]) -> None:  # fmt: skip
    cluster.users_.add("partner-bri")
    admin = KafkaAccess("kafka.kupangkota.go.id:9093", "admin", "admin-password", tls=tls)
    access = partners.rotate(admin, "bri")
    assert f"security.protocol={protocol}\n" in access.client_properties() and access.protocol == protocol


@pytest.mark.parametrize("namespace", ["a.b", "A", "x y", "ns\n", "[x]", "public"])
def test_the_library_refuses_a_namespace_the_services_would_refuse(namespace: str, cluster: type[FakeSecurity]) -> None:
    with pytest.raises(partners.PartnerRefused, match="BERDAYA_TOPIC_NAMESPACE"):
        partners.rotate(ADMIN, "bri", namespace=namespace)
    with pytest.raises(partners.PartnerRefused, match="BERDAYA_TOPIC_NAMESPACE"):
        partners.listing(ADMIN, namespace=namespace)


# ---------------------------------------------------------------------------------------------------------------
# What a partner may read and write is what the cluster grants it
# ---------------------------------------------------------------------------------------------------------------


def test_a_rotated_partner_is_shown_the_public_topics_it_was_given_not_all_of_them(cluster: type[FakeSecurity]) -> None:
    cluster.users_.add("partner-bri")
    cluster.acls["partner-bri"] = set(partner_grants("bri", "", [PUBLIC_PLEDGE]))
    access = partners.rotate(ADMIN, "bri")
    assert access.password
    assert access.reads == [PUBLIC_PLEDGE, "partner.bri.referral.v1"]
    assert access.writes == ["partner.bri.outcomes.v1"] and access.groups == ["partner-bri.*"]


def test_a_rotated_partner_whose_grants_went_is_shown_that_it_may_do_nothing(cluster: type[FakeSecurity]) -> None:
    cluster.users_.add("partner-bri")
    access = partners.rotate(ADMIN, "bri")
    assert (access.reads, access.writes, access.groups) == ([], [], [])


def test_a_grant_beyond_what_berdaya_gives_is_shown_too(cluster: type[FakeSecurity]) -> None:
    # Given by hand, or to every user: the partner may read these, so its engineers (and whoever checks) see them.
    cluster.users_.add("kupang.partner-bri")
    cluster.acls["kupang.partner-bri"] = {*partner_grants("bri", "kupang", [PUBLIC_PLEDGE]),
                                          Grant("topic", "kupang.registry.business.v1", "READ"),
                                          Grant("group", "kupang.dashboard", "ALL")}  # fmt: skip
    cluster.acls["*"] = {Grant("topic", "kupang.public.", "READ", prefixed=True)}
    access = partners.rotate(ADMIN, "bri", namespace="kupang")
    assert access.reads == [f"kupang.{t}" for t in partners.PUBLIC_TOPICS] + [
        "kupang.partner.bri.referral.v1", "kupang.public.*", "kupang.registry.business.v1"]
    assert access.groups == ["kupang.dashboard", "kupang.partner-bri.*"]


def test_partner_rotate_on_the_screen_lists_what_the_partner_may_read(
        screen: io.StringIO, context: None, cluster: type[FakeSecurity]) -> None:  # fmt: skip
    cluster.users_.add("partner-bri")
    cluster.acls["partner-bri"] = set(partner_grants("bri", "", [PUBLIC_PLEDGE]))
    result = berdaya_partner("rotate", "bri")
    assert result.exit_code == 0, screen.getvalue()
    said = screen.getvalue()
    assert PUBLIC_PLEDGE in said and "partner.bri.referral.v1" in said
    assert PUBLIC_BUSINESS not in said and "public.*" not in said


def test_adding_a_partner_that_has_a_user_with_properties_fails_naming_rotate_and_leaves_an_older_file_alone(
        screen: io.StringIO, context: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # fmt: skip
    # Its password is not kept, so there is nothing to write: a script sending the file on would send an old one.
    async def add_again(admin: KafkaAccess, partner_id: str, **asked) -> partners.PartnerAccess:  # noqa: ANN003
        return partners.access_of(admin, partner_id, "", None, partner_grants(partner_id))

    monkeypatch.setattr(partners, "add", add_again)
    older = tmp_path / "bri.properties"
    older.write_text("sasl.password=older\n")
    result = berdaya_partner("add", "bri", "--name", "BRI", "--properties", str(older))
    said = screen.getvalue()
    assert result.exit_code == 1, said
    assert f"{older} was not written: partner bri already had a Kafka user" in said
    assert f"berdaya partner rotate bri --properties {older}" in said
    assert older.read_text() == "sasl.password=older\n"


def test_a_partner_added_with_every_public_topic_is_told_of_those_published_later(
        cluster: type[FakeSecurity], monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    async def made(kafka: KafkaAccess, specs: list) -> None:
        pass

    monkeypatch.setattr(partners, "ensure_topics", made)
    access = asyncio.run(partners.add(ADMIN, "bri"))
    assert access.reads[-1] == "public.*" and PUBLIC_BUSINESS in access.reads


# ---------------------------------------------------------------------------------------------------------------
# What others wrote is shown as text
# ---------------------------------------------------------------------------------------------------------------


def test_an_error_quoting_what_looks_like_markup_is_printed_as_it_is(screen: io.StringIO) -> None:
    with pytest.raises(typer.Exit):
        cli_partners._fail("the registry refused (409): [/x] taken by [bold]Bank[/bold] \\[y]")
    assert screen.getvalue() == "error: the registry refused (409): [/x] taken by [bold]Bank[/bold] \\[y]\n"


def test_a_registry_reply_that_looks_like_markup_is_told_as_it_came(
        screen: io.StringIO, context: None, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    detail = "partner [/x] exists as [bold]Bank NTT[/bold]; [link=http://evil.example]click[/link]"

    def request(method: str, url: str, **kwargs) -> httpx.Response:  # noqa: ANN003
        return httpx.Response(409, json={"type": "about:blank", "title": "Conflict", "status": 409, "detail": detail})

    async def add(admin: KafkaAccess, partner_id: str, *, register: Callable[[str], None], **_: object) -> None:
        register(partner_id)

    monkeypatch.setattr(cli_partners.httpx, "request", request)
    monkeypatch.setattr(partners, "add", add)
    result = berdaya_partner("add", "bank-ntt", "--name", "Bank NTT")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # told, not a traceback
    assert screen.getvalue() == f"error: the registry refused (409): {detail}\n"


def test_a_partner_id_typed_with_markup_is_refused_as_it_was_typed(screen: io.StringIO, context: None) -> None:
    result = berdaya_partner("add", "[bold]bri[/bold]", "--name", "BRI")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "partner id '[bold]bri[/bold]' must be 2 to 40" in screen.getvalue()


def test_partner_list_shows_names_and_grants_made_on_the_cluster_as_they_are(
        screen: io.StringIO, context: None, cluster: type[FakeSecurity]) -> None:  # fmt: skip
    cluster.users_.update({"partner-[/x]", "partner-bri"})
    cluster.acls["partner-bri"] = {Grant("group", "[bold]dash[/bold]", "READ")}
    result = berdaya_partner("list")
    assert result.exit_code == 0, result.exception
    said = screen.getvalue()
    assert "[/x]" in said and "READ group [bold]dash[/bold]" in said and "none" in said
