"""Pre-rendered exposition shared by all monitors.

Each monitor's series are rendered to bytes once, when its collection ends, and swapped in
whole; a scrape only concatenates bytes, so it never waits on Keycloak and its cost follows
the size of the answer. Two formats are kept: Prometheus text 0.0.4 and OpenMetrics 1.0,
which differ in counter family names and in gauge histograms (text has no such type: the
buckets are served as a histogram without sum and count, which would be misleading).
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.utils import floatToGoString

from .catalogue import FAMILIES, Family
from .config import MonitorKey

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = openmetrics.CONTENT_TYPE_LATEST
_OM_EOF = b"# EOF\n"


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def base_labels(key: MonitorKey, realm: str) -> str:
    """The labels every series of a monitor carries, escaped once."""
    return f'namespace="{escape_label(key.namespace)}",monitor="{escape_label(key.name)}",realm="{escape_label(realm)}"'


@dataclass(frozen=True)
class Fragment:
    """One monitor's samples of one family, in both formats (the same bytes but for gauge
    histograms)."""

    text: bytes
    openmetrics: bytes


MonitorSeries = dict[str, Fragment]  # family name -> fragment


class SeriesWriter:
    """Builds a monitor's fragments, sample by sample."""

    def __init__(self, labels: str) -> None:
        self._labels = labels
        self._text: dict[str, list[str]] = {}
        self._om: dict[str, list[str]] = {}  # in sample order: a counter's _created follows its _total

    def sample(
        self,
        family: Family,
        value: float,
        labels: Sequence[tuple[str, str]] = (),
        suffix: str = "",
        openmetrics_only: bool = False,
    ) -> None:
        name = family.name + (suffix or ("_total" if family.type == "counter" else ""))
        extra = "".join(f',{k}="{escape_label(v)}"' for k, v in labels)
        line = f"{name}{{{self._labels}{extra}}} {floatToGoString(value)}\n"
        if not openmetrics_only:
            self._text.setdefault(family.name, []).append(line)
        self._om.setdefault(family.name, []).append(line)

    def series(self) -> MonitorSeries:
        result = {}
        for name, om_lines in self._om.items():
            text = "".join(self._text.get(name, ())).encode()
            om = "".join(om_lines).encode()
            result[name] = Fragment(text=text, openmetrics=om)
        return result


def _header(family: Family, om: bool) -> bytes:
    name, kind = family.name, family.type
    if kind == "counter" and not om:
        name += "_total"
    if kind == "gaugehistogram" and not om:
        kind = "histogram"
    return f"# HELP {name} {_escape_help(family.help)}\n# TYPE {name} {kind}\n".encode()


_HEADERS = {(f.name, om): _header(f, om) for f in FAMILIES for om in (False, True)}


class MetricsStore:
    """Every monitor's current series; what /metrics serves."""

    def __init__(self, include_process_metrics: bool = True) -> None:
        self._monitors: dict[MonitorKey, MonitorSeries] = {}
        self._process = include_process_metrics

    def publish(self, key: MonitorKey, series: MonitorSeries) -> None:
        self._monitors[key] = series

    def remove(self, key: MonitorKey) -> None:
        self._monitors.pop(key, None)

    def render(self, om: bool = False) -> bytes:
        monitors = [self._monitors[k] for k in sorted(self._monitors, key=lambda k: (k.namespace, k.name))]
        parts: list[bytes] = []
        for family in FAMILIES:
            fragments = [m[family.name] for m in monitors if family.name in m]
            if not fragments:
                continue
            parts.append(_HEADERS[(family.name, om)])
            parts.extend(_pick(fragments, om))
        if self._process:
            parts.append(_process_metrics(om))
        if om:
            parts.append(_OM_EOF)
        return b"".join(parts)


def _pick(fragments: Iterable[Fragment], om: bool) -> Iterable[bytes]:
    return (f.openmetrics if om else f.text for f in fragments)


def _process_metrics(om: bool) -> bytes:
    """The operator process's own metrics (CPU, memory, GC) from prometheus_client."""
    if not om:
        return generate_latest(REGISTRY)
    body = openmetrics.generate_latest(REGISTRY)
    return body.removesuffix(_OM_EOF)
