"""The bench's report: ratios to the ceiling, the issue's targets, and the tables printed.

Input is the ``results`` mapping the runner builds, ``{case: {target: result}}``, where a
result is a dict with a ``status`` of ``ok``, ``n/a`` or ``failed``; output is text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

CEILING = "ceiling"
THROUGHPUT_KINDS = ("echo", "iq", "fanout")
#: Other processes' CPU, in cores, above which a measurement is marked as disturbed.
BUSY = 0.5

Results = dict[str, dict[str, dict[str, Any]]]


def kind_of(case: str) -> str:
    """Return the scenario a case belongs to: ``fanout-20`` is a ``fanout`` case."""
    return case.partition("-")[0]


def add_ratios(results: Results) -> None:
    """Set each result's ratios to the ceiling's result in the same case."""
    for outcome in results.values():
        ceiling = outcome.get(CEILING, {})
        if ceiling.get("status") != "ok":
            continue
        for result in outcome.values():
            if result.get("status") != "ok":
                continue
            if "rate" in result and ceiling.get("rate"):
                result["rate_ratio"] = result["rate"] / ceiling["rate"]
            if result.get("cpu_s_per_10k") and ceiling.get("cpu_s_per_10k"):
                result["cpu_per_stanza_ratio"] = result["cpu_s_per_10k"] / ceiling["cpu_s_per_10k"]
            if "component_cpu_s" in result and ceiling.get("component_cpu_s"):
                result["cpu_ratio"] = result["component_cpu_s"] / ceiling["component_cpu_s"]
            if "kb_per_room" in result and ceiling.get("kb_per_room"):
                result["room_ratio"] = result["kb_per_room"] / ceiling["kb_per_room"]


def _check(value: float | None, passed: Callable[[float], bool], shown: str) -> str:
    if value is None:
        return "n/a"
    return f"{'PASS' if passed(value) else 'FAIL'} ({shown.format(value)})"


def checks(results: Results, targets: Iterable[str]) -> dict[str, dict[str, str]]:
    """Return, for each target but the ceiling, the verdict on each of the issue's targets."""

    def field(case: str, target: str, key: str, nested: str | None = None) -> float | None:
        result = results.get(case, {}).get(target, {})
        if result.get("status") != "ok":
            return None
        if nested is not None:
            result = result.get(nested) or {}
        value = result.get(key)
        return float(value) if value is not None else None

    verdicts: dict[str, dict[str, str]] = {}
    for target in targets:
        if target == CEILING:
            continue
        verdict = {
            "echo >= 0.8 x ceiling": _check(field("echo", target, "rate_ratio"), lambda v: v >= 0.8, "{:.2f}"),
            "iq >= 0.8 x ceiling": _check(field("iq", target, "rate_ratio"), lambda v: v >= 0.8, "{:.2f}"),
        }
        for case in (c for c in results if kind_of(c) == "fanout"):
            verdict[f"{case} out/s >= ceiling"] = _check(
                field(case, target, "rate_ratio"), lambda v: v >= 1.0, "{:.2f}")
        verdict["join CPU <= 2 x ceiling"] = _check(field("join", target, "cpu_ratio"), lambda v: v <= 2.0, "{:.2f}")
        verdict["<= 2 KB per occupant"] = _check(
            field("rooms", target, "kb_per_occupant_sample"), lambda v: v <= 2.0, "{:.2f} KB")
        verdict["<= 8 KB per idle room"] = _check(field("rooms", target, "kb_per_room"), lambda v: v <= 8.0, "{:.2f} KB")
        for case in ("echo", "iq"):
            verdict[f"{case} p99 < 5 ms at half rate"] = _check(
                field(case, target, "p99_ms", "half_rate"), lambda v: v < 5.0, "{:.2f} ms")
        verdicts[target] = verdict
    return verdicts


# Formatting.


def _number(value: Any, digits: int = 0, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:,.{digits}f}{suffix}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Return a Markdown table with aligned columns (numbers right-aligned)."""
    widths = [max(len(headers[i]), *(len(row[i]) for row in rows)) for i in range(len(headers))] if rows else [
        len(header) for header in headers]

    def line(cells: Sequence[str], header: bool = False) -> str:
        parts = []
        for i, cell in enumerate(cells):
            numeric = not header and i > 1 and cell[:1].isdigit()
            parts.append(cell.rjust(widths[i]) if numeric else cell.ljust(widths[i]))
        return "| " + " | ".join(parts) + " |"

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line(headers, header=True), rule, *(line(row) for row in rows)])


def _unavailable(result: dict[str, Any]) -> str:
    return "n/a" if result.get("status") == "n/a" else "FAILED"


def throughput_table(results: Results, targets: Sequence[str]) -> str:
    """The echo, iq and fan-out results, one row per case and target."""
    headers = ["scenario", "target", "rate/s", "x ceiling", "p50 ms", "p99 ms", "p99 ms @1/2 rate",
               "CPU s/10k", "CPU x ceiling", "peak RSS MB", "errors", "bottleneck", "other CPU"]
    rows = []
    for case, outcome in results.items():
        if kind_of(case) not in THROUGHPUT_KINDS:
            continue
        for target in targets:
            result = outcome.get(target, {"status": "n/a"})
            if result.get("status") != "ok":
                rows.append([case, target, _unavailable(result), *["-"] * 10])
                continue
            half = result.get("half_rate") or {}
            half_p99 = _number(half.get("p99_ms"), 2)
            if half.get("other_cpu_share", 0) >= BUSY:
                half_p99 += "*"
            rows.append([
                case, target, _number(result["rate"]), _number(result.get("rate_ratio"), 2),
                _number(result["p50_ms"], 2), _number(result["p99_ms"], 2), half_p99,
                _number(result["cpu_s_per_10k"], 3), _number(result.get("cpu_per_stanza_ratio"), 2),
                _number(result.get("peak_rss_kb", 0) / 1024, 1),
                _number(result["errors"]), result["bottleneck"], _number(result["other_cpu_share"], 2),
            ])
    return table(headers, rows)


def join_table(results: Results, targets: Sequence[str]) -> str:
    """The join results: the cost of the joins against the ceiling's cost of the same presences."""
    headers = ["scenario", "target", "presences", "wall s", "presences/s", "CPU s", "CPU x ceiling",
               "p50 join ms", "p99 join ms", "peak RSS MB", "errors", "bottleneck"]
    rows = []
    for case, outcome in results.items():
        if kind_of(case) != "join":
            continue
        for target in targets:
            result = outcome.get(target, {"status": "n/a"})
            if result.get("status") != "ok":
                rows.append([case, target, _unavailable(result), *["-"] * 9])
                continue
            rows.append([
                case, target, _number(result["replies"]), _number(result["seconds"], 2),
                _number(result["rate"]), _number(result["component_cpu_s"], 2), _number(result.get("cpu_ratio"), 2),
                _number(result["p50_ms"], 1), _number(result["p99_ms"], 1),
                _number(result.get("peak_rss_kb", 0) / 1024, 1), _number(result["errors"]), result["bottleneck"],
            ])
    return table(headers, rows)


def rooms_table(results: Results, targets: Sequence[str]) -> str:
    """The memory results: resident memory per loaded idle room and per occupant."""
    headers = ["scenario", "target", "rooms", "load s", "KB/room", "occupants", "KB/occupant",
               "occupants", "KB/occupant", "peak RSS MB"]
    rows = []
    for case, outcome in results.items():
        if kind_of(case) != "rooms":
            continue
        for target in targets:
            result = outcome.get(target, {"status": "n/a"})
            if result.get("status") != "ok":
                rows.append([case, target, _unavailable(result), *["-"] * 7])
                continue
            rows.append([
                case, target, _number(result["rooms"]), _number(result["load_seconds"], 2),
                _number(result["kb_per_room"], 2), _number(result["occupants"]),
                _number(result["kb_per_occupant"], 2), _number(result["occupant_sample"]),
                _number(result["kb_per_occupant_sample"], 2), _number(result.get("peak_rss_kb", 0) / 1024, 1),
            ])
    return table(headers, rows)


def checks_table(verdicts: dict[str, dict[str, str]]) -> str:
    """The issue's targets, one row each, one column per target."""
    if not verdicts:
        return ""
    names = list(verdicts)
    criteria = list(next(iter(verdicts.values())))
    rows = [[criterion, *(verdicts[name][criterion] for name in names)] for criterion in criteria]
    return table(["target", *names], rows)


def problems(results: Results) -> list[str]:
    """Return one line per failed or unavailable result, with its reason."""
    lines = []
    for case, outcome in results.items():
        for target, result in outcome.items():
            if result.get("status") in ("failed", "n/a") and result.get("reason"):
                lines.append(f"{case} / {target}: {result['status']}: {result['reason']}")
    return lines


def render(results: Results, targets: Sequence[str], verdicts: dict[str, dict[str, str]]) -> str:
    """Return the whole report as text."""
    sections = []
    if any(kind_of(case) in THROUGHPUT_KINDS for case in results):
        sections.append("Throughput (rate: requests/s for echo and iq, outgoing stanzas/s for fanout)\n\n"
                        + throughput_table(results, targets))
    if any(kind_of(case) == "join" for case in results):
        sections.append("Join (rate: presences sent by the component per second)\n\n" + join_table(results, targets))
    if any(kind_of(case) == "rooms" for case in results):
        sections.append("Memory (resident set growth, stored rooms loaded, then occupants joined)\n\n"
                        + rooms_table(results, targets))
    if sections and sections[0].startswith("Throughput") and "*" in sections[0]:
        sections[0] += ("\n\n* other processes used half a core or more during the paced run;"
                        " 'other CPU' is the same for the runs at the maximum rate.")
    if verdicts:
        sections.append("Targets (ratios within this run)\n\n" + checks_table(verdicts))
    notes = problems(results)
    if notes:
        sections.append("Not measured\n\n" + "\n".join(f"- {note}" for note in notes))
    return "\n\n".join(sections)
