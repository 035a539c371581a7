"""Secrets out of what is shown, and names safe to quote: one implementation for every DSN.

A DSN's password may sit in its userinfo (`scheme://user:pw@host/db`) or in a query parameter
(`?password=pw`, as libpq allows). `mask_dsn` shows the DSN with both replaced by `***`;
`Redactor(dsn)` removes the password from any text, such as a driver's error message, which may
quote it in either form (raw or URL-decoded).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

_PASSWORD_PARAM = re.compile(r"(?i)(password=)([^&\s]*)")

# A schema, database or table name that may be quoted into SQL without escaping: letters, digits
# and underscores, not starting with a digit; 63 characters, the shortest limit of our stores
# (PostgreSQL's).
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
_IDENTIFIER = re.compile(IDENTIFIER)


def is_identifier(name: object) -> bool:
    return isinstance(name, str) and bool(_IDENTIFIER.match(name))


def _userinfos(dsn: str) -> list[tuple[str, str | None, int]] | None:
    """The readings of a URL-shaped DSN's userinfo as (user, password or None, where the host
    part starts), the one drivers use first: its authority ends at the first '/', '?' or '#' and
    the userinfo at the authority's last '@' (as urllib and libpq parse it). A password holding
    one of those characters unencoded puts its '@' further on: the DSN's last '@' is then the
    second reading (the only one when the authority has no '@'). None: not URL-shaped."""
    scheme, sep, rest = dsn.partition("://")
    if not sep:
        return None
    start = len(scheme) + len(sep)
    end = next((i for i, c in enumerate(rest) if c in "/?#"), len(rest))
    readings = []
    for at in dict.fromkeys((rest.rfind("@", 0, end), rest.rfind("@"))):
        if at >= 0:
            user, colon, password = rest[:at].partition(":")
            readings.append((user, password if colon else None, start + at + 1))
    return readings


def mask_dsn(dsn: str) -> str:
    """The DSN with its password replaced by ***, safe for logs and errors."""
    dsn = str(dsn)
    readings = _userinfos(dsn)
    if readings is None:  # not URL-shaped: show no more than a scheme-like prefix
        head = dsn.split(":", 1)[0][:20]
        return f"{head}:..." if ":" in dsn else "<dsn>"
    masked = dsn
    if readings:
        user, password, host = readings[0]
        if password is not None:
            masked = f"{dsn.partition('://')[0]}://{user}:***@{dsn[host:]}"
    return _PASSWORD_PARAM.sub(r"\1***", masked)


def secrets_of(dsn: str) -> list[str]:
    """The password(s) a DSN carries, in every reading, raw and URL-decoded, longest first."""
    found = {password for _, password, _ in _userinfos(str(dsn)) or () if password}
    found |= {m.group(2) for m in _PASSWORD_PARAM.finditer(str(dsn)) if m.group(2)}
    found |= {unquote(s) for s in found}
    return sorted(found, key=len, reverse=True)


def scrub(text: str, secrets: list[str] | str | None) -> str:
    """`text` with every occurrence of each secret masked (defence in depth for driver messages)."""
    if isinstance(secrets, str):
        secrets = [secrets]
    for secret in secrets or ():
        if secret:
            text = text.replace(secret, "***")
    return text


class Redactor:
    """Removes a DSN, and the secrets in it, from any text."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.masked = mask_dsn(dsn)
        self.secrets = [s for s in secrets_of(dsn) if len(s) >= 3]  # "pw"-short would shred text

    def __call__(self, text: str) -> str:
        return scrub(text.replace(self.dsn, self.masked), self.secrets)
