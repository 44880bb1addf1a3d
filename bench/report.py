"""What a benchmark reports, and where: a table on screen, bench/results/<name>.json, and
bench/RESULTS.md with the date, commit and machine.

Headline figures are ratios measured in the same run (absolute times drift with the machine);
a figure with a target says whether it is met, and a missed one carries a profile of the
work behind it, so the reason is in the report and not only in someone's memory.
"""

import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import subprocess
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROFILE_LINES = 15


@dataclass
class Figure:
    name: str
    value: float
    unit: str = ""
    target: float | None = None  # met when value <= target
    note: str = ""

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.value <= self.target


@dataclass
class Result:
    """One benchmark's figures, its raw measurements and, when a target is missed, a profile."""

    name: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    profile: str = ""

    def add(self, name: str, value: float, unit: str = "", target: float | None = None, note: str = "") -> Figure:
        figure = Figure(name, value, unit, target, note)
        self.figures.append(figure)
        return figure

    @property
    def missed(self) -> bool:
        return any(f.met is False for f in self.figures)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "figures": [{**asdict(f), "met": f.met} for f in self.figures]}


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of the values, nearest rank: p99 of 100 runs is the second worst."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def profile(work: Callable[[], object]) -> str:
    """The top lines of a cProfile run of `work`, by own time: where the CPU went (time spent
    waiting for a server shows as select/epoll)."""
    profiler = cProfile.Profile()
    profiler.runcall(work)
    return _top(profiler)


async def profile_async(work: Callable[[], Awaitable[object]]) -> str:
    """The same, for work done in the running event loop (everything the loop runs meanwhile counts)."""
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        await work()
    finally:
        profiler.disable()
    return _top(profiler)


def _top(profiler: cProfile.Profile) -> str:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(PROFILE_LINES)
    lines = out.getvalue().strip().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "\n".join(lines[start:])


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "cpus": os.cpu_count(),
        "ram_gib": round(pages / 2**30, 1),
        "cpu_model": model or platform.processor(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }


def commit() -> str:
    found = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "operator"], capture_output=True)
    return found.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _number(value: float) -> str:
    if value == 0 or 0.01 <= abs(value) < 1e6:
        return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{value:.3g}"


def _row(figure: Figure) -> list[str]:
    target = "" if figure.target is None else f"≤ {_number(figure.target)}"
    met = {None: "", True: "met", False: "NOT MET"}[figure.met]
    return [figure.name, f"{_number(figure.value)} {figure.unit}".strip(), target, met, figure.note]


HEADER = ["figure", "value", "target", "", "note"]


def table(results: Sequence[Result]) -> str:
    """A plain-text table for the terminal."""
    rows = [HEADER] + [_row(f) for r in results for f in r.figures]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = []
    for result in results:
        lines.append(f"\n{result.title}")
        for figure in result.figures:
            cells = _row(figure)
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
    return "\n".join(lines).lstrip("\n")


def _from_json(record: dict[str, Any]) -> Result:
    figures = [Figure(f["name"], f["value"], f["unit"], f["target"], f["note"]) for f in record["figures"]]
    return Result(record["name"], record["title"], figures, record["details"], record["profile"])


def markdown(records: Sequence[dict[str, Any]]) -> str:
    """RESULTS.md from every result file: each benchmark with the date, commit and machine it ran on."""
    out = [
        "# Benchmark results",
        "",
        "Generated by `make bench` (`python -m bench`); raw figures in `bench/results/*.json`.",
        "Headline figures are ratios measured in the same run; absolute times drift with the machine.",
    ]
    for record in records:
        result, host = _from_json(record), record["machine"]
        out += [
            "",
            f"## {result.title}",
            "",
            f"{record['date']}, commit {record['commit']}; {host['cpus']} CPUs ({host['cpu_model']}), "
            f"{host['ram_gib']} GiB RAM, Python {host['python']}, load average at start {host['load_average']}.",
            "",
            "| " + " | ".join(HEADER) + " |",
            "|---|---|---|---|---|",
        ]
        out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in _row(f)) + " |" for f in result.figures]
        if result.profile:
            out += ["", "Target missed; profile of the work behind it (cProfile, by own time):", "", "```"]
            out += [result.profile, "```"]
    return "\n".join(out) + "\n"


ORDER = ("scrape", "collection_keycloak", "collection_synthetic", "operator_scale")


def write(results: Sequence[Result], directory: Path, summary: Path, host: dict[str, Any]) -> None:
    """bench/results/<name>.json per benchmark run now; RESULTS.md from every result there."""
    when, revision = datetime.now(UTC), commit()
    directory.mkdir(parents=True, exist_ok=True)
    for result in results:
        record = {"date": when.strftime("%Y-%m-%d %H:%M UTC"), "commit": revision, "machine": host}
        record |= result.to_json()
        (directory / f"{result.name}.json").write_text(json.dumps(record, indent=1) + "\n")
    records = [json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))]
    records.sort(key=lambda r: ORDER.index(r["name"]) if r["name"] in ORDER else len(ORDER))
    summary.write_text(markdown(records))
