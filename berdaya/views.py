"""What the command line shows and waits for: tables, the views it can rebuild, and a consumer catching up."""

from __future__ import annotations

import time

from rich.console import Console
from rich.table import Table

from services.funding.replay import FUNDING_VIEW
from services.training.replay import TRAINING_VIEW
from shared.contracts.topics import namespaced
from shared.messaging.kafka import KafkaAccess, consumer_lag
from shared.messaging.replay import RebuildableView

VIEWS = {v.name: v for v in (FUNDING_VIEW, TRAINING_VIEW)}


def wait_for_catch_up(bootstrap: KafkaAccess | str, view: RebuildableView, namespace: str = "", timeout: float = 3600) -> int:
    """Wait until the view's consumers have committed every record of their topics; returns the lag left."""
    topics = [namespaced(t, namespace) for t in view.topics]
    deadline = time.monotonic() + timeout
    while True:
        lag = sum(sum(consumer_lag(bootstrap, namespaced(c, namespace), topics).values()) for c in view.consumers)
        if lag == 0 or time.monotonic() > deadline:
            return lag
        time.sleep(1)


def print_coverage(console: Console, coverage: dict) -> None:
    table = Table(title="Businesses registered and NIB coverage per kecamatan")
    for column in ("kecamatan", "Kemendagri", "BPS", "registered", "with NIB", "coverage"):
        table.add_column(column, justify="right" if column in ("registered", "with NIB", "coverage") else "left")
    for k in coverage["by_kecamatan"]:
        table.add_row(k["kecamatan"], k["code"], k["bps_code"], f"{k['registered']:,}", f"{k['with_nib']:,}",
                      f"{k['coverage']:.1%}")  # fmt: skip
    table.add_row("[bold]Kota Kupang", "53.71", "5371", f"[bold]{coverage['registered']:,}",
                  f"[bold]{coverage['with_nib']:,}", f"[bold]{coverage['coverage']:.1%}")  # fmt: skip
    console.print(table)
