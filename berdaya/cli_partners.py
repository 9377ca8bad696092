"""`berdaya partner`: admit, list, re-key and revoke the partner systems that read Berdaya's public topics."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn

import httpx
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from berdaya import partners
from berdaya.partners import PartnerAccess, PartnerRefused, Topics
from berdaya.problems import problem_detail
from berdaya.stack.secret_files import write_secret
from shared.contracts.topics import namespaced

console = Console()
partner = typer.Typer(help="Partner systems: their Kafka users, what they may read and write.", no_args_is_help=True)


def _context():  # noqa: ANN202 - (LocalStack, admin KafkaAccess, token maker)
    from berdaya.cli import _stack, _token

    stack = _stack()
    return stack, stack.kafka_admin, _token


def _topics() -> Topics:
    """The deployment's topic namespace, partitions and replication factor, from the same settings as its services'."""
    try:
        return partners.deployment_topics()
    except PartnerRefused as exc:
        _fail(str(exc))


def _fail(message: str) -> NoReturn:
    # Plain text: the message quotes others (the registry's reply, an id as typed, a setting), never markup.
    console.print(Text.assemble(("error:", "red"), " ", message), soft_wrap=True)
    raise typer.Exit(1)


def confirmed(question: str) -> bool:
    """The operator's yes; with nobody to ask (a script, CI), a refusal that says how to go on, rather than a
    prompt that hangs on an open pipe or ends in a bare "Aborted!"."""
    if not sys.stdin.isatty():
        _fail(f"{question} Nobody is at a terminal to answer: pass --yes to go ahead without asking")
    return typer.confirm(question)


def _registry_call(method: str, path: Callable[[str], str], body: Callable[[str], dict] | None = None,
                   absent_is_done: bool = False):  # noqa: ANN202  # fmt: skip
    """A call to the registry's partner routes as an admin, failing with what the registry said. `absent_is_done`:
    a 404 (the registry never had the partner) is what the call was for."""
    stack, _, token = _context()
    from berdaya.stack.local import service

    def call(partner_id: str) -> None:
        url = stack.url(service("registry")) + path(partner_id)
        try:
            response = httpx.request(method, url, json=body(partner_id) if body else None, timeout=30,
                                     headers={"Authorization": f"Bearer {token('admin', 'berdaya-partner-cli')}"})  # fmt: skip
        except httpx.HTTPError as exc:
            raise PartnerRefused(f"the registry at {url} did not answer ({exc}); start it (`berdaya up`) and run this "
                                 "command again: every step before was kept and is not repeated") from exc  # fmt: skip
        # The registry's own 404 for this partner; not another server's 404 for a path it does not have.
        if absent_is_done and response.status_code == 404 and problem_detail(response) == f"no partner {partner_id}":
            return
        if response.status_code >= 400:
            raise PartnerRefused(f"the registry refused ({response.status_code}): {problem_detail(response)}")

    return call


def _show(access: PartnerAccess, properties: Path | None) -> None:
    # Every value is shown as plain text: ACLs and user names on a cluster are anyone's strings, never markup.
    table = Table(title=Text(f"Partner {access.partner_id}"), show_header=False)
    table.add_row("Kafka user", Text(access.user))
    if access.password:
        shown_once = Text.assemble((access.password, "bold"), "  (shown once; Berdaya keeps only its hash)")
        table.add_row("password", shown_once)
    else:
        table.add_row("password", "unchanged (`berdaya partner rotate` makes a new one)")
    table.add_row("bootstrap servers", Text(access.bootstrap_servers))
    table.add_row("mechanism", f"{access.protocol}, SCRAM-SHA-512")
    # What its grants allow now (a pattern ending in * takes topics or groups made later too), not what it asked for.
    table.add_row("may read", Text("\n".join(access.reads) or "nothing"))
    table.add_row("may write", Text("\n".join(access.writes) or "nothing"))
    table.add_row("consumer groups", Text("\n".join(access.groups) or "none"))
    console.print(table)
    if properties and access.password:
        write_secret(properties, access.client_properties())
        readable = next((t for t in access.reads if "*" not in t), None)
        example = (f"; e.g. kcat -F {properties} -G {access.group_prefix}demo {readable} (kcat on librdkafka 2.6.1+)"
                   if readable else "")  # fmt: skip
        console.print(Text(f"Client settings written to {properties} (readable by you alone){example}"), soft_wrap=True)
    elif properties:
        # Without a password there is nothing to write; an older file there, with an older password, is left as it is
        # and must not pass for this one: a script going on to send it would send the wrong credentials.
        _fail(f"{properties} was not written: partner {access.partner_id} already had a Kafka user, whose password "
              "Berdaya does not keep (everything else above is done). To give the partner new client settings, run "
              f"`berdaya partner rotate {access.partner_id} --properties {properties}`: its old password then stops "
              "working")  # fmt: skip


Properties = Annotated[Path | None, typer.Option(help="Also write the client settings (with the password) to this file")]


@partner.command("add")
def add(
    partner_id: Annotated[str, typer.Argument(help="Short id, e.g. bri or pos-indonesia")],
    name: Annotated[str, typer.Option(help="The partner's name, as officers see it")],
    topics: Annotated[list[str] | None, typer.Option(
        help="Public topics it may read (repeat the option), or public.* for all of them, including those published "
             "later; without it, a new partner gets public.* and one added before keeps what it reads")] = None,
    properties: Properties = None,
) -> None:
    """Admit a partner: its referral and outcomes topics, a Kafka user, its grants, and the registry's record, so
    owners may consent to referrals to it."""
    deployment = _topics()
    _, admin, _ = _context()
    register = _registry_call("PUT", lambda p: f"/partners/{p}", lambda p: {"id": p, "name": name})
    try:
        access = asyncio.run(partners.add(admin, partner_id, namespace=deployment.namespace,
                                          partitions=deployment.partitions,
                                          replication_factor=deployment.replication_factor,
                                          register=register, topics=topics))  # fmt: skip
    except PartnerRefused as exc:
        _fail(str(exc))
    _show(access, properties)


@partner.command("rotate")
def rotate(partner_id: Annotated[str, typer.Argument()], properties: Properties = None) -> None:
    """A new password for the partner's Kafka user; the old one stops working for new connections."""
    namespace = _topics().namespace
    _, admin, _ = _context()
    try:
        access = partners.rotate(admin, partner_id, namespace=namespace)
    except PartnerRefused as exc:
        _fail(str(exc))
    _show(access, properties)


@partner.command("revoke")
def revoke(
    partner_id: Annotated[str, typer.Argument()],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Cut a partner off: its grants and user go, no more referrals are sent to it. Its topics are kept."""
    namespace = _topics().namespace
    _, admin, _ = _context()
    try:
        has_user, grants = partners.on_cluster(admin, partner_id, namespace=namespace)
    except PartnerRefused as exc:
        _fail(str(exc))
    if not has_user and not grants:
        # A revoke run in the wrong namespace would cut nothing off and say it had: refused, naming where it is.
        if elsewhere := [n for n in partners.namespaces_of(admin, partner_id) if n != namespace]:
            _fail(f"partner {partner_id} has no Kafka user in topic namespace {namespace or '(none)'}, but has one in "
                  f"{', '.join(n or '(none)' for n in elsewhere)}: run this again with BERDAYA_TOPIC_NAMESPACE set "
                  "to the one to revoke. Nothing was revoked")  # fmt: skip
        # Nothing on Kafka to lose, so nothing to confirm: an unknown id, or a revoke the registry missed last time.
        console.print(f"Partner {partner_id} has no Kafka user or grants here; asking the registry to stop referrals "
                      "to it.", soft_wrap=True)  # fmt: skip
    elif not yes and not confirmed(f"Revoke partner {partner_id}? Its Kafka user and {grants} grant(s) go, and its "
                                   "systems lose access at once."):  # fmt: skip
        raise typer.Exit(1)
    try:
        removed = partners.revoke(admin, partner_id, namespace=namespace,
                                  unregister=_registry_call("POST", lambda p: f"/partners/{p}/revoke", absent_is_done=True))  # fmt: skip
    except PartnerRefused as exc:
        _fail(str(exc))
    console.print(f"Partner {partner_id} revoked: {removed} grant(s) removed, "
                  + ("its Kafka user deleted." if has_user else "and it had no Kafka user here."))


@partner.command("list")
def list_() -> None:
    """Every partner with a Kafka user, and what it may touch."""
    namespace = _topics().namespace
    _, admin, _ = _context()
    try:
        found = partners.listing(admin, namespace=namespace)
    except PartnerRefused as exc:
        _fail(str(exc))
    table = Table(title="Partners on the cluster")
    for column in ("partner", "grants"):
        table.add_column(column, overflow="fold")
    for partner_id, grants in found.items():
        # A user's name and its ACLs' names are whatever was made on the cluster: shown as text, never as markup.
        shown = Text("\n".join(map(str, grants))) if grants else Text("none", style="red")
        old_groups = namespaced(f"{partner_id}.", namespace)
        if any(g.resource == "group" and g.prefixed and g.name == old_groups for g in grants):
            # Given before groups had to start with the partner's user: without a namespace it also reaches the
            # groups of a deployment whose namespace is the partner's id.
            shown.append(f"\n{partner_id}.* is the old form of its groups: run `berdaya partner add {partner_id} "
                         "--name ...` again, which replaces it", style="red")  # fmt: skip
        table.add_row(Text(partner_id), shown)
    console.print(table)
