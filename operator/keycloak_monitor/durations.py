"""Go-style duration strings ("30s", "1m30s", "500ms"), the format the CRD and its CEL rules use."""

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | int | float) -> float:
    """Return seconds. Bare numbers are taken as seconds, as users of the env-var mode expect."""
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if isinstance(text, int | float):
        return float(text)
    value = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        return float(value)
    if not value or _PART.sub("", value) != "":
        raise ValueError(f"not a duration: {text!r} (expected e.g. 30s, 1m, 1m30s, 500ms)")
    return sum(float(n) * _SECONDS[unit] for n, unit in _PART.findall(value))
