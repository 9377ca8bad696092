"""What the command line shows and waits for: tables, the views it can rebuild, and a consumer catching up."""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import KafkaException
from rich.console import Console
from rich.table import Table
from rich.text import Text

from services.funding.replay import FUNDING_VIEW
from services.training.replay import TRAINING_VIEW
from shared.messaging.kafka import KafkaAccess, consumer_lag
from shared.messaging.replay import RebuildableView

VIEWS = {v.name: v for v in (FUNDING_VIEW, TRAINING_VIEW)}


def wait_for_catch_up(
    kafka: KafkaAccess | str, view: RebuildableView, namespace: str = "", *, timeout: float = 3600,
    patience: float = 60, progress: Callable[[int], None] = lambda lag: None, ask_timeout: float = 30,
) -> int:  # fmt: skip
    """Wait until the view's consumers have committed every record of their topics; returns the lag left (0, or what
    was left when `timeout` ran out). `progress` hears the lag each time it is read.

    Kafka not answering is waited out for `patience` seconds, as a broker restarting would need; after that the last
    error is raised, naming what the client met.
    """
    replayed = [s.in_namespace(namespace) for s in view.replayed]
    start = answered = time.monotonic()
    while True:
        try:
            lag = sum(sum(consumer_lag(kafka, s.group_id, [s.topic], ask_timeout).values()) for s in replayed)
        except (TimeoutError, KafkaException):
            if time.monotonic() - answered > patience:
                raise
        else:
            answered = time.monotonic()
            progress(lag)
            if lag == 0 or answered - start > timeout:
                return lag
        time.sleep(1)


def print_coverage(console: Console, coverage: dict) -> None:
    table = Table(title="Businesses registered and NIB coverage per kecamatan")
    for column in ("kecamatan", "Kemendagri", "BPS", "registered", "with NIB", "coverage"):
        table.add_column(column, justify="right" if column in ("registered", "with NIB", "coverage") else "left")
    for k in coverage["by_kecamatan"]:
        # The registry's answer is shown as plain text, never read as markup.
        table.add_row(*(Text(str(k[f])) for f in ("kecamatan", "code", "bps_code")), f"{k['registered']:,}",
                      f"{k['with_nib']:,}", f"{k['coverage']:.1%}")  # fmt: skip
    table.add_row("[bold]Kota Kupang", "53.71", "5371", f"[bold]{coverage['registered']:,}",
                  f"[bold]{coverage['with_nib']:,}", f"[bold]{coverage['coverage']:.1%}")  # fmt: skip
    console.print(table)
