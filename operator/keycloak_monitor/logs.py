"""Logging set-up: readable text, or one JSON object per line for log pipelines.

No log level may print a credential. The libraries that would (the Kubernetes client logs
every response body at DEBUG, a Secret's data and kubectl's last-applied annotation with it;
aiohttp and httpcore log requests) are held at WARNING whatever --log-level says, and every
record passes a redaction filter as a second line of defence.
"""

import json
import logging
import re
import sys
from datetime import UTC, datetime

# Loggers that print request or response bodies and headers at DEBUG or INFO.
QUIET_LOGGERS = ("kubernetes_asyncio", "aiohttp", "httpcore", "httpx", "hpack", "h2")

_SECRET_FIELD = re.compile(
    r"""(?ix)
    (["']?(?:access_token|refresh_token|id_token|password|client_secret|clientsecret|hmacsecret|secret|token)["']?
     \s*[:=]\s*)
    (["']?)[^"'\s,&}]+"""
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_LAST_APPLIED = "last-applied-configuration"


def redact(text: str) -> str:
    """The text with secret-looking values replaced; a last-applied annotation drops the line."""
    if _LAST_APPLIED in text:
        return "[redacted: a message carrying kubectl's last-applied-configuration]"
    text = _SECRET_FIELD.sub(r"\1\2***", text)
    text = _BEARER.sub(r"\1 ***", text)
    return _JWT.sub("***", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            # Tracebacks are formatted later from exc_info; their text is redacted here once.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            entry["exception"] = record.exc_text
        elif record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(fmt: str = "text", level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
