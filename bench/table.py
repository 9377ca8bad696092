"""One table shape for every benchmark: what, the figure, the same-run baseline, their ratio, the target, met or not."""

from __future__ import annotations


def header() -> None:
    row("", "figure", "baseline", "ratio", "target", None)


def row(what: str, figure: str, baseline: str, ratio: str, target: str, met: bool | None) -> None:
    verdict = "" if met is None else ("met" if met else "NOT met")
    print(f"  {what:<44} {figure:>14} {baseline:>18} {ratio:>9} {target:>10} {verdict:>8}")
