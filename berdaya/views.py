"""Tables the command line prints."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


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
