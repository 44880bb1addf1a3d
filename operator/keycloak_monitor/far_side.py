"""Texts that come from the far side (Keycloak's error_description, exception texts) made fit
for a status, an Event or a log line: printable, short, and without credentials in URLs.

A target that answers with whatever it likes must not turn the operator into a way to read
other services' answers (a port scanner's report) or to put a password on display.
"""

import re

MAX_LENGTH = 160
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")


def clean(text: object, limit: int = MAX_LENGTH) -> str:
    """One line of printable ASCII, at most `limit` characters, with user:password@ removed."""
    line = _UNPRINTABLE.sub(" ", str(text))
    line = _USERINFO.sub(r"\1***@", " ".join(line.split()))
    return line if len(line) <= limit else line[: limit - 3].rstrip() + "..."
