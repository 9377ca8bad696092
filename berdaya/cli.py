"""`berdaya`: run the local stack, import the city's list, mint tokens and see what the system is doing."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from berdaya.views import print_coverage
from berdaya.importer import ImportRefused, count_rows, import_file, write_error_report
from berdaya.stack.local import SERVICES, LocalStack
from shared.auth import TokenService

app = typer.Typer(help="Berdaya: the event backbone of Kota Kupang's UMKM programme.", no_args_is_help=True)
console = Console()


def _stack() -> LocalStack:
    return LocalStack()


def _token(role: str = "officer", subject: str = "berdaya-cli") -> str:
    if os.environ.get("BERDAYA_TOKEN"):
        return os.environ["BERDAYA_TOKEN"]
    secret = os.environ.get("BERDAYA_JWT_SECRET") or _stack().secrets()["BERDAYA_JWT_SECRET"]
    return TokenService(secret).mint(subject, [role], ttl=timedelta(hours=8))


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(), TimeRemainingColumn(),
        console=console, transient=False,
    )  # fmt: skip


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


@app.command()
def up() -> None:
    """Start PostgreSQL, Kafka and the services in the background (idempotent)."""
    _print_urls(_up())


def _up() -> LocalStack:
    stack = _stack()
    try:
        stack.up(say=lambda m: console.print(f"  {m}"))
    except RuntimeError as exc:
        _fail(f"{exc}\nLogs are in {stack.base / 'logs'}; `berdaya down` stops what did start.")
    return stack


@app.command()
def down() -> None:
    """Stop the services, Kafka and PostgreSQL started by `berdaya up`."""
    _stack().down(say=lambda m: console.print(f"  {m}"))


@app.command()
def token(
    role: Annotated[list[str], typer.Option("--role", "-r", help="officer, operator, sponsor, trainer, viewer, admin")] = ["officer"],  # noqa: B006
    subject: Annotated[str, typer.Option(help="Who the token is for")] = "officer@kupang",
    hours: Annotated[float, typer.Option(help="Validity in hours")] = 8,
) -> None:
    """Mint a bearer token signed with the local stack's key (or BERDAYA_JWT_SECRET)."""
    secret = os.environ.get("BERDAYA_JWT_SECRET") or _stack().secrets()["BERDAYA_JWT_SECRET"]
    try:
        print(TokenService(secret).mint(subject, role, ttl=timedelta(hours=hours)))
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


def _import(file: Path, url: str, chunk: int):  # noqa: ANN202
    total = count_rows(file)
    started = time.perf_counter()
    with _progress() as progress:
        task = progress.add_task(f"Importing {file.name}", total=total)
        try:
            summary = import_file(file, base_url=url, token=_token(), chunk_size=chunk,
                                  progress=lambda n: progress.advance(task, n))  # fmt: skip
        except ImportRefused as exc:
            _fail(f"the registry refused the file: {exc}")
        except httpx.ConnectError:
            _fail(f"cannot reach the registry at {url}; start it with `berdaya up`, then import again "
                  "(rows already imported are recognised and not duplicated)")
    elapsed = time.perf_counter() - started
    table = Table(title=f"Import of {file.name}", show_header=False)
    for label, value in (("rows read", summary.received), ("registered", summary.registered),
                         ("updated", summary.updated), ("already registered, unchanged", summary.unchanged),
                         ("rows with errors", summary.rejected_rows)):  # fmt: skip
        table.add_row(label, f"{value:,}")
    table.add_row("rows per second", f"{summary.received / elapsed:,.0f}" if elapsed else "-")
    console.print(table)
    if summary.errors:
        report = file.with_suffix(".errors.csv")
        write_error_report(summary.errors, report)
        console.print(f"[yellow]{summary.rejected_rows} row(s) need fixing[/yellow]; each is listed in {report}. "
                      "The first ones:")  # fmt: skip
        for error in summary.errors[:5]:
            console.print(f"  line {error['line']}, {error['field']}: {error['message']}")
        console.print("Fix those rows in the file and import it again; rows already in are left as they are.")
    return summary


@app.command()
def replay(
    group: Annotated[str, typer.Argument(help="Consumer group, e.g. funding-view (with a namespace: kupang.funding-view)")],
) -> None:
    """Make a consumer read its topics from the beginning at its next start (stop its service first), e.g. to rebuild
    funding's view of businesses into an empty database."""
    from shared.messaging.kafka import forget_consumer_group

    try:
        forget_consumer_group(_stack().bootstrap_servers, group)
    except Exception as exc:  # noqa: BLE001 - Kafka's reason is the message
        _fail(f"could not reset {group}: {exc}. Is its service stopped? (Kafka refuses while the group has members)")
    console.print(f"{group} will read from the beginning when its service next starts.")


@app.command()
def status() -> None:
    """What is running, and the register's figures."""
    stack = _stack()
    table = Table(title="Berdaya local stack")
    table.add_column("part")
    table.add_column("state")
    for part, state in stack.status().items():
        table.add_row(part, f"[green]{state}[/green]" if state in ("up", "ready", "external") else f"[red]{state}[/red]")
    console.print(table)
    registry = next(s for s in SERVICES if s.name == "registry")
    if stack.ready(registry):
        print_coverage(console, httpx.get(stack.url(registry) + "/stats/nib-coverage", timeout=10).json())


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
    console.print(f"  {data}")
    console.rule("[bold]3. Importing it into the registry")
    registry = next(s for s in SERVICES if s.name == "registry")
    _import(data, stack.url(registry), 1000)
    console.rule("[bold]4. Officers record NIB applications and their outcomes")
    secret = os.environ.get("BERDAYA_JWT_SECRET") or stack.secrets()["BERDAYA_JWT_SECRET"]
    demo_token = TokenService(secret).mint("demo", ["officer", "sponsor"], ttl=timedelta(hours=1))
    asyncio.run(run_demo(stack, console, demo_token))
    _print_urls(stack)


def _print_urls(stack: LocalStack) -> None:
    lines = []
    for spec in SERVICES:
        base = stack.url(spec)
        lines.append(f"[bold]{spec.name:9}[/bold] API docs {base}/docs   events {base}/asyncapi   metrics {base}/metrics")
    lines.append(f"Kafka {stack.bootstrap_servers}   PostgreSQL {stack.postgres_url}   logs {stack.base / 'logs'}")
    lines.append("A token for the API: [bold]berdaya token --role officer[/bold]   Stop everything: [bold]berdaya down[/bold]")
    console.print(Panel("\n".join(lines), title="Berdaya is running"))


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
