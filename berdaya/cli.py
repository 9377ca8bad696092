"""`berdaya`: run the local stack, import the city's list, mint tokens and see what the system is doing."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Annotated, NoReturn

import asyncpg
import httpx
import typer
from confluent_kafka import KafkaException
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from berdaya.cli_partners import confirmed, partner
from berdaya.importer import (
    ImportRefused,
    ImportSummary,
    count_rows,
    delimiter_of,
    import_file,
    write_error_report,
)
from berdaya.stack.local import SERVICES, LocalStack, ServiceSpec, service
from berdaya.stack.postgres import database_url as database_url_of
from berdaya.stack.postgres import masked_url
from berdaya.views import VIEWS, print_coverage, wait_for_catch_up
from shared.auth import TokenService
from shared.contracts.topics import namespaced
from shared.messaging.kafka import kafka_said
from shared.messaging.replay import NothingToReplay, OffsetsKept, RebuildableView, StillRunning, rebuild, still_held
from shared.reference.wilayah import kota_kupang

app = typer.Typer(help="Berdaya: the event backbone of Kota Kupang's UMKM programme.", no_args_is_help=True)
console = Console()


def _stack() -> LocalStack:
    return LocalStack()


def _tokens() -> TokenService:
    return TokenService(_stack().secret("BERDAYA_JWT_SECRET"))


def _token(role: str = "officer", subject: str = "berdaya-cli") -> str:
    if os.environ.get("BERDAYA_TOKEN"):
        return os.environ["BERDAYA_TOKEN"]
    return _tokens().mint(subject, [role], ttl=timedelta(hours=8))


def _progress() -> Progress:
    return Progress(
        # A task is named for a file, whatever its name: plain text, never markup.
        TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
        TimeRemainingColumn(),
        console=console, transient=False,
    )  # fmt: skip


# The exit status of a command that did its part but whose work goes on without it (a rebuild still replaying or
# settling): not 0, so `berdaya replay funding-view && report` does not report on a view still being built.
NOT_YET = 3


def _error(message: str) -> None:
    # One line, whatever the terminal's width: a script reading this or a person copying it gets it whole.
    # Plain text: a message quotes what others wrote (a file's rows, a service's answer, Kafka, a dead letter), never
    # markup or emoji codes; escaping markup would still turn `:warning:` into an emoji and double a final backslash.
    console.print(Text.assemble(("error:", "red"), " ", message), soft_wrap=True)


def _fail(message: str) -> NoReturn:
    _error(message)
    raise typer.Exit(1)


def _say(message: str) -> None:
    """What the stack says as it starts or stops: it names addresses, paths and errors others chose, as plain text."""
    console.print(Text(f"  {message}"))


@app.command()
def up() -> None:
    """Start PostgreSQL, Kafka and the services in the background (idempotent)."""
    _print_urls(_up())


def _up() -> LocalStack:
    stack = _stack()
    try:
        stack.up(say=_say)
    except RuntimeError as exc:
        _fail(f"{exc}\nLogs are in {stack.base / 'logs'}; `berdaya down` stops what did start.")
    return stack


@app.command()
def down() -> None:
    """Stop the services, Kafka and PostgreSQL started by `berdaya up`."""
    _stack().down(say=_say)


@app.command()
def token(
    subject: Annotated[str, typer.Option(help="Whom the token is for (their e-mail, say): what one trainer or sponsor "
                                         "may do, Idempotency-Keys, events and the audit trail go by it")],
    role: Annotated[list[str], typer.Option("--role", "-r", help="officer, operator, sponsor, trainer, viewer, admin")] = ["officer"],  # noqa: B006
    hours: Annotated[float, typer.Option(help="Validity in hours")] = 8,
    sponsor: Annotated[uuid.UUID | None, typer.Option(help="For a sponsor token: the sponsor it acts for")] = None,
    kecamatan: Annotated[list[str], typer.Option(help="Limit an officer to these kecamatan (Kemendagri codes)")] = [],  # noqa: B006
) -> None:
    """Mint a bearer token signed with the local stack's key (or BERDAYA_JWT_SECRET)."""
    city = {k.code: k.name for k in kota_kupang().kecamatan}
    unknown = [code for code in kecamatan if code not in city]
    if unknown:  # a token for no kecamatan of the city could act nowhere, and nothing would say why
        _fail(f"kecamatan {', '.join(unknown)} are none of the city's; give their Kemendagri codes: "
              + ", ".join(f"{code} ({name})" for code, name in city.items()))
    try:
        print(_tokens().mint(subject, role, ttl=timedelta(hours=hours), sponsor_id=sponsor, kecamatan=kecamatan))
    except ValueError as exc:
        _fail(str(exc))


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV with the registry's columns")],
    url: Annotated[str, typer.Option(help="Registry base URL")] = "http://127.0.0.1:8001",
    chunk: Annotated[int, typer.Option(help="Rows per request")] = 1000,
) -> None:
    """Import the city's UMKM list. Good rows go in, bad rows are listed with line, field and reason in
    FILE.errors.csv; importing the same file again changes nothing."""
    summary = _import(file, url, chunk)
    raise typer.Exit(0 if not summary.errors else 2)


def _kept_errors(file: Path, summary: ImportSummary) -> str:
    """The rows already found wrong, written out before the import stopped, so the officer need not find them again."""
    report = file.with_suffix(".errors.csv")
    if not summary.errors:
        report.unlink(missing_ok=True)  # an earlier run's list of rows to fix would mislead
        return ""
    write_error_report(sorted(summary.errors, key=lambda e: e["line"]), report,  # type: ignore[arg-type, return-value]
                       delimiter_of(file))  # fmt: skip
    return f" The {summary.rejected_rows} row(s) found wrong so far are listed in {report}."


def _taken(summary: ImportSummary) -> str:
    """What the registry took before the import stopped, by its own reports."""
    taken = summary.registered + summary.updated + summary.unchanged
    return (f" The {taken:,} row(s) the registry took before this point are in; importing the file again after "
            "fixing it does not duplicate them." if taken else " The registry reported no row taken; importing the "
            "file again after fixing it does not duplicate any it took unreported.")  # fmt: skip


def _import(file: Path, url: str, chunk: int):  # noqa: ANN202
    total = count_rows(file)
    started = time.perf_counter()
    summary = ImportSummary()
    with _progress() as progress:
        task = progress.add_task(f"Importing {file.name}", total=total)
        try:
            import_file(file, base_url=url, token=_token(), chunk_size=chunk,
                        progress=lambda n: progress.advance(task, n), summary=summary)  # fmt: skip
        except ImportRefused as exc:
            progress.stop()
            _fail(f"{file.name}: {exc}.{_taken(summary)}{_kept_errors(file, summary)}")
        except KeyboardInterrupt:
            progress.stop()
            _error(f"{file.name}: stopped.{_taken(summary)}{_kept_errors(file, summary)}")
            raise typer.Exit(130) from None
        except httpx.HTTPStatusError as exc:
            progress.stop()
            _fail(f"the registry at {url} answered {exc.response.status_code} ({exc.response.text[:200]}); check its "
                  "log, then import again (rows already imported are recognised and not duplicated)."
                  f"{_kept_errors(file, summary)}")
        except httpx.HTTPError as exc:
            progress.stop()
            _fail(f"cannot reach the registry at {url} ({type(exc).__name__}); start it with `berdaya up`, then "
                  f"import again (rows already imported are recognised and not duplicated).{_kept_errors(file, summary)}")
    elapsed = time.perf_counter() - started
    table = Table(title=Text(f"Import of {file.name}", style="table.title"), show_header=False)
    for label, value in (("rows read", summary.received), ("registered", summary.registered),
                         ("updated", summary.updated), ("already registered, unchanged", summary.unchanged),
                         ("rows with errors", summary.rejected_rows)):  # fmt: skip
        table.add_row(label, f"{value:,}")
    table.add_row("rows per second", f"{summary.received / elapsed:,.0f}" if elapsed else "-")
    console.print(table)
    report = file.with_suffix(".errors.csv")
    if not summary.errors:
        report.unlink(missing_ok=True)  # an earlier run's list of rows to fix would mislead
    else:
        write_error_report(summary.errors, report, delimiter_of(file))
        # The file's name and the registry's reasons (which quote the rows) are plain text, never markup.
        console.print(Text.assemble((f"{summary.rejected_rows} row(s) need fixing", "yellow"),
                                    f"; each is listed in {report}. The first ones:"))  # fmt: skip
        for error in summary.errors[:5]:
            console.print(Text(f"  line {error['line']}, {error['field']}: {error['message']}"))
        console.print("Fix those rows in the file and import it again; rows already in are left as they are.")
    return summary


@app.command()
def replay(
    view: Annotated[str, typer.Argument(help="The view to rebuild: " + ", ".join(VIEWS))],
    restart: Annotated[bool, typer.Option(help="Stop and start the local service around the rebuild")] = True,
    database_url: Annotated[str | None, typer.Option(help="The service's database (default: the local stack's)")] = None,
    namespace: Annotated[str, typer.Option(help="Topic namespace of the deployment",
                                           envvar="BERDAYA_TOPIC_NAMESPACE")] = "",
) -> None:
    """Rebuild a service's view of other services' businesses by replaying their topics from the beginning: the
    service is stopped, the view and its consumers' inbox rows are emptied, their offsets forgotten, the service
    started again, and this waits until it has caught up (exit status 3 if it stops waiting first: the rebuild goes
    on). Refused, emptying nothing, when neither the view's consumer groups nor its topics are in the namespace
    given."""
    if view not in VIEWS:
        _fail(f"no view {view!r}; the views are {', '.join(VIEWS)}")
    rebuildable = VIEWS[view]
    stack = _stack()
    spec = service(rebuildable.service)
    url = database_url or database_url_of(stack.postgres_url, spec.database)
    if restart:
        _same_namespace(stack, spec, namespace)
    stopped = restart and stack.stop_service(spec)
    if stopped:
        console.print(f"  {spec.name}: stopped")
    left_stopped = f"; {spec.name} was stopped for this and is left stopped" if stopped else ""
    try:
        removed = asyncio.run(rebuild(rebuildable, database_url=url, kafka=stack.kafka_admin,
                                      namespace=namespace))  # fmt: skip
    except StillRunning as exc:
        _fail(f"{exc} (`berdaya replay {view}` stops the local one itself; elsewhere stop it, then use --no-restart)"
              f"{left_stopped}")
    except NothingToReplay as exc:
        _fail(f"{exc}{left_stopped}")
    except OffsetsKept as exc:
        _fail(f"{exc}{left_stopped}. Run `berdaya replay {view}` again once Kafka ({stack.bootstrap_servers}) "
              "answers")
    except (OSError, TimeoutError, asyncpg.PostgresError, KafkaException) as exc:
        _fail(f"could not rebuild {view}: {type(exc).__name__}: {kafka_said(exc)}. Check that Kafka "
              f"({stack.bootstrap_servers}) and the database are reachable; nothing was emptied"
              + (f"{left_stopped} (`berdaya up` starts it again)" if stopped else ""))
    console.print("  emptied " + ", ".join(f"{table} ({rows:,} rows)" for table, rows in removed.items()))
    console.print(f"  kept {rebuildable.kept}")
    if not restart:
        console.print(f"{view} will be rebuilt from the beginning of its topics when {spec.name} next starts.")
        return
    try:
        stack.start_service(spec)
        stack.wait_ready(spec)
    except RuntimeError as exc:
        _fail(f"{view} was emptied and is rebuilt from the beginning of its topics when {spec.name} next starts, but "
              f"it did not start: {exc}")
    replaying = f"{spec.name} is replaying its topics"
    with console.status(replaying) as status:
        try:
            lag = wait_for_catch_up(stack.kafka_admin, rebuildable, namespace,
                                    progress=lambda left: status.update(f"{replaying}: {left:,} records to go"))
        except (TimeoutError, KafkaException) as exc:
            _fail(f"{spec.name} is running and rebuilding {view}, but how far it has read could not be learnt: "
                  f"{kafka_said(exc)}. The rebuild goes on without this command and need not be started again; "
                  f"check that Kafka ({stack.bootstrap_servers}) is reachable")
    if lag:
        console.print(f"{spec.name} is still replaying its topics after an hour ({lag:,} records to go); it carries "
                      f"on without this command, and {view} is complete once that reaches 0.")
        raise typer.Exit(NOT_YET)
    if rebuildable.holds_back and not _settled(rebuildable, url, spec.name):
        raise typer.Exit(NOT_YET)
    console.print(f"{view} rebuilt: {spec.name} has read its topics to the end.")


def _same_namespace(stack: LocalStack, spec: ServiceSpec, namespace: str) -> None:
    """Refuse, before anything is stopped, a rebuild in a namespace other than the local service's: the view would be
    emptied while the groups of another namespace were reset, and the one it reads kept its offsets, never to read
    the view back."""
    try:
        started_in = stack.topic_namespace()
    except RuntimeError as exc:
        _fail(f"{exc}. Nothing was stopped or emptied")
    if namespace != started_in:
        _fail(f"--namespace is {namespace or '(none)'}, but the local stack starts {spec.name} in "
              f"{started_in or 'no namespace'} (BERDAYA_TOPIC_NAMESPACE); set BERDAYA_TOPIC_NAMESPACE={namespace} "
              "and run this again. Nothing was stopped or emptied")  # fmt: skip
    running_in = stack.running_namespace(spec) if stack.running(spec) else namespace
    if running_in != namespace:
        _fail(f"{spec.name} is running in topic namespace {running_in or '(none)'}, not "
              f"{namespace or '(none)'}: run this with BERDAYA_TOPIC_NAMESPACE={running_in} (the namespace it runs "
              "in). Nothing was stopped or emptied")  # fmt: skip


def _settled(view: RebuildableView, database_url: str, service_name: str, timeout: float = 600) -> bool:
    """Wait while the service settles what it held back as it caught up; whether it has finished."""
    waiting = f"{service_name} is settling the businesses it read of"
    with console.status(waiting) as status:
        deadline = time.monotonic() + timeout
        try:
            while (left := asyncio.run(still_held(view, database_url))) and time.monotonic() < deadline:
                status.update(f"{waiting}: {left:,} to go")
                time.sleep(1)
        except (OSError, asyncpg.PostgresError) as exc:
            _fail(f"{service_name} is running and settling {view.name}, but how far it has got could not be read "
                  f"({type(exc).__name__}: {exc}). The rebuild goes on without this command and need not be started "
                  "again; check that the database is reachable")  # fmt: skip
    if left:
        console.print(f"{service_name} is still settling after {timeout / 60:.0f} minutes ({left:,} to go); it carries "
                      f"on without this command, and {view.name} is complete once that reaches 0.")
    return not left


dlq = typer.Typer(help="Dead-letter topics: what failed, why, and sending it again once the cause is fixed.")
app.add_typer(dlq, name="dlq")
app.add_typer(partner, name="partner")


def _dead_letters(topic: str) -> list:  # noqa: ANN202
    from shared.messaging.dead_letters import UnknownTopic, read_dead_letters

    stack = _stack()
    try:
        namespace = stack.topic_namespace()
    except RuntimeError as exc:
        _fail(f"{exc}. Nothing was listed or re-driven")
    # The deployment's own topic, as its services name it: on a cluster shared by several, the name as the help gives
    # it would otherwise be another deployment's (the one without a namespace), and its letters re-driven there.
    if namespace and not topic.startswith(f"{namespace}."):
        topic = namespaced(topic, namespace)
    try:
        return asyncio.run(read_dead_letters(stack.kafka_admin, topic))
    except UnknownTopic as exc:
        _fail(f"{exc}. Give a topic as it is named, e.g. registry.business.v1 or registry.business.v1.dlq")
    except TimeoutError as exc:
        _fail(f"{exc}. Nothing was listed or re-driven; check that Kafka ({stack.bootstrap_servers}) is reachable and "
              f"run the command again")


@dlq.command("list")
def dlq_list(topic: Annotated[str, typer.Argument(help="A topic (or its .dlq), e.g. registry.business.v1")]) -> None:
    """Every dead letter of a topic: where it came from, which consumer failed and why."""
    letters = _dead_letters(topic)
    table = Table(title=Text(f"{len(letters)} dead letter(s) of {topic.removesuffix('.dlq')}", style="table.title"))
    for column in ("partition:offset", "consumer", "event", "attempts", "failed at", "error"):
        table.add_column(column, overflow="fold")
    for d in letters:
        envelope = d.envelope()
        event = f"{envelope.event_type} v{envelope.aggregate_version or '-'}" if envelope else "(not an event)"
        # As plain text: what a partner wrote (its values, our errors quoting them) may look like markup.
        table.add_row(*map(Text, (f"{d.partition}:{d.offset}", d.consumer, event, d.headers.get("dlq.attempts", "?"),
                                  d.headers.get("dlq.failed_at", "?")[:19], d.error[:200])))  # fmt: skip
    console.print(table)


@dlq.command("show")
def dlq_show(
    topic: Annotated[str, typer.Argument(help="A topic or its .dlq")],
    offset: Annotated[int, typer.Argument(help="The dead letter's offset (dlq list shows it)")],
    partition: Annotated[int, typer.Option(help="The dead-letter topic's partition")] = 0,
) -> None:
    """One dead letter in full: its headers and its value."""
    found = [d for d in _dead_letters(topic) if d.offset == offset and d.partition == partition]
    if not found:
        _fail(f"no dead letter at {partition}:{offset} of {topic}; `berdaya dlq list {topic}` shows what there is")
    letter = found[0]
    # As plain text: a partner's value (and our headers quoting it) may look like markup.
    for key, value in sorted(letter.headers.items()):
        console.print(Text.assemble((key, "bold"), ": ", value))
    console.print(Text((letter.value or b"").decode("utf-8", "replace")))


@dlq.command("redrive")
def dlq_redrive(
    topic: Annotated[str, typer.Argument(help="A topic or its .dlq")],
    offset: Annotated[list[int], typer.Option(help="Only these offsets (default: every dead letter)")] = [],  # noqa: B006
    consumer: Annotated[str | None, typer.Option(help="Only those this consumer dead-lettered")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Publish dead letters again to their original topic, once what made them fail is fixed. Consumers that had
    applied an event absorb it (inbox); views never take an older version over a newer one."""
    from shared.messaging.dead_letters import RedriveStopped, redrive

    every = _dead_letters(topic)
    # A mistyped offset or consumer would otherwise be left out without a word, and a script would take the
    # re-drive for whole.
    if missing := sorted(set(offset) - {d.offset for d in every}):
        _fail(f"no dead letter at offset(s) {', '.join(map(str, missing))} of {topic}; `berdaya dlq list {topic}` "
              "shows what there is. Nothing was re-driven")  # fmt: skip
    if consumer is not None and consumer not in (present := sorted({d.consumer for d in every})):
        _fail(f"no dead letter of consumer {consumer!r} in {topic}; those there are of "
              f"{', '.join(map(repr, present)) or 'no consumer'}. Nothing was re-driven")  # fmt: skip
    letters = [d for d in every
               if (not offset or d.offset in offset) and (consumer is None or d.consumer == consumer)]  # fmt: skip
    if not letters:
        _fail("nothing to re-drive: no dead letter matches")
    if not yes and not confirmed(f"Re-drive {len(letters)} dead letter(s) to {letters[0].original_topic}?"):
        raise typer.Exit(1)
    with _progress() as progress:
        task = progress.add_task(f"Re-driving to {letters[0].original_topic}", total=len(letters))
        try:
            sent = asyncio.run(redrive(_stack().kafka_admin, letters,
                                       progress=lambda n: progress.update(task, completed=n)))  # fmt: skip
        except RedriveStopped as exc:
            progress.stop()
            _fail(f"{exc}. Check that Kafka is reachable and run the command again: the consumers absorb the events "
                  "they have already applied, so sending those again changes nothing")  # fmt: skip
        except ValueError as exc:  # some were cut short when dead-lettered; the rest were re-driven
            progress.stop()
            _fail(f"{exc}. Every dead letter stays in the dead-letter topic as a record.")
    # The original topic is what a dead letter's header says: plain text.
    console.print(Text(f"{sent} dead letter(s) published again to {letters[0].original_topic}. They stay in the "
                       "dead-letter topic as a record; `berdaya dlq list` shows them still."))


@app.command()
def status() -> None:
    """What is running, and the register's figures."""
    stack = _stack()
    table = Table(title="Berdaya local stack")
    table.add_column("part")
    table.add_column("state")
    for part, state in stack.status().items():
        table.add_row(part, Text(state, style="green" if state in ("up", "ready", "external") else "red"))
    console.print(table)
    console.print(Text(f"Home {stack.base}   logs {stack.base / 'logs'}"))
    monitoring = stack.monitoring
    if monitoring.status()["prometheus"] == "up":
        console.print(Text(f"Prometheus {monitoring.prometheus_url}   Alertmanager {monitoring.alertmanager_url}"))
    registry = service("registry")
    if stack.ready(registry):
        try:
            answer = httpx.get(stack.url(registry) + "/stats/nib-coverage", timeout=10)
            answer.raise_for_status()
            print_coverage(console, answer.json())
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            _error(f"the registry's NIB coverage could not be read ({type(exc).__name__}: {str(exc)[:200]}); its log "
                   f"is {stack.log_file('registry')}")  # fmt: skip


@app.command()
def demo(
    rows: Annotated[int, typer.Option(help="How many businesses the generated Kupang list has")] = 17_000,
    seed: Annotated[int, typer.Option(help="Seed of the generated list")] = 2025,
) -> None:
    """Bring the stack up, import a realistic Kupang UMKM list, take some businesses through NIB issuance,
    and show what happened: registrations per kecamatan, NIB coverage, events published, messages to owners."""
    from berdaya.dataset import write_csv
    from berdaya.demo import run_demo

    console.rule("[bold]1. Bringing up PostgreSQL, Kafka and the services")
    stack = _up()
    console.rule(f"[bold]2. Generating the city's list: {rows:,} businesses")
    data = stack.base / "demo" / f"kupang_umkm_{rows}_{seed}.csv"
    if not data.exists():
        data.parent.mkdir(parents=True, exist_ok=True)
        with _progress() as progress:
            task = progress.add_task("Writing CSV", total=rows)
            written = write_csv(data.with_suffix(".tmp"), rows, seed=seed,
                                progress=lambda n: progress.update(task, completed=n))  # fmt: skip
            progress.update(task, completed=written)
        data.with_suffix(".tmp").rename(data)
    console.print(Text(f"  {data}"))
    console.rule("[bold]3. Importing it into the registry")
    _import(data, stack.url(service("registry")), 1000)
    console.rule("[bold]4. Officers record NIB applications and their outcomes")
    asyncio.run(run_demo(stack, console, TokenService(stack.secret("BERDAYA_JWT_SECRET"))))
    _print_urls(stack)


def _print_urls(stack: LocalStack) -> None:
    # Addresses and paths come from the environment (KAFKA_BOOTSTRAP_SERVERS, BERDAYA_HOME...): plain text.
    lines = []
    for spec in SERVICES:
        base = stack.url(spec)
        lines.append(Text.assemble((f"{spec.name:9}", "bold"), f" API docs {base}/docs   events {base}/asyncapi   "
                                   f"metrics {base}/metrics"))  # fmt: skip
    lines.append(Text(f"Kafka {stack.bootstrap_servers}   PostgreSQL {masked_url(stack.postgres_url)}   "
                      f"logs {stack.base / 'logs'}"))  # fmt: skip
    monitoring = stack.monitoring
    if monitoring.status()["prometheus"] == "up":
        lines.append(Text.assemble(("Prometheus", "bold"), f" {monitoring.prometheus_url}   consoles "
                                   f"{monitoring.prometheus_url}/consoles/index.html   alerts "
                                   f"{monitoring.prometheus_url}/alerts   ", ("Alertmanager", "bold"),
                                   f" {monitoring.alertmanager_url}"))  # fmt: skip
    else:
        lines.append(Text("Prometheus and Alertmanager are not running (`berdaya up` says why)"))
    lines.append(Text.assemble("A token for the API: ", ("berdaya token --subject <your e-mail>", "bold"),
                               "   Stop everything: ", ("berdaya down", "bold")))  # fmt: skip
    console.print(Panel(Text("\n").join(lines), title="Berdaya is running"))


def main() -> None:
    """The console entry point: Kafka or the database not answering ends any command in a line saying what to do
    next, where it ended in a traceback (each command's own messages say more where they can)."""
    from aiokafka.errors import KafkaError as AIOKafkaError

    try:
        app()
    except (KafkaException, AIOKafkaError) as exc:
        # What Kafka said is plain text: it quotes topic, group and user names others chose.
        _error(f"Kafka ({_kafka_named()}): {kafka_said(exc)}. Check that it is running (`berdaya status`; "
               "`berdaya up` starts the local one) and that this login may do this, then run the command again")
        sys.exit(1)
    except (TimeoutError, ConnectionError, asyncpg.CannotConnectNowError) as exc:
        # The database is not named by its URL, which may hold a password.
        _error(f"no answer from Kafka ({_kafka_named()}) or the database: {type(exc).__name__}: {kafka_said(exc)}. "
               "Check that they are running (`berdaya status`; `berdaya up` starts the local ones) and run the "
               "command again")
        sys.exit(1)


def _kafka_named() -> str:
    """Which Kafka, for an error message: a stack whose settings can't be read must not turn it into a traceback."""
    try:
        return _stack().bootstrap_servers
    except (ValueError, RuntimeError, OSError):
        return "KAFKA_BOOTSTRAP_SERVERS, or the local one"
