"""The chaos run's figures as text: the faults injected, the load as the system answered it, and every check."""

from __future__ import annotations

from collections import Counter, defaultdict

from chaos.checker import SECTIONS, Line
from chaos.load import CLIENT_ERROR, CONFLICT, GAVE_UP, NO_ANSWER, OK, REFUSED, SERVER_ERROR, UNAVAILABLE
from chaos.run import Result

WIDTH = 118


def render(result: Result) -> str:
    c = result.config
    out = ["=" * WIDTH,
           f"Berdaya chaos run: seed {c.seed}, at least {c.events:,} events over at least {c.seconds:g}s, {c.kills} kills"
           f"{', PostgreSQL and Kafka restarts' if c.infrastructure else ''}; topics {result.target.namespace}.*",
           f"service logs: {result.target.workdir / 'logs'}", "=" * WIDTH]  # fmt: skip
    out += _faults(result)
    out += _load(result)
    out += _checks(result.lines)
    out += _logs(result)
    failures = result.failures
    out.append("=" * WIDTH)
    if failures:
        out.append(f"FAILED: {len(failures)} figure(s) that must be 0 are not (or could not be checked):")
        out += [f"  - [{f.section}] {f.label}: {'not checked' if f.value is None else f.value}" for f in failures]
    else:
        out.append("PASSED: every loss, duplication, regression, allocation, report, dead-letter and recovery figure is 0")
    out.append("=" * WIDTH)
    return "\n".join(out)


def _faults(result: Result) -> list[str]:
    out = ["", f"FAULTS INJECTED ({len(result.injected)} of {len(result.planned)} planned)"]
    kinds: dict[str, list] = defaultdict(list)
    for i in result.injected:
        kinds[i.fault.kind].append(i)
    out.append(f"  {'fault':<58} {'made':>5} {'failed':>6}  targets")
    for kind, items in sorted(kinds.items()):
        targets = Counter(i.hit for i in items if i.hit)
        extra = ""
        if "relay" in kind:
            extra = f"; relay seen mid-batch in {sum(i.mid_batch for i in items)} of {len(items)}"
        out.append(f"  {kind:<58} {sum(i.ok for i in items):>5} {sum(not i.ok for i in items):>6}  "
                   + ", ".join(f"{t} {n}" for t, n in sorted(targets.items())) + extra)  # fmt: skip
    restarts = result.restarts
    if restarts:
        seconds = sorted(s.seconds for s in restarts)
        out.append(f"  restarts: {len(restarts)}, ready again in median {seconds[len(seconds) // 2]:.1f}s, "
                   f"slowest {seconds[-1]:.1f}s, {sum(not s.ok for s in restarts)} did not come back")  # fmt: skip
    out.append("  in order:")
    for i in sorted(result.injected, key=lambda i: i.started):
        flag = "" if i.ok else "  <-- FAILED"
        waited = f", after waiting {i.waited:.0f}s for other faults" if i.waited >= 1 else ""
        out.append(f"    t={i.started:6.1f}s  {i.fault.kind}: {i.detail} [{i.seconds:.1f}s{waited}]{flag}")
    return out


def _load(result: Result) -> list[str]:
    stats = result.load
    out = ["", f"LOAD ({stats.seconds:.0f}s; a request counts once however often it was retried; only 2xx produced)"]
    header = (f"  {'action':<14} {'requests':>8} {OK:>7} {CONFLICT:>6} {CLIENT_ERROR:>9} {GAVE_UP:>7} |"
              f" {'retried after:':<14} {REFUSED:>7} {NO_ANSWER:>9} {UNAVAILABLE:>5} {SERVER_ERROR:>9} | {'events':>7}")  # fmt: skip
    out.append(header)
    actions = sorted(set(stats.requests) | set(stats.attempts))
    for action in actions:
        r, a = stats.requests[action], stats.attempts[action]
        resolved = stats.ambiguous_resolved[action]
        note = f"  ({resolved} x 409 = own earlier attempt)" if resolved else ""
        out.append(f"  {action:<14} {sum(r.values()):>8,} {r[OK]:>7,} {r[CONFLICT]:>6,} {r[CLIENT_ERROR]:>9,} {r[GAVE_UP]:>7,} |"
                   f" {'':<14} {a[REFUSED]:>7,} {a[NO_ANSWER]:>9,} {a[UNAVAILABLE]:>5,} {a[SERVER_ERROR]:>9,} |"
                   f" {stats.events[action]:>7,}{note}")  # fmt: skip
    out.append(f"  events produced by acknowledged requests: {stats.events_produced:,}"
               " (the outbox figures below are the system's own count, matching and notices included)")  # fmt: skip
    if stats.server_errors:
        out.append(f"  5xx answers other than 503: {len(stats.server_errors)}")
        by_kind = Counter((e.action, e.status, e.body[:160]) for e in stats.server_errors)
        for (action, status, body), n in by_kind.most_common(8):
            out.append(f"    {n:>4} x {action} -> {status}: {body}")
    return out


def _checks(lines: list[Line]) -> list[str]:
    out = ["", "CHECKS (the figures marked 'must be 0' fail the run otherwise)"]
    section = None
    order = {s: i for i, s in enumerate(SECTIONS)}
    for line in sorted(lines, key=lambda line: order.get(line.section, len(order))):  # stable within a section
        if line.section != section:
            section = line.section
            out.append(f"  {section.upper()}")
        value = "not checked" if line.value is None else (f"{line.value:,}" if isinstance(line.value, int) else str(line.value))
        verdict = ("FAIL" if line.failed else "ok (must be 0)") if line.must_be_zero else ""
        out.append(f"    {line.label:<92} {value:>12}  {verdict}")
        if line.note:
            out.append(f"      {line.note}")
        if line.failed:
            out += [f"      e.g. {e}" for e in line.evidence]
    return out


def _logs(result: Result) -> list[str]:
    out = ["", "SERVICE LOGS (lines by level; the logs are the evidence for anything above)"]
    for replica, counts in result.log_lines.items():
        out.append(f"  {replica:<12} " + (", ".join(f"{k} {n:,}" for k, n in sorted(counts.items())) or "clean"))
    return out
