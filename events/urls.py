"""Server URLs as readrate shows them: the one place that hides passwords.

Every message, log line and page that names a Redis or database URL passes it
through `redact` first, so a password in REDIS_URL or DATABASE_URL is never shown.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

HIDDEN = "***"
_PASSWORD_PARAMETER = re.compile(r"(?i)([?&]password=)[^&#]*")


def redact(url: str) -> str:
    """`url` with its password (and any `password=` query value) replaced by ***; the rest as given."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # a port that is not a number, brackets that do not close: show nothing of it
        return "(a URL that cannot be parsed)"
    shown = url
    if password is not None:
        userinfo, _, hostinfo = parts.netloc.rpartition("@")
        shown = shown.replace(parts.netloc, f"{userinfo.partition(':')[0]}:{HIDDEN}@{hostinfo}", 1)
    return _PASSWORD_PARAMETER.sub(rf"\g<1>{HIDDEN}", shown)
